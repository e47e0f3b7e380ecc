/* Victim for the fork/exec test: what forker's child execs. Allocates 7 blocks
 * of 10, 20, ..., 70 bytes, frees 3 of them (10, 30, 50) and exits 0 with 4
 * leaked (20 + 40 + 60 + 70 = 190 bytes). Exits 2 unless its first argument
 * is "from-forker". No stdio.
 */
#include <stdlib.h>
#include <string.h>

void *volatile keep[8];

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "from-forker") != 0)
        return 2;
    for (int i = 0; i < 7; i++)
        keep[i] = malloc((size_t)10 * (i + 1));
    free(keep[0]);
    free(keep[2]);
    free(keep[4]);
    return 0;
}
