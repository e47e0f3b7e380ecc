/* Victim for the threads test: THREADS threads pass blocks around a ring.
 *
 *   threads THREADS PER_THREAD LEAK_EVERY
 *
 * Thread t allocates PER_THREAD blocks (block k: block_size(t, k) bytes, by
 * malloc, or calloc when k % 3 == 1) and pushes each onto the locked queue of
 * thread (t + 1) % THREADS; it pops from its own queue and frees what it pops,
 * so every block is freed by another thread than the one that allocated it.
 * Every 5th popped block is first grown by realloc on the popping thread (one
 * more allocation and free, of realloc_size(k) bytes). When LEAK_EVERY > 0,
 * every popped block whose k % LEAK_EVERY == LEAK_EVERY - 1 is kept instead
 * of freed (leaked). Exits 3 if a block arrives damaged.
 * tests/e2e/test_threads.py computes the same totals from the arguments.
 * No stdio.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct block {
    struct block *next;
    uint32_t owner;
    uint32_t k;
};

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    struct block *head;
    char pad[64];
};

static struct queue *queues;
static int threads;
static long per_thread;
static long leak_every;
static struct block *volatile leaked_head;
static pthread_mutex_t leaked_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t block_size(long t, long k)
{
    return sizeof(struct block) + (size_t)((t * 7 + k * 13) % 200);
}

static size_t realloc_size(long k)
{
    return sizeof(struct block) + 200 + (size_t)(k % 300);
}

static void *worker(void *arg)
{
    long t = (long)(intptr_t)arg;
    struct queue *out = &queues[(t + 1) % threads];
    struct queue *in = &queues[t];
    long popped = 0;
    for (long k = 0; k < per_thread || popped < per_thread; k++) {
        if (k < per_thread) {
            size_t n = block_size(t, k);
            struct block *b = (k % 3 == 1) ? calloc(1, n) : malloc(n);
            b->owner = (uint32_t)t;
            b->k = (uint32_t)k;
            pthread_mutex_lock(&out->lock);
            b->next = out->head;
            out->head = b;
            pthread_cond_signal(&out->nonempty);
            pthread_mutex_unlock(&out->lock);
        }
        pthread_mutex_lock(&in->lock);
        while (in->head == NULL && k >= per_thread)
            pthread_cond_wait(&in->nonempty, &in->lock);
        struct block *got = in->head;
        if (got != NULL)
            in->head = got->next;
        pthread_mutex_unlock(&in->lock);
        if (got == NULL)
            continue;
        popped++;
        if (got->owner != (uint32_t)((t + threads - 1) % threads))
            exit(3);
        if (got->k % 5 == 0) {
            struct block *moved = realloc(got, realloc_size(got->k));
            if (moved == NULL)
                exit(3);
            got = moved;
        }
        if (leak_every > 0 && got->k % leak_every == leak_every - 1) {
            pthread_mutex_lock(&leaked_lock);
            got->next = leaked_head;
            leaked_head = got;
            pthread_mutex_unlock(&leaked_lock);
        } else {
            free(got);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    threads = atoi(argv[1]);
    per_thread = atol(argv[2]);
    leak_every = atol(argv[3]);
    if (threads < 1 || threads > 64 || per_thread < 0)
        return 2;
    static struct queue storage[64];
    queues = storage;
    for (int i = 0; i < threads; i++) {
        pthread_mutex_init(&queues[i].lock, NULL);
        pthread_cond_init(&queues[i].nonempty, NULL);
    }
    /* Stacks larger than glibc's stack cache (40 MiB) are unmapped at join,
     * and with them each thread's DTV, libc's one heap block per thread:
     * so nothing of libc's is left in use at exit either. */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)64 << 20);
    pthread_t ids[64];
    for (long t = 0; t < threads; t++)
        if (pthread_create(&ids[t], &attr, worker, (void *)(intptr_t)t) != 0)
            return 4;
    pthread_attr_destroy(&attr);
    for (int t = 0; t < threads; t++)
        pthread_join(ids[t], NULL);
    return 0;
}
