/* Victim of the no-ring test (issue 17 point 6): the program lowers its
 * descriptor limit to 3, then starts 4 threads that malloc and free 1000
 * blocks each, and leaks 1000 bytes in main.
 *
 *   nofile_threads
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/resource.h>

static void *volatile sink;

static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        void *p = malloc(32);
        sink = p;
        free(p);
    }
    return NULL;
}

int main(void)
{
    struct rlimit limit = {3, 3};
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
        return 2;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, worker, NULL) != 0)
            return 3;
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    sink = malloc(1000);
    sink = NULL;
    return 0;
}
