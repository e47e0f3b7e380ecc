/* The consumer's file descriptors (fd_budget.c): as many as the hard limit
 * allows, and a few always kept in hand so that a process once accepted
 * never loses its dump, its RSS samples or a ring to the limit. */
#ifndef MEMTRACE_FD_BUDGET_H
#define MEMTRACE_FD_BUDGET_H

/* Raises the soft RLIMIT_NOFILE to the hard one and sets the spares
 * aside. Call once in the consumer, after the program has been started
 * (it keeps the limits it would have had bare). */
void fd_budget_init(void);

/* 1 if every spare is in hand again (there is room for one more process),
 * else 0: the limit is reached. */
int fd_budget_room(void);

/* Frees one descriptor (a spare) for something the consumer cannot refuse,
 * such as a ring arriving in a message; fd_budget_restore takes it back
 * when it is free again. */
void fd_budget_take(void);
void fd_budget_restore(void);

/* The soft limit now in force. */
unsigned long long fd_budget_limit(void);

#endif
