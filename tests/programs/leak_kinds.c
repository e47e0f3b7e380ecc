/* Victim of the leak-kind test: builds one block of each kind memcheck
 * knows, and ends as its argument says.
 *
 *   leak_kinds [exit|thread-exit|_exit|clean]
 *
 * definite: a block whose pointer is dropped (33 bytes); indirect: a lost
 * list of 5 nodes (the head definite, 4 nodes indirect); possible: a block
 * known only by a pointer into its interior; reachable: a global, a
 * thread-local variable of the main thread, a block known only from another
 * thread's stack, and one only from that thread's thread-local variable.
 * "thread-exit" calls exit() from the other thread; "_exit" calls _exit();
 * "clean" frees everything and exits normally. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct node {
    struct node *next;
    char pad[24];
};

void *global_keep;
char *interior;
void *volatile dropped;
static __thread void *tls_keep;
static volatile int ready;
static const char *mode = "exit";

static void *holder(void *arg)
{
    (void)arg;
    void *only_on_my_stack = malloc(77);
    static __thread void *thread_tls;
    thread_tls = malloc(55);
    ready = 1;
    if (strcmp(mode, "thread-exit") == 0)
        exit(3);
    for (;;) {
        __asm__ volatile("" ::"r"(only_on_my_stack), "r"(thread_tls) : "memory");
        pause();
    }
    return NULL;
}

/* In a function of its own: no pointer to the list outlives its frame, even
 * while main's frame is still live (exit from a thread, _exit). */
__attribute__((noinline)) static void build_lost_list(void)
{
    struct node *head = NULL;
    for (int i = 0; i < 5; i++) {
        struct node *n = malloc(sizeof *n);
        n->next = head;
        head = n;
    }
    dropped = malloc(33);
    dropped = NULL;
}

/* Overwrites the dead frames below main's with zeros. */
__attribute__((noinline)) static void scrub_stack(void)
{
    volatile char buf[4096];
    memset((char *)buf, 0, sizeof buf);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        mode = argv[1];
    if (strcmp(mode, "clean") == 0) {
        void *p = malloc(10);
        free(p);
        return 0;
    }
    global_keep = malloc(100);
    interior = (char *)malloc(200) + 10;
    tls_keep = malloc(300);
    build_lost_list();
    scrub_stack();
    pthread_t t;
    pthread_create(&t, NULL, holder, NULL);
    while (!ready)
        ;
    if (strcmp(mode, "thread-exit") == 0)
        pthread_join(t, NULL); /* the thread exits the process */
    if (strcmp(mode, "_exit") == 0)
        _exit(4);
    return 0;
}
