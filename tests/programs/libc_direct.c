/* Victim for the bypass test (tests/e2e/test_bypass.py, issue 17 point 7):
 * glibc's exported __libc_* allocation functions called directly, and
 * mixed with the ordinary ones.
 *
 *   libc_direct [N]     N rounds (default 3); exits 0, 2 if one fails
 *
 * Each round: __libc_malloc(100) kept (reachable), __libc_calloc(10, 20)
 * freed by free(), __libc_realloc of a malloc(30) to 300 kept,
 * __libc_memalign(64, 400) freed by __libc_free, __libc_valloc(500) kept,
 * malloc(50) freed by __libc_free, and __libc_malloc(60) whose pointer is
 * dropped (definitely lost). No stdio.
 */
#include <stdlib.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void *__libc_valloc(size_t);
extern void __libc_free(void *);

void *libc_direct_kept[3 * 64];
static void *volatile sink;

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    if (rounds < 0 || rounds > 64)
        return 2;
    int k = 0;
    for (int i = 0; i < rounds; i++) {
        void *a = __libc_malloc(100);
        void *b = __libc_calloc(10, 20);
        void *c = __libc_realloc(malloc(30), 300);
        void *d = __libc_memalign(64, 400);
        void *e = __libc_valloc(500);
        void *f = malloc(50);
        if (!a || !b || !c || !d || !e || !f || ((size_t)d & 63) || ((size_t)e & 4095))
            return 2;
        free(b);
        __libc_free(d);
        __libc_free(f);
        libc_direct_kept[k++] = a;
        libc_direct_kept[k++] = c;
        libc_direct_kept[k++] = e;
        sink = __libc_malloc(60);
        sink = 0;
    }
    return 0;
}
