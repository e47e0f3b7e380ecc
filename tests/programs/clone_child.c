/* Victim of the clone test (issue 17 point 8): a child made without
 * glibc's fork, so that no atfork handler runs in it.
 *
 *   clone_child fn|raw
 *
 * fn:  clone(child_main, stack, SIGCHLD, NULL)
 * raw: syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0): the child returns from the
 *      syscall on a copy of the parent's stack, as after fork()
 * The parent mallocs 100, 200 and 300 bytes and frees the 200, makes the
 * child and waits for it, then mallocs 400 and frees the 100. The child
 * (which starts with a copy of the parent's heap: 100 and 300 in use)
 * mallocs 1000 and 2000, frees the 1000 and the 300, and exits.
 * Parent: 4 allocations, 2 frees, 1000 bytes, 700 in use in 2 blocks.
 * Child: 5 allocations, 3 frees, 3600 bytes, 2100 in use in 2 blocks.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile keep[8];
static char child_stack[256 * 1024] __attribute__((aligned(16)));

static int child_main(void *arg)
{
    (void)arg;
    void *a = malloc(1000);
    keep[4] = malloc(2000);
    free(a);
    free(keep[2]); /* the parent's 300 */
    keep[2] = NULL;
    exit(0);
}

int main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "fn") != 0 && strcmp(argv[1], "raw") != 0)) {
        fprintf(stderr, "usage: clone_child fn|raw\n");
        return 2;
    }
    keep[0] = malloc(100);
    keep[1] = malloc(200);
    keep[2] = malloc(300);
    free(keep[1]);
    keep[1] = NULL;
    pid_t pid;
    if (strcmp(argv[1], "fn") == 0) {
        pid = clone(child_main, child_stack + sizeof child_stack, SIGCHLD, NULL);
    } else {
        pid = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
        if (pid == 0)
            child_main(NULL);
    }
    if (pid < 0)
        return 3;
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 4;
    keep[3] = malloc(400);
    free(keep[0]);
    keep[0] = NULL;
    return 0;
}
