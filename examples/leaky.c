/* leaky: the sample program that README and scripts/demo.sh run under memtrace.
 *
 * It leaks in two distinct ways and cleans up correctly in two others:
 *   1. a linked list whose head pointer is dropped: the first node is
 *      definitely lost and the other five indirectly lost through it;
 *   2. a buffer that a helper function allocates for a message and that its
 *      caller forgets to free;
 *   3. (no leak) an array grown by realloc and freed when done;
 *   4. (no leak) a table that is allocated, used and freed.
 *
 *   cc -g -o leaky examples/leaky.c && build/memtrace run ./leaky
 *
 * Its own calls: 12 allocations, 5 frees, 544 bytes allocated; in use at exit
 * 7 blocks, 256 bytes: the 6-node list (6 x 32 bytes) and the 64-byte message.
 * libc adds one block of its own when printf first writes (the stdout
 * buffer), still reachable at exit; valgrind memcheck counts the same.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
    struct node *next;
    int value;
    char tag[20];
};

/* Builds a list of n nodes, newest first. */
static struct node *make_list(int n)
{
    struct node *head = NULL;
    for (int i = 0; i < n; i++) {
        struct node *node = malloc(sizeof *node);
        node->next = head;
        node->value = i;
        snprintf(node->tag, sizeof node->tag, "node-%d", i);
        head = node;
    }
    return head;
}

/* Returns a greeting in a fresh buffer: the caller must free it. */
static char *make_message(const char *name)
{
    char *message = malloc(64);
    snprintf(message, 64, "hello, %s", name);
    return message;
}

/* Sums 1..n through an array that grows as it fills, then frees it. */
static long sum_through_array(int n)
{
    int capacity = 4;
    int *values = malloc(capacity * sizeof *values);
    for (int i = 0; i < n; i++) {
        if (i == capacity) {
            capacity *= 2;
            values = realloc(values, capacity * sizeof *values);
        }
        values[i] = i + 1;
    }
    long sum = 0;
    for (int i = 0; i < n; i++)
        sum += values[i];
    free(values);
    return sum;
}

/* A table used and freed correctly: nothing of it is left at exit. */
static int count_tags(const struct node *list)
{
    int n = 0;
    for (const struct node *p = list; p != NULL; p = p->next)
        n++;
    const struct node **table = calloc((size_t)n, sizeof *table);
    int i = 0;
    for (const struct node *p = list; p != NULL; p = p->next)
        table[i++] = p;
    int with_digit = 0;
    for (i = 0; i < n; i++)
        with_digit += strchr(table[i]->tag, '-') != NULL;
    free(table);
    return with_digit;
}

int main(void)
{
    struct node *list = make_list(6);
    int tagged = count_tags(list);
    list = NULL; /* leak 1: the whole list */

    char *message = make_message("memtrace");
    long sum = sum_through_array(20);
    printf("%s: %d tagged nodes, sum %ld\n", message, tagged, sum);
    /* leak 2: message is never freed */
    return 0;
}
