/* Victim of the invisibility test (issue 18.2): what a program sees of the
 * file descriptors around it.
 *
 *   fd_daemon first-open        prints the number open() returns first
 *                               ("first open N"); bare it is 3.
 *   fd_daemon daemon DIR        as a daemon does: closes every descriptor
 *                               above 2, opens /dev/null (3), DIR/in (4) and
 *                               DIR/out (5), allocates in a signal handler
 *                               (so stacks are unwound through a signal
 *                               frame), then copies DIR/in to DIR/out and
 *                               prints "fds A B C read N".
 *   fd_daemon dup2-leak N DIR   opens DIR/out and dup2s it over every number
 *                               from 3 to 63 and the 16 below its soft
 *                               RLIMIT_NOFILE (where memtrace keeps its
 *                               own), then allocates as
 *                               close-leak does and prints "leaked 2N";
 *                               DIR/out must stay empty.
 *   fd_daemon close-leak N      closes every descriptor above 2, then
 *                               waits 0.3 s, runs 4 threads at once that
 *                               each allocate and free a block (new rings),
 *                               and allocates N blocks of 4242
 *                               bytes from main and N from a signal handler,
 *                               each overwriting the last pointer (2N - 2
 *                               lost, 2 reachable), and prints "leaked 2N".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static void *volatile sink;

static void on_signal(int sig)
{
    (void)sig;
    void *p = malloc(100);
    sink = p;
    free(p);
}

static void *leak_in_handler_block;

static void on_signal_leak(int sig)
{
    (void)sig;
    leak_in_handler_block = malloc(4242);
}

static void *alloc_and_free(void *arg)
{
    free(malloc(64));
    return arg;
}

static void close_all(void)
{
    for (int fd = 3; fd < 1 << 16; fd++) /* as daemons do, up to the limit */
        close(fd);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "first-open") == 0) {
        printf("first open %d\n", open("/dev/null", O_RDONLY));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "daemon") == 0) {
        close_all();
        char in_path[4096], out_path[4096];
        snprintf(in_path, sizeof in_path, "%s/in", argv[2]);
        snprintf(out_path, sizeof out_path, "%s/out", argv[2]);
        int a = open("/dev/null", O_RDONLY);
        int in = open(in_path, O_RDONLY);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        signal(SIGUSR1, on_signal);
        for (int i = 0; i < 20; i++)
            raise(SIGUSR1);
        char buf[4096];
        ssize_t n, total = 0;
        while ((n = read(in, buf, sizeof buf)) > 0) {
            total += n;
            if (write(out, buf, (size_t)n) != n)
                return 1;
        }
        printf("fds %d %d %d read %zd\n", a, in, out, total);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "close-leak") == 0) {
        close_range(3, ~0u, 0);
        usleep(300000); /* the consumer has seen the socket close by now */
        pthread_t threads[4]; /* new rings, handed over at once */
        for (int i = 0; i < 4; i++)
            pthread_create(&threads[i], NULL, alloc_and_free, NULL);
        for (int i = 0; i < 4; i++)
            pthread_join(threads[i], NULL);
        int n = atoi(argv[2]);
        signal(SIGUSR1, on_signal_leak);
        for (int i = 0; i < n; i++) {
            raise(SIGUSR1);
            sink = malloc(4242);
        }
        printf("leaked %d\n", 2 * n);
        return 0;
    }
    if (argc == 4 && strcmp(argv[1], "dup2-leak") == 0) {
        char out_path[4096];
        snprintf(out_path, sizeof out_path, "%s/out", argv[3]);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        struct rlimit rl;
        getrlimit(RLIMIT_NOFILE, &rl);
        int top = rl.rlim_cur > 65536 ? 65536 : (int)rl.rlim_cur;
        for (int fd = 3; fd < top; fd++)
            if (fd != out && (fd < 64 || fd >= top - 16))
                dup2(out, fd);
        int n = atoi(argv[2]);
        signal(SIGUSR1, on_signal_leak);
        for (int i = 0; i < n; i++) {
            raise(SIGUSR1);
            sink = malloc(4242);
        }
        printf("leaked %d\n", 2 * n);
        return 0;
    }
    fprintf(stderr, "usage: fd_daemon first-open | daemon DIR | close-leak N | dup2-leak N DIR\n");
    return 2;
}
