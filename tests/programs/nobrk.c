/* nobrk: runs a command with brk(2) failing (ENOMEM, by a seccomp filter).
 *
 *   nobrk PROGRAM [ARGS...]
 *
 * Why: a non-PIE program such as Debian's /usr/bin/python3 natively has its
 * malloc heap right after its data, below 1 GiB, while valgrind gives its
 * client heap addresses at or above --aspace-minaddr. CPython turns addresses
 * into ints (e.g. the keys of tp_subclasses), and an int below 2**30 takes 28
 * bytes, above it 32. When brk fails, glibc's malloc takes its main arena from
 * mmap instead, far above 4 GiB, so both runs make ints of the same size.
 * Nothing else changes: the filter is inherited across fork and exec and only
 * touches brk. Exits 126 if the filter cannot be installed, 127 if the
 * program cannot be run.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: nobrk PROGRAM [ARGS...]\n");
        return 2;
    }
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_brk, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOMEM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog program = {sizeof filter / sizeof filter[0], filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) != 0) {
        perror("nobrk: seccomp");
        return 126;
    }
    execvp(argv[1], argv + 1);
    perror("nobrk: exec");
    return 127;
}
