/* Victim of test_symbolize (built -O0 -g): allocations of distinctive
 * sizes, in helpers and in main. It prints where each one is, as "SITE size
 * function line", for the test to compare with the symbolizer's answer. */
#include <stdio.h>
#include <stdlib.h>

/* AT_LINE(var, expr): stores the line it is written on in var, then
 * evaluates expr. Written on the line of the call, it names that line. */
#define AT_LINE(var, expr) ((var) = __LINE__, (expr))

static int record_line, main_line, leak_line;
static void *volatile keep[2];

__attribute__((noinline)) static void *make_record(size_t n)
{
    void *p = AT_LINE(record_line, malloc(n));
    return p;
}

/* The call is the last instruction of its line (its result is dropped): the
 * return address is the first instruction of the next line, so only a lookup
 * of return address - 1 finds the line of the call. The block leaks. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-result" /* (void) does not silence it */
__attribute__((noinline)) static void leak_record(size_t n)
{
    (void)AT_LINE(leak_line, malloc(n));
}
#pragma GCC diagnostic pop

int main(void)
{
    keep[0] = make_record(1001);
    keep[1] = AT_LINE(main_line, malloc(1003));
    leak_record(1006);
    printf("SITE 1001 make_record %d\n", record_line);
    printf("SITE 1003 main %d\n", main_line);
    printf("SITE 1006 leak_record %d\n", leak_line);
    free(keep[0]);
    free(keep[1]);
    return 0;
}
