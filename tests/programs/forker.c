/* Victim for the fork/exec tests.
 *
 *   forker exec GRANDCHILD   the child execs GRANDCHILD (its only argument is
 *                            "from-forker")
 *   forker exit              the child ends with _exit(0) where it would exec
 *
 * The parent allocates 5 blocks (100, 200, ..., 500 bytes), frees the 200,
 * forks, waits for the child, frees the 300, allocates 64 bytes and returns
 * with the 100, 400, 500 and 64 byte blocks leaked.
 * The child, which starts with the parent's heap, frees the 100, allocates
 * 1000 and 2000 bytes, reallocs the 2000 to 3000, frees the 400, then execs or
 * _exits. Both ways the child's heap at its end is the same, so the `exit` run
 * under valgrind gives the child's figures (valgrind prints no summary for a
 * process image that execs). The parent exits 1 if the child did not exit 0.
 * No stdio: nothing but these calls allocates.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void *volatile keep[16];

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int do_exec = strcmp(argv[1], "exec") == 0;
    if (do_exec && argc < 3)
        return 2;
    for (int i = 0; i < 5; i++)
        keep[i] = malloc((size_t)100 * (i + 1));
    free(keep[1]);

    pid_t child = fork();
    if (child < 0)
        return 3;
    if (child == 0) {
        free(keep[0]);
        keep[5] = malloc(1000);
        keep[6] = malloc(2000);
        keep[6] = realloc(keep[6], 3000);
        free(keep[3]);
        if (do_exec) {
            char *args[] = {argv[2], "from-forker", NULL};
            execv(argv[2], args);
            _exit(127);
        }
        _exit(0);
    }
    int status = 0;
    if (waitpid(child, &status, 0) != child)
        return 3;
    free(keep[2]);
    keep[7] = malloc(64);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
