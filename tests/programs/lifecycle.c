/* Victim for the life-cycle test (tests/e2e/test_lifecycle.py): what
 * `memtrace run` does around its program's life. One mode per run:
 *
 *   daemon SECS PIDFILE  double-forks a grandchild that leaks 100 + 300
 *                        bytes (and frees 200), writes its pid to PIDFILE,
 *                        sleeps SECS and exits 0; the middle child exits 0
 *                        at once; the program leaks 50 bytes and exits 3
 *                        as soon as the middle child is gone.
 *   children N           N children alive at once (each allocates 1000
 *                        bytes and frees it, then waits until all N have
 *                        started), reaped before the program exits 0;
 *                        prints its soft and hard RLIMIT_NOFILE first.
 *   rss MIB              allocates MIB MiB in one block, touches it, prints
 *                        "rss BYTES" (its own statm) and holds it 300 ms,
 *                        then frees it and leaks 10 + 20 bytes; exits 0.
 *   sleep SECS           allocates 64 bytes, sleeps SECS, exits 0.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void *volatile keep[4];

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int daemon_mode(int secs, const char *pidfile)
{
    int ready[2];
    if (pipe(ready) != 0)
        return 10;
    pid_t middle = fork();
    if (middle < 0)
        return 11;
    if (middle == 0) {
        setsid();
        pid_t grandchild = fork();
        if (grandchild < 0)
            _exit(12);
        if (grandchild == 0) {
            close(ready[0]);
            keep[0] = malloc(100);
            keep[1] = malloc(200);
            keep[2] = malloc(300);
            free(keep[1]);
            /* no stdio: the grandchild's figures are its 3 blocks only */
            char line[32];
            int len = snprintf(line, sizeof line, "%d\n", (int)getpid());
            int fd = open(pidfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || write(fd, line, (size_t)len) != len)
                _exit(13);
            close(fd);
            /* the parent goes on once the pid is written */
            if (write(ready[1], "x", 1) != 1)
                _exit(14);
            close(ready[1]);
            close(0);
            close(1);
            close(2);
            sleep_ms(secs * 1000L);
            exit(0);
        }
        exit(0);
    }
    close(ready[1]);
    char c;
    if (read(ready[0], &c, 1) != 1)
        return 15;
    int status;
    waitpid(middle, &status, 0);
    keep[3] = malloc(50);
    return 3;
}

static int children_mode(int n)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    printf("nofile %llu %llu\n", (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
    fflush(stdout);
    int started[2], go[2];
    if (pipe(started) != 0 || pipe(go) != 0)
        return 10;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return 11;
        if (pid == 0) {
            close(started[0]);
            close(go[1]);
            void *p = malloc(1000);
            memset(p, 1, 1000);
            free(p);
            if (write(started[1], "x", 1) != 1)
                _exit(12);
            char c;
            if (read(go[0], &c, 1) != 0) /* EOF: everyone has started */
                _exit(13);
            exit(0);
        }
    }
    close(started[1]);
    close(go[0]);
    for (int i = 0; i < n; i++) {
        char c;
        if (read(started[0], &c, 1) != 1)
            return 14;
    }
    close(go[1]);
    int failed = 0;
    for (int i = 0; i < n; i++) {
        int status;
        if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }
    return failed ? 15 : 0;
}

static int rss_mode(long mib)
{
    size_t size = (size_t)mib << 20;
    char *big = malloc(size);
    if (!big)
        return 10;
    memset(big, 1, size);
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%ld %ld", &pages, &resident) != 2)
        return 11;
    fclose(f);
    printf("rss %ld\n", resident * sysconf(_SC_PAGESIZE));
    fflush(stdout);
    sleep_ms(300);
    free(big);
    keep[0] = malloc(10);
    keep[1] = malloc(20);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "daemon") == 0)
        return daemon_mode(atoi(argv[2]), argv[3]);
    if (argc >= 3 && strcmp(argv[1], "children") == 0)
        return children_mode(atoi(argv[2]));
    if (argc >= 3 && strcmp(argv[1], "rss") == 0)
        return rss_mode(atol(argv[2]));
    if (argc >= 3 && strcmp(argv[1], "sleep") == 0) {
        keep[0] = malloc(64);
        sleep_ms(atoi(argv[2]) * 1000L);
        return 0;
    }
    fprintf(stderr, "usage: lifecycle daemon SECS PIDFILE | children N | rss MIB | sleep SECS\n");
    return 2;
}
