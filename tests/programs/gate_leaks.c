/* Victim of the gate, suppression and CI-report tests: leaks of known
 * sizes, kinds and stacks, and a peak well above what leaks. Prints
 * "LEAK size kind function line" for each block it leaves allocated, the
 * line being the allocation's. Every size is distinct, so a test finds each
 * leak by its size.
 *
 *   leak_plain         1000  definite  malloc
 *   leak_zeroed_array   300  definite  calloc (the name holds no "calloc":
 *                                      only the allocation frame does)
 *   leak_tree            64  definite  malloc, holds the only pointer to
 *   make_child           36  indirect  malloc, in gate_child.c
 *   leak_helper         200  definite  malloc, called from caller_one
 *   leak_helper         220  definite  malloc, called from caller_two
 *   leak_realloc        700  definite  realloc
 *   keep_reachable     5000  reachable malloc, held by a global
 *
 * Also built with -fsanitize=leak (gate_leaks_lsan) to check suppression
 * files against LeakSanitizer itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gate_child.h"

#define AT_LINE(var, expr) ((var) = __LINE__, (expr))

struct node {
    void *child;
    char pad[56];
};

static void *volatile reachable; /* keeps its block reachable */
static int line_plain, line_zeroed, line_tree, line_helper, line_realloc, line_keep;

__attribute__((noinline)) static void leak_plain(void)
{
    char *p = AT_LINE(line_plain, malloc(1000));
    memset(p, 1, 1000);
}

__attribute__((noinline)) static void leak_zeroed_array(void)
{
    char *p = AT_LINE(line_zeroed, calloc(3, 100));
    p[0] = 1;
}

__attribute__((noinline)) static void leak_tree(void)
{
    struct node *root = AT_LINE(line_tree, malloc(sizeof *root));
    memset(root, 0, sizeof *root);
    root->child = make_child(36);
}

__attribute__((noinline)) void leak_helper(size_t n)
{
    char *p = AT_LINE(line_helper, malloc(n));
    memset(p, 2, n);
}

__attribute__((noinline)) void caller_one(void)
{
    leak_helper(200);
}
__attribute__((noinline)) void caller_two(void)
{
    leak_helper(220);
}

__attribute__((noinline)) static void leak_realloc(void)
{
    char *p = malloc(10);
    p = AT_LINE(line_realloc, realloc(p, 700));
    memset(p, 3, 700);
}

__attribute__((noinline)) static void keep_reachable(void)
{
    reachable = AT_LINE(line_keep, malloc(5000));
}

/* The peak: 100,000 bytes on top of everything above, then freed. */
__attribute__((noinline)) static void peak(void)
{
    char *p = malloc(100000);
    memset(p, 4, 100000);
    free(p);
}

int main(void)
{
    leak_plain();
    leak_zeroed_array();
    leak_tree();
    caller_one();
    caller_two();
    leak_realloc();
    keep_reachable();
    peak();
    printf("LEAK 1000 definite leak_plain %d\n", line_plain);
    printf("LEAK 300 definite leak_zeroed_array %d\n", line_zeroed);
    printf("LEAK 64 definite leak_tree %d\n", line_tree);
    printf("LEAK 36 indirect make_child %d\n", make_child_line);
    printf("LEAK 200 definite leak_helper %d\n", line_helper);
    printf("LEAK 220 definite leak_helper %d\n", line_helper);
    printf("LEAK 700 definite leak_realloc %d\n", line_realloc);
    printf("LEAK 5000 reachable keep_reachable %d\n", line_keep);
    return 0;
}
