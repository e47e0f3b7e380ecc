/* The run directory's janitor (run_janitor.c): the directory of `memtrace
 * run` goes away when run and any detached consumer of it have gone, even
 * by SIGKILL. */
#ifndef MEMTRACE_RUN_JANITOR_H
#define MEMTRACE_RUN_JANITOR_H

/* Starts a process that removes DIR (every entry in it, then DIR) once
 * every copy of the returned descriptor is closed: at the exit, however
 * it comes, of run and of every process forked from it afterwards. The
 * descriptor is close-on-exec, so the traced program never holds it.
 * Returns it, or -1 (said on stderr) if no janitor could be started. */
int run_janitor_start(const char *dir);

/* Removes every entry of DIR (not recursing), then DIR. */
void run_dir_remove(const char *dir);

#endif
