/* Victim of the stress tests (tests/e2e/test_stress.py, cases sigkill and
 * enospc).
 *
 *   stress_progress PROGRESS_FILE LIMIT [EXIT_STATUS]
 *
 * Iteration i (0 <= i < LIMIT): if i >= WINDOW, free block i-WINDOW; then
 * malloc block i of size_of(i) = 1 + (i * 37) % 500. Before each call it
 * stores, in PROGRESS_FILE (a MAP_SHARED mapping: the stores survive a
 * SIGKILL), how many mallocs and frees it has *started*. An allocation is
 * recorded only once its malloc was started, and every call that returned was
 * recorded before the next store, so after a SIGKILL the dump's figures are
 * A in [mallocs_started - 1, mallocs_started] and F in [frees_started - 1,
 * frees_started], blocks 0..A-1 allocated and 0..F-1 freed.
 * At LIMIT it frees the WINDOW blocks still held, prints "done LIMIT" and
 * returns EXIT_STATUS (default 0). It makes no other allocation (no stdio
 * before the end: the final line is built with snprintf and write(2)).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define WINDOW 64

struct progress {
    volatile uint64_t pid;
    volatile uint64_t mallocs_started;
    volatile uint64_t frees_started;
    volatile uint64_t done;
};

static size_t size_of(uint64_t i)
{
    return 1 + (size_t)((i * 37) % 500);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    uint64_t limit = strtoull(argv[2], NULL, 10);
    int status = argc > 3 ? atoi(argv[3]) : 0;
    int fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ftruncate(fd, sizeof(struct progress)) != 0)
        return 3;
    struct progress *pr = mmap(NULL, sizeof *pr, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (pr == MAP_FAILED)
        return 3;
    close(fd);
    pr->pid = (uint64_t)getpid();

    void *slots[WINDOW];
    for (uint64_t i = 0; i < limit; i++) {
        if (i >= WINDOW) {
            pr->frees_started = i - WINDOW + 1;
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
            free(slots[i % WINDOW]);
        }
        pr->mallocs_started = i + 1;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        slots[i % WINDOW] = malloc(size_of(i));
        if (!slots[i % WINDOW])
            return 4;
    }
    for (uint64_t i = limit > WINDOW ? limit - WINDOW : 0; i < limit; i++)
        free(slots[i % WINDOW]);
    pr->done = 1;
    char line[64];
    int n = snprintf(line, sizeof line, "done %llu\n", (unsigned long long)limit);
    if (write(1, line, (size_t)n) != n)
        return 5;
    return status;
}
