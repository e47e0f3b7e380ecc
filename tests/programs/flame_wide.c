/* Victim of the flame graph scale test: leaks one block from each of N
 * distinct call paths (default 100000). Path i is a chain of LEVELS calls
 * (default 17), each to left() or right() as bit `level` of i says (bits
 * past the 32nd read 0), so every i < 2^LEVELS has a stack of its own, by
 * name as well as by address. Block sizes vary with i (1 to 256 bytes) so
 * that the widths in the graph do too, unless SIZE is given.
 *
 *   flame_wide [N [LEVELS [SIZE]]]
 *
 * With N = 0 it allocates nothing (the empty flame graph); `flame_wide 1180
 * 56 64` gives 1180 equal stacks 56 calls deep, each a pixel wide all the
 * way up: the most frames a flame graph of 1200 pixels can have to draw.
 * Prints nothing. */
#include <stdlib.h>

static unsigned levels = 17, fixed_size;

static void left(unsigned level, unsigned i);
static void right(unsigned level, unsigned i);

static void leak(unsigned i)
{
    unsigned h = i * 2654435761u;
    char *p = malloc(fixed_size ? fixed_size : 1 + (h >> 24)); /* never freed */
    if (!p)
        abort();
    p[0] = 1;
}

static int bit(unsigned i, unsigned level)
{
    return level < 32 && (i >> level & 1);
}

static void left(unsigned level, unsigned i)
{
    if (level == levels)
        leak(i);
    else if (bit(i, level))
        right(level + 1, i);
    else
        left(level + 1, i);
}

static void right(unsigned level, unsigned i)
{
    if (level == levels)
        leak(i);
    else if (bit(i, level))
        right(level + 1, i);
    else
        left(level + 1, i);
}

int main(int argc, char **argv)
{
    unsigned n = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 100000;
    if (argc > 2)
        levels = (unsigned)strtoul(argv[2], NULL, 10);
    if (argc > 3)
        fixed_size = (unsigned)strtoul(argv[3], NULL, 10);
    if (levels < 1 || levels > 1000)
        return 2;
    if (levels < 32 && n > 1u << levels)
        n = 1u << levels;
    for (unsigned i = 0; i < n; i++) {
        if (i & 1)
            right(1, i);
        else
            left(1, i);
    }
    return 0;
}
