/* Victim of the gate tests that leaks nothing: every block is freed. */
#include <stdlib.h>
#include <string.h>

int main(void)
{
    char *blocks[16];
    for (int i = 0; i < 16; i++) {
        blocks[i] = malloc(100 + i);
        memset(blocks[i], i, 100 + i);
    }
    for (int i = 0; i < 16; i++)
        free(blocks[i]);
    return 0;
}
