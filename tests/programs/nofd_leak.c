/* One 4,000-byte block, definitely lost (tests/e2e/test_nofd.py). */
#include <stdlib.h>

int main(void)
{
    void *volatile p = malloc(4000);
    p = 0;
    (void)p;
    return 0;
}
