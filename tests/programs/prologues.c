/* Victim of the hook test: allocators whose first instructions are written
 * in assembly, so the bytes the patch replaces are known.
 *
 *   rip_alloc(size)    starts with two RIP-relative instructions (a load
 *                      and a lea): they must be relocated into the
 *                      trampoline; bump allocation from rip_heap
 *   branch_free(ptr)   starts with test + je (an early conditional branch
 *                      out of the copied bytes), then a RIP-relative add
 *   call_alloc(size)   starts with a call (relative, must be relocated)
 *   tiny_alloc(size)   xor eax,eax; ret: 3 bytes, too short to patch
 *   loop_alloc(size)   a loop that jumps back to its byte 2, inside the
 *                      bytes a patch would overwrite
 *
 * Prints what it got; the output must be the same under memtrace.
 */
#include <stddef.h>
#include <stdio.h>

void *rip_alloc(size_t size);
void branch_free(void *ptr);
void *call_alloc(size_t size);
void *tiny_alloc(size_t size);
size_t loop_alloc(size_t size);

unsigned long rip_next, branch_frees;
_Alignas(16) unsigned char rip_heap[1 << 16];

__asm__(".text\n"
        ".globl rip_alloc\n"
        ".type rip_alloc, @function\n"
        "rip_alloc:\n"
        "    mov rip_next(%rip), %rax\n"
        "    lea rip_heap(%rip), %rdx\n"
        "    add %rax, %rdx\n"
        "    lea 15(%rdi), %rcx\n"
        "    and $-16, %rcx\n"
        "    add %rcx, %rax\n"
        "    mov %rax, rip_next(%rip)\n"
        "    mov %rdx, %rax\n"
        "    ret\n"
        ".size rip_alloc, .-rip_alloc\n"

        ".globl branch_free\n"
        ".type branch_free, @function\n"
        "branch_free:\n"
        "    test %rdi, %rdi\n"
        "    je 1f\n"
        "    addq $1, branch_frees(%rip)\n"
        "1:  ret\n"
        ".size branch_free, .-branch_free\n"

        ".globl call_alloc\n"
        ".type call_alloc, @function\n"
        "call_alloc:\n"
        "    call rip_alloc\n"
        "    ret\n"
        ".size call_alloc, .-call_alloc\n"

        ".globl tiny_alloc\n"
        ".type tiny_alloc, @function\n"
        "tiny_alloc:\n"
        "    xor %eax, %eax\n"
        "    ret\n"
        ".size tiny_alloc, .-tiny_alloc\n"

        ".globl loop_alloc\n"
        ".type loop_alloc, @function\n"
        "loop_alloc:\n"
        "    xor %eax, %eax\n"
        "2:  add $1, %rax\n"
        "    cmp %rdi, %rax\n"
        "    jb 2b\n"
        "    ret\n"
        ".size loop_alloc, .-loop_alloc\n");

int main(void)
{
    unsigned char *a = rip_alloc(24);
    unsigned char *b = rip_alloc(40);
    unsigned char *c = call_alloc(100);
    a[0] = 1, b[39] = 2, c[99] = 3;
    branch_free(a);
    branch_free(NULL);
    branch_free(c);
    printf("rip_alloc %td %td, call_alloc %td, frees %lu, tiny %p, loop %zu\n", b - a,
           c - b, c - rip_heap, branch_frees, tiny_alloc(8), loop_alloc(5));
    return 0;
}
