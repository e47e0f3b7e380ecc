/* Victim for the clock-switch test: the moment a process's event stamps go
 * from the coarse clock (one thread recording) to the fine clock (the second
 * thread's first event), with blocks changing threads right then.
 *
 *   clock_switch CHILDREN ROUNDS
 *
 * The parent forks CHILDREN children one after the other (each fork child
 * starts on the coarse clock again) and waits for each. A child allocates
 * and frees on its main thread (coarse stamps), then starts a worker while it
 * goes on. The two hand blocks to each other through two one-block mailboxes:
 * main allocates ROUNDS blocks for the worker to free, the worker ROUNDS for
 * main to free, and while a mailbox is full or empty the waiting thread
 * allocates and frees a block of its own. Run with glibc's tcache off
 * (GLIBC_TUNABLES=glibc.malloc.tcache_count=0), a freed block goes back to
 * its arena at once, so an address freed on one thread is soon handed out
 * on the other: a free stamped after the allocation that reused its address
 * shows in the dump as an allocation over a live block and a free of
 * nothing, and the child's frees no longer match its allocations.
 *
 * Every block is freed; the worker's stack (64 MiB: too big for glibc's
 * stack cache) and DTV are freed at join. A child exits 0, or 3 if a block
 * arrives damaged; the parent exits 0 if every child did, else 1. No stdio.
 */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static long rounds;
static uint64_t *to_worker, *to_main; /* the mailboxes: NULL when empty */
static volatile int damaged;

/* Puts p into *box once it is empty, allocating and freeing while it waits. */
static void post(uint64_t **box, uint64_t *p)
{
    uint64_t *empty = NULL;
    while (!__atomic_compare_exchange_n(box, &empty, p, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        empty = NULL;
        free(malloc(40));
        sched_yield();
    }
}

/* Takes the block in *box, or NULL if it is empty. */
static uint64_t *take(uint64_t **box) { return __atomic_exchange_n(box, NULL, __ATOMIC_ACQ_REL); }

/* Allocates a block marked with tag and posts it into *box. */
static void send_block(uint64_t **box, uint64_t tag)
{
    uint64_t *p = malloc(40);
    if (!p)
        abort();
    p[0] = tag;
    post(box, p);
}

static void check_and_free(uint64_t *q, uint64_t tag)
{
    if (q[0] != tag)
        damaged = 1;
    free(q);
}

static void *worker(void *arg)
{
    (void)arg;
    long got = 0, sent = 0;
    while (got < rounds || sent < rounds) {
        uint64_t *q = take(&to_worker);
        if (q) {
            check_and_free(q, 0x6d61696e);
            got++;
        }
        if (sent < rounds && !__atomic_load_n(&to_main, __ATOMIC_ACQUIRE)) {
            send_block(&to_main, 0x776f726b);
            sent++;
        }
        if (!q)
            free(malloc(40));
    }
    return NULL;
}

static int child(void)
{
    for (int i = 0; i < 100; i++) /* coarse stamps, main thread alone */
        free(malloc(40));
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, (size_t)64 << 20);
    pthread_t id;
    if (pthread_create(&id, &attr, worker, NULL) != 0)
        return 2;
    pthread_attr_destroy(&attr);
    long got = 0, sent = 0;
    while (got < rounds || sent < rounds) {
        if (sent < rounds) {
            send_block(&to_worker, 0x6d61696e);
            sent++;
        }
        uint64_t *q = take(&to_main);
        if (q) {
            check_and_free(q, 0x776f726b);
            got++;
        } else {
            free(malloc(40));
        }
    }
    pthread_join(id, NULL);
    return damaged ? 3 : 0;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    long children = atol(argv[1]);
    rounds = atol(argv[2]);
    int bad = 0;
    for (long k = 0; k < children; k++) {
        pid_t pid = fork();
        if (pid < 0)
            return 1;
        if (pid == 0)
            _exit(child());
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            bad = 1;
    }
    return bad;
}
