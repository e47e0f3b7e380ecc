/* Victim of the report test (built -O2 -g): leaks one block from a function
 * that is always inlined into its caller and one from a plain function, and
 * prints "LEAK size function line" for each, the line being where the
 * allocation is. Also built stripped (report_leaks_stripped). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AT_LINE(var, expr) ((var) = __LINE__, (expr))

static int inline_line, plain_line;
static char *volatile sink[2];

static inline __attribute__((always_inline)) char *make_inline(size_t n)
{
    char *p = AT_LINE(inline_line, malloc(n));
    if (p)
        memset(p, 1, n); /* work after the call: not a tail call */
    return p;
}

__attribute__((noinline)) char *make_plain(size_t n)
{
    char *p = AT_LINE(plain_line, malloc(n));
    if (p)
        memset(p, 2, n);
    return p;
}

__attribute__((noinline)) static char *outer(size_t n)
{
    char *p = make_inline(n);
    if (p)
        p[0] = 3;
    return p;
}

int main(void)
{
    sink[0] = outer(2001);
    sink[1] = make_plain(2002);
    sink[0] = sink[1] = NULL; /* both lost */
    printf("LEAK 2001 make_inline %d\n", inline_line);
    printf("LEAK 2002 make_plain %d\n", plain_line);
    return 0;
}
