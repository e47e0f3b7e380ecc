/* The program an attacker goes after (e2e.hostile.peers): ITERATIONS rounds
 * of malloc(1000 + i), a pause of PAUSE_MS, and a free of every second
 * block; nothing else allocates (no stdio). With a command in argv[2..],
 * it runs it as its child once, at round 5, without LD_PRELOAD (a
 * descendant that talks to the consumer itself), and waits for it.
 *   hostile_victim ITERATIONS [COMMAND ARGS...]  (PAUSE_MS = 100) */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void run_child(char **argv)
{
    static char *env[256];
    int n = 0;
    for (char **e = environ; *e && n < 255; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0)
            env[n++] = *e;
    env[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        execve(argv[0], argv, env);
        _exit(127);
    }
    int status;
    if (pid > 0)
        waitpid(pid, &status, 0);
}

int main(int argc, char **argv)
{
    int iterations = argc > 1 ? atoi(argv[1]) : 40;
    void *keep[1024];
    int kept = 0;
    for (int i = 0; i < iterations && i < 1024; i++) {
        char *p = malloc(1000 + (size_t)i);
        if (!p)
            return 1;
        memset(p, i, 1000 + (size_t)i);
        if (i % 2)
            free(p);
        else
            keep[kept++] = p;
        if (i == 5 && argc > 2)
            run_child(argv + 2);
        struct timespec pause = {0, 100 * 1000000L};
        nanosleep(&pause, NULL);
    }
    (void)keep;
    write(1, "done\n", 5);
    return 0;
}
