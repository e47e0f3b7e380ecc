/* transp_probe: prints what a program can see of its own process, for the
 * transparency comparison (tests/e2e/test_transparency_compare.py), which runs
 * it bare and under memtrace and wants byte-identical results.
 *
 *   transp_probe report   allocates, then prints the number its first open()
 *                         got, every open fd (number and kind of target), and
 *                         its environment (/proc/self/environ, sorted);
 *                         writes written.txt and a line on stderr
 *   transp_probe daemon   a daemon's start: closes every fd from 3 up, opens
 *                         in.txt, out.txt and log.txt (fds 3, 4, 5 when
 *                         nothing else holds one), allocates in a signal
 *                         handler (stacks through a signal frame), then reads
 *                         in.txt, copies it to out.txt and prints what it read
 *   transp_probe closeall the same, closing every fd from 3 up with
 *                         close_range(3, ~0U), the shim's own included
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile sink;

static void churn(int n)
{
    for (int i = 0; i < n; i++) {
        void *p = malloc((size_t)(16 + i % 200));
        sink = p;
        free(p);
    }
}

static int compare_strings(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The kind of what an fd points to, without paths that differ between runs. */
static const char *fd_kind(const char *target)
{
    if (strncmp(target, "pipe:", 5) == 0)
        return "pipe";
    if (strncmp(target, "socket:", 7) == 0)
        return "socket";
    if (strncmp(target, "anon_inode:", 11) == 0)
        return target;
    if (strncmp(target, "/memfd:", 7) == 0)
        return "memfd";
    if (strncmp(target, "/dev/", 5) == 0)
        return target;
    return "file";
}

static void print_fds(void)
{
    DIR *dir = opendir("/proc/self/fd");
    if (!dir) {
        perror("/proc/self/fd");
        exit(1);
    }
    int own = dirfd(dir);
    int fds[1024];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL && n < 1024) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd != own)
            fds[n++] = fd;
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
            int t = fds[j];
            fds[j] = fds[j - 1];
            fds[j - 1] = t;
        }
    for (int i = 0; i < n; i++) {
        char link[64], target[512];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fds[i]);
        ssize_t len = readlink(link, target, sizeof target - 1);
        target[len < 0 ? 0 : len] = 0;
        printf("fd %d: %s\n", fds[i], fd_kind(target));
    }
    closedir(dir);
}

static void print_environ(void)
{
    static char buf[1 << 16];
    int fd = open("/proc/self/environ", O_RDONLY);
    ssize_t len = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (len < 0) {
        perror("/proc/self/environ");
        exit(1);
    }
    close(fd);
    buf[len] = 0;
    char *vars[512];
    int n = 0;
    for (char *p = buf; p < buf + len && n < 512; p += strlen(p) + 1)
        vars[n++] = p;
    qsort(vars, (size_t)n, sizeof vars[0], compare_strings);
    for (int i = 0; i < n; i++)
        printf("env %s\n", vars[i]);
}

static int report(void)
{
    churn(1000);
    int fd = open("/dev/null", O_RDONLY);
    printf("first open: %d\n", fd);
    close(fd);
    print_fds();
    print_environ();
    FILE *f = fopen("written.txt", "w");
    if (!f)
        return 1;
    char *text = strdup("written by transp_probe\n");
    fputs(text, f);
    free(text);
    fclose(f);
    fprintf(stderr, "transp_probe: a line on stderr\n");
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    churn(50);
}

static int daemon_start(int all)
{
    if (all)
        close_range(3, ~0U, 0);
    else
        for (int fd = 3; fd < 1024; fd++)
            close(fd);
    int in = open("in.txt", O_RDONLY);
    int out = open("out.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int log = open("log.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    printf("opened: %d %d %d\n", in, out, log);
    signal(SIGUSR1, on_signal);
    for (int i = 0; i < 20; i++) {
        raise(SIGUSR1);
        churn(100);
    }
    char buf[256];
    ssize_t got = read(in, buf, sizeof buf);
    printf("read %zd bytes\n", got);
    if (got > 0 && write(out, buf, (size_t)got) != got)
        return 1;
    if (write(log, "done\n", 5) != 5)
        return 1;
    print_fds();
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "report") == 0)
        return report();
    if (argc == 2 && strcmp(argv[1], "daemon") == 0)
        return daemon_start(0);
    if (argc == 2 && strcmp(argv[1], "closeall") == 0)
        return daemon_start(1);
    fprintf(stderr, "usage: transp_probe report|daemon|closeall\n");
    return 2;
}
