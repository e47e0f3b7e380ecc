/* The block gate_leaks' lost tree points to (an indirect leak). */
#include "gate_child.h"

#include <stdlib.h>
#include <string.h>

int make_child_line;

__attribute__((noinline)) void *make_child(size_t n)
{
    make_child_line = __LINE__ + 1;
    char *p = malloc(n);
    memset(p, 5, n);
    return p;
}
