/* Victim of the exec tests (tests/e2e/test_execs.py): the shape of issue 17
 * point 5, built twice: statically linked (execs_static, which memtrace
 * cannot trace) and dynamically (execs_dynamic). It leaks 4000 bytes, after
 * sleeping MS milliseconds (0 if not given), and exits 0.
 *
 *   execs_static [MS]
 */
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
    long ms = argc > 1 ? atol(argv[1]) : 0;
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    if (ms)
        nanosleep(&t, NULL);
    void *volatile p = malloc(4000);
    p = 0;
    (void)p;
    return 0;
}
