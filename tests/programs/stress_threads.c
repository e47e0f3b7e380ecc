/* Victim of the stress test (tests/e2e/test_stress.py, case threads).
 *
 *   stress_threads THREADS PER_THREAD
 *
 * THREADS threads each make PER_THREAD allocations (malloc, or calloc for
 * every 7th) of a deterministic size and push every block onto the queue of
 * another thread (an intrusive list under a mutex: the block is the node);
 * each thread pops and frees from its own queue as it goes, and the main
 * thread frees whatever is left after the joins. So most blocks are freed on
 * a thread other than the one that made them, and nothing leaks.
 * It prints "expect allocations=A frees=F bytes=B" (its own calls only) with
 * write(2), and no stdio: glibc's own allocations (the threads' DTVs) are
 * measured by the test as the figures of a PER_THREAD=0 run.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 256

struct node { struct node *next; };
struct queue { pthread_mutex_t lock; struct node *head; };

static struct queue queues[MAX_THREADS];
static int nthreads;
static long per_thread;

static size_t size_of(long t, long i)
{
    return 16 + (size_t)((t * 131 + i * 17) % 1000);
}

static void push(int q, void *p)
{
    struct node *n = p;
    pthread_mutex_lock(&queues[q].lock);
    n->next = queues[q].head;
    queues[q].head = n;
    pthread_mutex_unlock(&queues[q].lock);
}

static struct node *pop_all(int q)
{
    pthread_mutex_lock(&queues[q].lock);
    struct node *n = queues[q].head;
    queues[q].head = NULL;
    pthread_mutex_unlock(&queues[q].lock);
    return n;
}

static void free_list(struct node *n)
{
    while (n) {
        struct node *next = n->next;
        free(n);
        n = next;
    }
}

static void *worker(void *arg)
{
    long t = (long)(intptr_t)arg;
    for (long i = 0; i < per_thread; i++) {
        size_t size = size_of(t, i);
        void *p = (i % 7 == 0) ? calloc(1, size) : malloc(size);
        if (!p)
            abort();
        push((int)((t + 1 + i % 5) % nthreads), p);
        if (i % 16 == 15)
            free_list(pop_all((int)t));
    }
    free_list(pop_all((int)t));
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    nthreads = atoi(argv[1]);
    per_thread = atol(argv[2]);
    if (nthreads < 1 || nthreads > MAX_THREADS || per_thread < 0)
        return 2;
    for (int t = 0; t < nthreads; t++)
        pthread_mutex_init(&queues[t].lock, NULL);
    pthread_t ids[MAX_THREADS];
    for (long t = 0; t < nthreads; t++)
        if (pthread_create(&ids[t], NULL, worker, (void *)(intptr_t)t) != 0)
            return 3;
    for (int t = 0; t < nthreads; t++)
        pthread_join(ids[t], NULL);
    for (int t = 0; t < nthreads; t++)
        free_list(pop_all(t));
    unsigned long long bytes = 0;
    for (long t = 0; t < nthreads; t++)
        for (long i = 0; i < per_thread; i++)
            bytes += size_of(t, i);
    unsigned long long count = (unsigned long long)nthreads * (unsigned long long)per_thread;
    char line[128];
    int n = snprintf(line, sizeof line, "expect allocations=%llu frees=%llu bytes=%llu\n",
                     count, count, bytes);
    if (write(1, line, (size_t)n) != n)
        return 4;
    return 0;
}
