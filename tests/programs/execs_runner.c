/* Victim of the exec tests (tests/e2e/test_execs.py): a traced program that
 * leaks 100 bytes, then execs PROG [ARG...] after taking away, in MODE,
 * what the new image needs to be traced:
 *
 *   execs_runner MODE PROG [ARG...]
 *     plain    nothing (PROG must be traced in turn)
 *     fail     PROG does not exist: the exec fails; the runner exits 0
 *     seccomp  a seccomp filter (a raw BPF program) makes socket and
 *              connect fail with EPERM
 *     nofile   RLIMIT_NOFILE lowered to 3 (stdin, stdout, stderr)
 *     noenv    LD_PRELOAD left out of the environment given to execve
 *     spawn    no exec of its own and no leak (100 bytes freed): posix_spawn
 *              (glibc's child execs through its internal __execve) starts
 *              PROG, waited for; exits 0
 */
#include <errno.h>
#include <spawn.h>
#include <sys/wait.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;
static void *volatile sink;

static int deny_connect(void)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 1, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_connect, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof *code, .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    const char *mode = argv[1];
    if (strcmp(mode, "spawn") != 0) {
        sink = malloc(100);
        sink = 0;
    }
    char **env = environ;
    if (strcmp(mode, "seccomp") == 0 && deny_connect() != 0) {
        perror("seccomp");
        return 3;
    }
    if (strcmp(mode, "nofile") == 0) {
        struct rlimit r = {3, 3};
        if (setrlimit(RLIMIT_NOFILE, &r) != 0) {
            perror("setrlimit");
            return 3;
        }
    }
    if (strcmp(mode, "noenv") == 0) {
        size_t n = 0;
        while (environ[n])
            n++;
        env = calloc(n + 1, sizeof *env);
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0)
                env[k++] = environ[i];
        env[k] = NULL;
    }
    if (strcmp(mode, "spawn") == 0) { /* it leaks nothing: only the child is judged */
        free(malloc(100));
        pid_t child;
        int status;
        int rc = posix_spawn(&child, argv[2], NULL, NULL, argv + 2, environ);
        if (rc != 0 || waitpid(child, &status, 0) != child)
            return 4;
        return 0;
    }
    execve(argv[2], argv + 2, env);
    if (strcmp(mode, "fail") == 0 && errno == ENOENT)
        return 0;
    perror("execve");
    return 4;
}
