/* Victim of the stress test (tests/e2e/test_stress.py, case fork_exec).
 *
 *   stress_fork CHILDREN PROGRAM
 *
 * Before fork k (k = 0..CHILDREN-1) the parent mallocs 10 + k bytes and keeps
 * them; child k execs PROGRAM with the argument k at once (no allocation in
 * between), so its fork image ends with the parent's heap at that moment:
 * k + 1 allocations, no frees, sum(10 + j, j <= k) bytes. The parent waits for
 * every child, frees all its blocks and exits 0 if every child exited 0.
 * No stdio.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    int children = atoi(argv[1]);
    void **kept = calloc((size_t)children + 1, sizeof *kept); /* 1 allocation */
    if (!kept)
        return 3;
    for (int k = 0; k < children; k++) {
        kept[k] = malloc(10 + (size_t)k);
        char arg[16];
        snprintf(arg, sizeof arg, "%d", k);
        pid_t pid = fork();
        if (pid < 0)
            return 3;
        if (pid == 0) {
            char *args[] = {argv[2], arg, NULL};
            execv(argv[2], args);
            _exit(127);
        }
    }
    int failed = 0, status;
    pid_t pid;
    while ((pid = wait(&status)) > 0)
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed = 1;
    for (int k = 0; k < children; k++)
        free(kept[k]);
    free(kept);
    return failed;
}
