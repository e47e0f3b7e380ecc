/* dlopen, dlmopen, dlsym and dlvsym of the shim: tail calls into libc's.
 *
 * glibc takes the caller of these functions from their return address: the
 * caller's RPATH/RUNPATH and $ORIGIN resolve a bare or $-name in dlopen, its
 * namespace receives the object, and RTLD_NEXT/RTLD_DEFAULT in dlsym search
 * from it. A C wrapper would make the shim that caller. Each stub here keeps
 * the return address where it is: it saves the argument registers, calls
 * its mt_dl_before_* function (dl_track.c: notes that modules may change,
 * catches up on earlier ones, and returns the real function), restores the
 * arguments and jumps to the real function, which returns straight to the
 * program. Nothing of the shim runs after the real function; what a new
 * module needs (dl_track.c) is done at the next event or the next call
 * here.
 */
#if defined(__x86_64__)

/* STUB name, before: at entry rsp = 8 mod 16; three pushes align it for
 * the call. The before function takes the same (at most three) arguments
 * and returns the function to jump to in rax. */
.macro STUB name, before
    .text
    .globl \name
    .type \name, @function
    .p2align 4
\name:
    .cfi_startproc
    endbr64
    pushq %rdi
    .cfi_adjust_cfa_offset 8
    pushq %rsi
    .cfi_adjust_cfa_offset 8
    pushq %rdx
    .cfi_adjust_cfa_offset 8
    call \before
    popq %rdx
    .cfi_adjust_cfa_offset -8
    popq %rsi
    .cfi_adjust_cfa_offset -8
    popq %rdi
    .cfi_adjust_cfa_offset -8
    jmp *%rax
    .cfi_endproc
    .size \name, . - \name
.endm

STUB dlopen, mt_dl_before_open
STUB dlmopen, mt_dl_before_mopen
STUB dlsym, mt_dl_before_sym
STUB dlvsym, mt_dl_before_vsym

#else
#error "dl_stubs.S: tail-call stubs are written for x86-64 only"
#endif

    .section .note.GNU-stack, "", @progbits
