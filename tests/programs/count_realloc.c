/* Victim for the counting test: every realloc rule of SPEC section 4.
 *
 * Grow, shrink, same size, realloc(NULL, n), realloc(NULL, 0), realloc(p, 0)
 * and a realloc that fails (p stays valid). Some blocks are leaked on purpose.
 * No stdio, so libc allocates nothing of its own: valgrind and memtrace must
 * see exactly the calls below. Sizes go through volatile variables so that the
 * compiler neither warns about nor folds the odd ones.
 */
#include <stdint.h>
#include <stdlib.h>

static volatile size_t huge = SIZE_MAX;
static volatile size_t zero = 0;
void *volatile leaked[8];

int main(void)
{
    /* grow in steps, crossing the mmap threshold and coming back */
    char *p = malloc(16);
    for (size_t n = 32; n <= 300000; n *= 3) {
        p = realloc(p, n);
        p[n - 1] = 1;
    }
    p = realloc(p, 100); /* shrink from mmap'd size back to a small one */
    p = realloc(p, 10);  /* shrink */
    p = realloc(p, 10);  /* same size: still one allocation and one free */
    p = realloc(p, 10);
    free(p);

    char *q = realloc(NULL, 77);   /* realloc(NULL, n) is malloc(n) */
    char *z = realloc(NULL, zero); /* realloc(NULL, 0): a 0-byte allocation */
    q = realloc(q, 200);
    void *gone = realloc(q, zero); /* realloc(p, 0): one free, returns NULL */
    (void)gone;

    char *r = malloc(1000);
    char *failed = realloc(r, huge); /* fails: nothing counted, r untouched */
    if (failed != NULL)
        return 1;
    r = realloc(r, 2000);

    leaked[0] = r;                  /* leaked: 2000 bytes */
    leaked[1] = z;                  /* leaked: 0 bytes, still one block */
    leaked[2] = realloc(NULL, 333); /* leaked */
    leaked[3] = realloc(malloc(5), 4096);
    return 0;
}
