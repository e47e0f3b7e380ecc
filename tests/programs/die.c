/* Victim for the death tests: leaks a known set of blocks, then dies.
 *
 *   die abort | segv | exit STATUS | sigkill
 *   die loop PROGRESS_FILE PID_FILE
 *
 * The first four make the same 20 blocks (block i has 32 * (i + 1) bytes),
 * free the even ones, grow block 1 by realloc to 1000 bytes and calloc one
 * 10 x 10 block, then die by abort(), a write through NULL, _exit(STATUS) or
 * raise(SIGKILL). In use at death: blocks 3, 5, ..., 19 (32 * (4 + 6 + ... +
 * 20) = 3456 bytes), the 1000-byte block and the 100-byte block: 11 blocks,
 * 4556 bytes. Totals: 22 allocations, 11 frees, 7820 bytes allocated.
 *
 * `loop` writes its pid to PID_FILE, then allocates forever: allocation k has
 * loop_size(k) = 16 + (k % 64) * 8 bytes and is freed right away unless
 * k % 10 == 0. Every 1000 allocations it overwrites PROGRESS_FILE with the
 * number of allocations made so far. The test kills it with SIGKILL.
 * No stdio anywhere: nothing but these calls allocates.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *volatile keep[32];

static void write_number(const char *path, long value)
{
    char buf[32];
    int len = 0;
    char digits[24];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0);
    while (n > 0)
        buf[len++] = digits[--n];
    buf[len++] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    if (fd < 0)
        _exit(3);
    /* overwrite in place: the numbers only grow, so the file never shrinks */
    if (pwrite(fd, buf, (size_t)len, 0) != len)
        _exit(3);
    close(fd);
}

static void leak_known_set(void)
{
    for (int i = 0; i < 20; i++)
        keep[i] = malloc((size_t)32 * (i + 1));
    for (int i = 0; i < 20; i += 2)
        free(keep[i]);
    keep[1] = realloc(keep[1], 1000);
    keep[20] = calloc(10, 10);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    if (strcmp(argv[1], "loop") == 0) {
        if (argc < 4)
            return 2;
        write_number(argv[3], (long)getpid());
        for (long k = 0;; k++) {
            void *p = malloc(16 + (size_t)(k % 64) * 8);
            if (k % 10 != 0)
                free(p);
            else
                keep[31] = p;
            if ((k + 1) % 1000 == 0)
                write_number(argv[2], k + 1);
        }
    }
    leak_known_set();
    if (strcmp(argv[1], "abort") == 0)
        abort();
    if (strcmp(argv[1], "segv") == 0) {
        volatile int *volatile nowhere = NULL;
        *nowhere = 1;
    }
    if (strcmp(argv[1], "exit") == 0 && argc > 2)
        _exit(atoi(argv[2]));
    if (strcmp(argv[1], "sigkill") == 0)
        raise(SIGKILL);
    return 2;
}
