/* `memtrace __serve`: the consumer started by the shim itself in plain
 * LD_PRELOAD mode (MEMTRACE_OUTPUT set, no `memtrace run`; its stderr is the
 * file MEMTRACE_LOG names, or /dev/null). It binds the
 * abstract socket the shim named, forks, and lets its first half exit so
 * the shim's waitpid returns once the socket exists; the second half serves
 * detached until a second passes with no traced process left. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <getopt.h>
#include <stddef.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "consumer/consumer.h"
#include "memtrace/format.h"
#include "memtrace/ring.h"

int cmd_serve(int argc, char **argv)
{
    struct consumer_options o = {.output_pattern = "./memtrace.%n.%p.mtr",
                                 .unwind = MT_UNWIND_DWARF, .max_depth = 64, .follow_fork = 1,
                                 .quiet = 1, .leak_check = MT_LEAK_CHECK_FULL, .freeres = 1,
                                 .python = MT_PYTHON_AUTO, .notices = 1};
    const char *name = NULL;
    /* Plain mode writes nothing into the program's stderr: memtrace's own
     * output (the shim's notices, errors) goes to MEMTRACE_LOG, or nowhere;
     * and none of the program's descriptors is kept open by us. */
    const char *log = getenv("MEMTRACE_LOG");
    int log_fd = log && *log ? open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600) : -1;
    if (log_fd < 0)
        log_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (log_fd >= 0 && log_fd != STDERR_FILENO) {
        dup2(log_fd, STDERR_FILENO);
        close(log_fd);
    }
    close_range(3, ~0u, 0);
    static const struct option longopts[] = {{"socket", required_argument, 0, 's'},
                                             {"output", required_argument, 0, 'o'},
                                             {"unwind", required_argument, 0, 'u'},
                                             {"max-depth", required_argument, 0, 'd'},
                                             {"python", required_argument, 0, 'p'},
                                             {0, 0, 0, 0}};
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case 's': name = optarg; break;
        case 'o': o.output_pattern = optarg; break;
        case 'u':
            if (parse_unwind(optarg, &o.unwind) != 0)
                return cli_error("MEMTRACE_UNWIND must be dwarf or fp, not '%s'", optarg);
            break;
        case 'd':
            if (parse_depth(optarg, &o.max_depth) != 0)
                return cli_error("MEMTRACE_MAX_DEPTH must be 1..256, not '%s'", optarg);
            break;
        case 'p':
            if (parse_python_mode(optarg, &o.python) != 0)
                return cli_error("MEMTRACE_PYTHON must be auto, on or off, not '%s'", optarg);
            break;
        default: return 1;
        }
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (!name || name[0] != '@' || strlen(name) >= sizeof addr.sun_path)
        return cli_error("__serve needs --socket @NAME");
    memcpy(addr.sun_path + 1, name + 1, strlen(name) - 1);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, len) != 0 || listen(fd, 128) != 0)
        return cli_error("cannot listen on %s", name);
    /* the traced program spawned us: it and its descendants may connect */
    o.root = getppid();
    pid_t pid = fork();
    if (pid < 0)
        return cli_error("cannot fork the consumer");
    if (pid > 0)
        _exit(0);
    setsid();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
        if (devnull > 2)
            close(devnull);
    }
    int had_error = 0;
    consumer_serve(&o, fd, &had_error);
    return had_error ? 1 : 0;
}
