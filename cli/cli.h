/* Shared by the subcommands of the memtrace command. */
#ifndef MEMTRACE_CLI_H
#define MEMTRACE_CLI_H

#include <stdint.h>

int cmd_run(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_check(int argc, char **argv);      /* check_cmd.c */
int cmd_flamegraph(int argc, char **argv); /* flamegraph_cmd.c */
int cmd_timeline(int argc, char **argv);   /* timeline_cmd.c */
int cmd_diff(int argc, char **argv);       /* diff_cmd.c */

/* Prints "memtrace: MESSAGE" on stderr; returns 1 (the exit status). */
int cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Reports an unknown option or a missing argument; returns 1. */
int cli_bad_option(const char *command, const char *arg, int optopt);
int parse_unwind(const char *s, uint32_t *out);
int parse_depth(const char *s, uint32_t *out);
int parse_leak_check(const char *s, uint32_t *out);
int parse_python_mode(const char *s, uint32_t *out); /* auto|on|off */
/* 1 if the program at path is CPython, a script run by it, or embeds it
 * (python_detect.c). */
int program_is_python(const char *path);

#endif
