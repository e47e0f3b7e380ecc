/* Preloaded after the shim by lifecycle.daemon_late (LD_PRELOAD=shim:this):
 * its constructor runs first and registers a fork child handler before the
 * shim registers its own, so that every fork child waits half a second
 * before the shim's handler says HELLO. A daemon's middle process, which
 * forks and exits at once, has then ended before its child says HELLO: the
 * child belongs to another parent by the time the consumer reads it. No
 * malloc, no stdio. */
#include <pthread.h>
#include <time.h>

static void hold_the_child(void)
{
    struct timespec half = {0, 500000000};
    while (nanosleep(&half, &half) != 0)
        ;
}

__attribute__((constructor)) static void register_first(void)
{
    pthread_atfork(NULL, NULL, hold_the_child);
}
