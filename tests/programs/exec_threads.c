/* Victim of the exec-while-threads-allocate test (issue 17 point 9): 4
 * threads malloc and free in a loop while main execs this program again;
 * the new image (argument "after") mallocs 100, 200 and 300 bytes, frees
 * the 200 and exits: 3 allocations, 1 free, 600 bytes, 400 in use in 2.
 *
 *   exec_threads            (then it execs: exec_threads after)
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void *volatile sink;

static void *worker(void *arg)
{
    (void)arg;
    for (;;) {
        void *p = malloc(64);
        sink = p;
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "after") == 0) {
        void *a = malloc(100), *b = malloc(200);
        sink = malloc(300);
        free(b);
        sink = a;
        return 0;
    }
    for (int i = 0; i < 4; i++) {
        pthread_t t;
        pthread_create(&t, NULL, worker, NULL);
    }
    usleep(20000); /* the threads are busy allocating */
    execl("/proc/self/exe", argv[0], "after", (char *)NULL);
    perror("exec");
    return 1;
}
