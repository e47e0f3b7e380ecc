/* Victim for the tests of what memtrace could not check (test_unchecked.py):
 * each mode leaves a known heap and ends in a way that gives memtrace no
 * scan, or a scan it cannot make.
 *
 *   unchecked sigkill        leaks 4096 bytes (definite), keeps 500 reachable,
 *                            then raise(SIGKILL)
 *   unchecked raw-exit       the same, then syscall(SYS_exit_group, 0): no
 *                            libc exit, no atexit, no destructor
 *   unchecked raw-exit-clean frees everything, then syscall(SYS_exit_group, 0)
 *   unchecked exit           the same leaks, then exit(0) (scanned)
 *   unchecked exhaust BYTES  limits its own address space to BYTES
 *                            (RLIMIT_AS: only the program, not memtrace run,
 *                            whose ASan build cannot live under it), then
 *                            leaks 1 KiB blocks until malloc fails (at most
 *                            256 MiB), then exit(0): under an address-space
 *                            limit the scan has no memory left to run in
 *   unchecked exec SELF      leaks 4096 bytes, then execs SELF exit-clean
 *   unchecked exit-clean     frees everything, exit(0)
 *   unchecked fork-sigkill   a fork child leaks as above and raise(SIGKILL)s;
 *                            the parent reaps it 2 s later (until then it is
 *                            a zombie), then exits 0
 *   unchecked fork-raw-exit  the same, the child ending by a raw exit_group(3)
 *   unchecked corrupt-ring   writes a record of an unknown type into its own
 *                            ring (found in /proc/self/maps), then leaks and
 *                            exits 0: a malformed ring record
 *   unchecked wait N READY GO
 *                            leaks N 16-byte blocks, creates READY, waits
 *                            until GO exists, then exit(0)
 *
 * Nothing else allocates (no stdio).
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

void *volatile keep;
void *volatile sink;

static void leak(void)
{
    keep = malloc(500);
    sink = malloc(4096);
    sink = 0;
}

/* Publishes a 16-byte record of type 99 (no such type) in the ring that
 * memtrace mapped into this process: the consumer finds it malformed. 0, or
 * -1 if no ring was found. No stdio: nothing here allocates. */
static int corrupt_ring(void)
{
    static char maps[65536];
    int fd = open("/proc/self/maps", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = 0, got;
    while (n < (ssize_t)sizeof maps - 1 && (got = read(fd, maps + n, sizeof maps - 1 - n)) > 0)
        n += got;
    close(fd);
    maps[n] = '\0';
    for (char *line = maps; line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (strstr(line, "memfd:memtrace-ring") && strstr(line, "rw-s") &&
            strtoull(strchr(line, ' ') + 6, NULL, 16) == 0) { /* offset 0: the control page */
            unsigned char *base = (unsigned char *)strtoull(line, NULL, 16);
            volatile uint64_t *head = (volatile uint64_t *)base;
            /* struct mt_ring_control (ring.h): head at 0, capacity at 136 */
            uint64_t capacity = *(volatile uint64_t *)(base + 136);
            uint64_t at = *head & (capacity - 1);
            if (capacity < 4096 || at + 16 > capacity)
                return -1;
            uint32_t record[4] = {99, 16, 0, 0}; /* type, len, ts = 0 */
            memcpy(base + 4096 + at, record, sizeof record);
            __atomic_store_n(head, *head + 16, __ATOMIC_RELEASE);
            return 0;
        }
        line = next;
    }
    return -1;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    const char *mode = argv[1];
    if (strcmp(mode, "exit-clean") == 0 || strcmp(mode, "raw-exit-clean") == 0) {
        free(malloc(100));
        if (strcmp(mode, "raw-exit-clean") == 0)
            syscall(SYS_exit_group, 0);
        exit(0);
    }
    if (strcmp(mode, "exhaust") == 0 && argc == 3) {
        struct rlimit as;
        getrlimit(RLIMIT_AS, &as);
        as.rlim_cur = strtoul(argv[2], NULL, 10);
        if (setrlimit(RLIMIT_AS, &as) != 0)
            return 4;
        for (long i = 0; i < 256L * 1024 && (sink = malloc(1024)); i++)
            ;
        sink = 0;
        exit(0);
    }
    if (strcmp(mode, "wait") == 0 && argc == 5) {
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++)
            sink = malloc(16);
        sink = 0;
        int fd = open(argv[3], O_WRONLY | O_CREAT, 0644);
        if (fd < 0)
            return 3;
        close(fd);
        while (access(argv[4], F_OK) != 0)
            usleep(10000);
        exit(0);
    }
    if (strncmp(mode, "fork-", 5) == 0) {
        pid_t child = fork();
        if (child < 0)
            return 5;
        if (child == 0) {
            leak();
            if (strcmp(mode, "fork-sigkill") == 0)
                raise(SIGKILL);
            syscall(SYS_exit_group, 3);
        }
        sleep(2);
        int status;
        waitpid(child, &status, 0);
        exit(0);
    }
    if (strcmp(mode, "corrupt-ring") == 0) {
        free(malloc(10)); /* the ring exists once something was recorded */
        if (corrupt_ring() != 0)
            return 6;
        usleep(200000); /* the consumer reads it while this process lives */
        leak();
        exit(0);
    }
    leak();
    if (strcmp(mode, "sigkill") == 0)
        raise(SIGKILL);
    if (strcmp(mode, "raw-exit") == 0)
        syscall(SYS_exit_group, 0);
    if (strcmp(mode, "exit") == 0)
        exit(0);
    if (strcmp(mode, "exec") == 0 && argc == 3) {
        char *args[] = {argv[2], "exit-clean", NULL};
        execv(argv[2], args);
        return 4;
    }
    return 2;
}
