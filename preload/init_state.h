/* What init.c (bootstrap, the real functions, connecting, mt_init) and
 * forks.c (the kit for the next fork child, the atfork handlers, children
 * made without fork) share. Hidden: never exported by the shim. */
#ifndef MEMTRACE_INIT_STATE_H
#define MEMTRACE_INIT_STATE_H

#include <sys/socket.h>
#include <sys/un.h>

#include "shim.h"

/* init.c: the connection to the consumer (socket_fd, the address it was
 * made to) and the pid this state belongs to; forks.c remakes them in a
 * fork child. */
extern int socket_fd MT_HIDDEN;
extern struct sockaddr_un socket_address MT_HIDDEN;
extern socklen_t socket_address_len MT_HIDDEN;
extern pid_t traced_pid MT_HIDDEN;
extern uint32_t hello_flags MT_HIDDEN;

/* forks.c */
void mt_kit_make(void) MT_HIDDEN;
void mt_atfork_prepare(void) MT_HIDDEN;
void mt_atfork_parent(void) MT_HIDDEN;
void mt_clone_token_setup(void) MT_HIDDEN;
void mt_atfork_child(void) MT_HIDDEN;
void mt_on_exit_handler(int status, void *arg) MT_HIDDEN;
/* init.c */
int mt_connect_and_hello(pid_t fork_parent, uint32_t fork_seq) MT_HIDDEN;
int mt_say_hello(int fd, pid_t fork_parent, uint32_t fork_seq) MT_HIDDEN;

#endif
