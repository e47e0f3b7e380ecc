/* The janitor of `memtrace run`'s private directory (the socket the shim
 * connects to, the link to the shim that LD_PRELOAD names). run removes the
 * directory itself when it ends; the janitor is for when it cannot: killed
 * by SIGKILL, or by a signal it does not catch. It is a grandchild of run in
 * a session of its own (so the signals of run's terminal and process group
 * do not reach it), blocked on a pipe whose write end run and any detached
 * consumer of run hold; when the last of them is gone, it removes the
 * directory and exits. It holds nothing else: every other descriptor is
 * closed, so it keeps no file, terminal or pipe of anyone's open.
 */
#define _GNU_SOURCE
#include "run_janitor.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void run_dir_remove(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        for (struct dirent *e; (e = readdir(d));)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    rmdir(dir);
}

static void janitor_main(int read_end, const char *dir)
{
    setsid();
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_IGN);
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
    }
    if (read_end != 3) {
        dup2(read_end, 3);
        read_end = 3;
    }
    close_range(4, ~0u, 0);
    for (;;) {
        char byte;
        ssize_t n = read(read_end, &byte, 1);
        if (n == 0 || (n < 0 && errno != EINTR))
            break;
    }
    run_dir_remove(dir);
    _exit(0);
}

int run_janitor_start(const char *dir)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        fprintf(stderr, "memtrace: cannot start the run directory's janitor: %s\n",
                strerror(errno));
        return -1;
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", dir);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[1]);
        if (fork() == 0) /* reparented at once: never a child of run's */
            janitor_main(fds[0], path);
        _exit(0);
    }
    close(fds[0]);
    if (pid < 0) {
        fprintf(stderr, "memtrace: cannot start the run directory's janitor: %s\n",
                strerror(errno));
        close(fds[1]);
        return -1;
    }
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return fds[1];
}
