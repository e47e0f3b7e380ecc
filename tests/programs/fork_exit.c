/* Fork children that end at once (issue 17, point 2): the parent forks N
 * children, one after the other without waiting; each leaks one 64-byte
 * block (its only pointer dropped) and calls exit(0) at once, before the
 * consumer can have read its parent's fork record. Every child's dump must
 * still be scanned: definite 64 bytes in 1 block. The parent waits for them
 * all and leaks nothing.
 *
 *   fork_exit N
 */
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return 2;
        if (pid == 0) {
            sink = malloc(64);
            sink = 0;
            exit(0);
        }
    }
    int status, failed = 0;
    while (wait(&status) > 0)
        failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    return failed ? 1 : 0;
}
