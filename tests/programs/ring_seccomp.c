/* Victim of the ring tests (issue 17 point 6): the program puts itself
 * under a seccomp filter (a raw BPF program: no libseccomp) that makes
 * memfd_create, socket, connect and sendmsg fail with EPERM, then starts 4
 * threads that malloc/free 250 blocks each, then forks CHILDREN children
 * one after the other, each of which mallocs 100 blocks, frees 99 and
 * exits; main leaks 1000 bytes.
 *
 *   ring_seccomp [CHILDREN]
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void *volatile sink;

static int deny_rings(void)
{
    struct sock_filter code[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_memfd_create, 4, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_socket, 3, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_connect, 2, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_sendmsg, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
    };
    struct sock_fprog prog = {.len = sizeof code / sizeof *code, .filter = code};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 250; i++) {
        void *p = malloc(48 + (size_t)i % 32);
        sink = p;
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int children = argc > 1 ? atoi(argv[1]) : 1;
    if (deny_rings() != 0) {
        perror("seccomp");
        return 2;
    }
    printf("memfd_create denied: %d\n", syscall(SYS_memfd_create, "x", 0) < 0 && errno == EPERM);
    fflush(stdout);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, worker, NULL) != 0)
            return 3;
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    for (int c = 0; c < children; c++) {
        pid_t pid = fork();
        if (pid < 0)
            return 4;
        if (pid == 0) {
            void *keep[100];
            for (int i = 0; i < 100; i++)
                keep[i] = malloc(200 + (size_t)i);
            for (int i = 1; i < 100; i++)
                free(keep[i]);
            sink = keep[0];
            sink = NULL; /* 200 bytes definitely lost */
            exit(0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 5;
    }
    sink = malloc(1000);
    sink = NULL;
    return 0;
}
