/* Victim of test_symbolize (built -O2 -g): the allocation is in a static
 * inline function that is always inlined into its caller, so the return
 * address lies in inlined code. Prints "SITE size function line" for the
 * allocation and "CALLER size function line" for the call that was inlined. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AT_LINE(var, expr) ((var) = __LINE__, (expr))

static int fill_line, call_line;
static char *volatile keep;

static inline __attribute__((always_inline)) char *fill_buffer(size_t n, int c)
{
    char *p = AT_LINE(fill_line, malloc(n));
    if (p)
        memset(p, c, n); /* work after the call: it cannot become a tail call */
    return p;
}

__attribute__((noinline)) static char *build_buffer(size_t n)
{
    char *p = AT_LINE(call_line, fill_buffer(n, 'x'));
    if (p)
        p[n - 1] = '\0';
    return p;
}

int main(void)
{
    keep = build_buffer(1002);
    printf("SITE 1002 fill_buffer %d\n", fill_line);
    printf("CALLER 1002 build_buffer %d\n", call_line);
    free(keep);
    return 0;
}
