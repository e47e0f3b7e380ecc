/* Programs that leave without libc's exit: Go's runtime ends the process
 * with a raw exit_group system call from runtime.exit (the end of main,
 * os.Exit, a fatal panic), so neither our destructor nor _exit runs. In a Go
 * executable (its "Go" build-id note), runtime.exit is hooked inline
 * (hook_patch.c): the hook leaves the goroutine's stack, which may be a few
 * KiB, for a stack of the shim's own, records the exit status, scans, and
 * ends the process with exit_group as runtime.exit would have.
 *
 * The roots of a Go process are what memcheck would take: each thread's
 * live stack. A Go thread (an M) runs C code (cgo calls, malloc) on its g0
 * stack -- the pthread's stack -- and Go code on goroutine stacks in Go's
 * own mappings. When it runs a goroutine, everything on g0 below g0's saved
 * stack pointer (g0.sched.sp) is dead: the frames of past cgo calls, which
 * hold stale copies of the addresses malloc returned; and on the
 * goroutine's stack everything below its stack pointer is dead. This file
 * reads Go's current g from the executable's TLS slot (runtime.tlsg, the
 * executable's only TLS variable) and follows g.m.g0 to those bounds; the
 * scan (scan.c) leaves the dead ranges out. The offsets used are those
 * Go's assembly and runtime/cgo rely on (g.stack, g.m, g.sched, m.g0;
 * unchanged since Go 1.5), and every pointer followed is checked against
 * the others (g0.m is m, g0.sched.g is g0, each stack pointer lies in its
 * stack); when anything does not check out, the process is not scanned and
 * the gates fail as for any raw exit_group: a bound that cannot be trusted
 * could make a real leak look reachable.
 *
 * Runs inside the traced process: memory from mt_map only, no malloc; Go's
 * memory is read with process_vm_readv, which fails instead of faulting.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "hooks.h"

#define GO_STACK_SIZE (1u << 20)

/* Offsets in Go's runtime structures (runtime/runtime2.go, amd64). */
#define G_STACK_LO 0   /* g.stack.lo: "offset known to runtime/cgo" */
#define G_STACK_HI 8   /* g.stack.hi */
#define G_M 48         /* g.m */
#define G_SCHED_SP 56  /* g.sched.sp (gobuf.sp) */
#define G_SCHED_PC 64  /* g.sched.pc (gobuf.pc) */
#define G_SCHED_G 72   /* g.sched.g (gobuf.g) */
#define M_G0 0         /* m.g0 */
#define GO_STACK_MAX ((uintptr_t)1 << 32)

void mt_note_exit(int status) MT_HIDDEN;
void mt_go_exit(int code, uintptr_t go_sp) MT_HIDDEN;
void mt_go_exit_entry(void) MT_HIDDEN;
uintptr_t mt_go_stack_top MT_HIDDEN;
int mt_go_exiting MT_HIDDEN;

int mt_go_process MT_HIDDEN;        /* 1: runtime.exit is hooked */
static intptr_t go_tls_offset;      /* Go's g: at the thread pointer plus this */
static int go_tls_known;
static uintptr_t go_text_lo, go_text_hi; /* Go's code: runtime.text to runtime.etext */
static uintptr_t go_allgs;          /* &runtime.allgs: every goroutine ([]*g), or 0 */
static uintptr_t go_mcall;          /* runtime.mcall, or 0 */

/* runtime.exit is ABI0: its status is on the stack, above the return
 * address. The first thread to get here switches to our stack (16-byte
 * aligned) and never comes back; another that calls it meanwhile waits on
 * its own stack for the first to end the process. */
__asm__(".text\n"
        ".globl mt_go_exit_entry\n"
        ".hidden mt_go_exit_entry\n"
        ".type mt_go_exit_entry, @function\n"
        "mt_go_exit_entry:\n"
        "    mov $1, %eax\n"
        "    xchg %eax, mt_go_exiting(%rip)\n"
        "    test %eax, %eax\n"
        "    jnz 2f\n"
        "    movl 8(%rsp), %edi\n"
        "    mov %rsp, %rsi\n"
        "    mov mt_go_stack_top(%rip), %rsp\n"
        "    and $-16, %rsp\n"
        "    call mt_go_exit\n"
        "    ud2\n"
        "2:  pause\n"
        "    jmp 2b\n"
        ".size mt_go_exit_entry, .-mt_go_exit_entry\n");

static uintptr_t thread_pointer(void)
{
    uintptr_t tp;
    __asm__("mov %%fs:0, %0" : "=r"(tp));
    return tp;
}

/* The calling thread's current Go g, or 0 (not a Go process, or a thread
 * Go has not made its own). Async-signal-safe: one read of static TLS. */
uintptr_t mt_go_current_g(void)
{
    if (!go_tls_known)
        return 0;
    return *(const uintptr_t *)(thread_pointer() + go_tls_offset);
}

/* Reads the word at address in this process; 0 on success. */
static int read_word(uintptr_t address, uintptr_t *out)
{
    struct iovec local = {out, sizeof *out}, remote = {(void *)address, sizeof *out};
    if (!address || (address & 7))
        return -1;
    return syscall(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0) ==
                   (long)sizeof *out
               ? 0
               : -1;
}

struct go_g {
    uintptr_t lo, hi, m, sched_sp, sched_g;
};

static const char *read_g(uintptr_t g, struct go_g *out)
{
    if (read_word(g + G_STACK_LO, &out->lo) || read_word(g + G_STACK_HI, &out->hi) ||
        read_word(g + G_M, &out->m) || read_word(g + G_SCHED_SP, &out->sched_sp) ||
        read_word(g + G_SCHED_G, &out->sched_g))
        return "a g is not readable";
    if (out->lo >= out->hi || out->hi - out->lo > GO_STACK_MAX)
        return "a g's stack bounds are not a stack";
    return NULL;
}

/* The dead ranges of one Go thread whose current g is g, whose stack
 * pointer is sp (the lowest live address) and whose code address is ip (0:
 * not known): below sp on the stack it runs on, and below g0.sched.sp on g0
 * when it runs a goroutine -- or Go's own code on g0 (the scheduler of an
 * idle thread, a systemstack call), which starts at g0.sched.sp: the frames
 * of Go's runtime there overlay those of past cgo calls, and their slots
 * that Go never wrote still hold the addresses those calls' mallocs
 * returned (memcheck knows them undefined and skips them). Go's runtime
 * keeps no pointer to the C heap there, so they are left out too; a thread
 * in C code (a cgo call) keeps its C frames, from sp up. Returns how many
 * (0 to 2) were written to dead, or -1 with *why when Go's structures do
 * not check out. g 0 is not a Go thread: nothing is dead. */
int mt_go_dead_ranges(uintptr_t g, uintptr_t sp, uintptr_t ip, uintptr_t dead[2][2],
                      const char **why)
{
    if (!g)
        return 0;
    struct go_g cur, g0;
    uintptr_t m, g0_addr, g0_m;
    if ((*why = read_g(g, &cur)))
        return -1;
    m = cur.m;
    if (read_word(m + M_G0, &g0_addr) || (*why = read_g(g0_addr, &g0)) != NULL) {
        *why = *why ? *why : "a g's m is not readable";
        return -1;
    }
    g0_m = g0.m;
    if (g0_m != m || g0.sched_g != g0_addr) {
        *why = "Go's g0 does not point back to its m (runtime structures of another layout)";
        return -1;
    }
    if (g0.sched_sp < g0.lo || g0.sched_sp >= g0.hi) {
        *why = "g0's saved stack pointer lies outside g0's stack";
        return -1;
    }
    if (sp < cur.lo || sp >= cur.hi) {
        *why = "a thread's stack pointer lies outside the stack of its current g";
        return -1;
    }
    int n = 0;
    dead[n][0] = cur.lo;
    dead[n++][1] = sp;
    if (g == g0_addr && ip >= go_text_lo && ip < go_text_hi && sp <= g0.sched_sp)
        dead[0][1] = g0.sched_sp;
    else if (g != g0_addr) {
        dead[n][0] = g0.lo;
        dead[n++][1] = g0.sched_sp;
    }
    return n;
}

/* The goroutines that no thread runs (parked, runnable, in a system call
 * or a cgo call, dead): their stacks below their saved stack pointer
 * (g.sched.sp) are dead, as memcheck knows them (it marked their frames
 * dead as the stack pointer rose while they ran). running: the gs that
 * threads run (their current g), which the threads' own bounds cover.
 * Writes up to max ranges to dead; returns how many, or -1 with *why. */
int mt_go_parked_ranges(const uintptr_t *running, int nrunning, uintptr_t (*dead)[2], int max,
                        const char **why)
{
    uintptr_t gs, count;
    if (!go_allgs)
        return 0;
    if (read_word(go_allgs, &gs) || read_word(go_allgs + 8, &count) || count > (1u << 24)) {
        *why = "runtime.allgs is not readable";
        return -1;
    }
    int n = 0;
    for (uintptr_t i = 0; i < count && n < max; i++) {
        uintptr_t g;
        struct go_g cur;
        if (read_word(gs + i * 8, &g)) {
            *why = "runtime.allgs is not readable";
            return -1;
        }
        int runs = 0;
        for (int r = 0; r < nrunning; r++)
            runs |= running[r] == g;
        if (!g || runs)
            continue;
        uintptr_t pc;
        if (read_word(g + G_STACK_LO, &cur.lo) || read_word(g + G_STACK_HI, &cur.hi) ||
            read_word(g + G_SCHED_SP, &cur.sched_sp) || read_word(g + G_SCHED_PC, &pc)) {
            *why = "a g in runtime.allgs is not readable";
            return -1;
        }
        /* Parked by mcall (gopark, Gosched, preemption): g.sched.sp is
         * the caller's stack pointer, where mcall's argument would be
         * spilled, which Go's register ABI never writes: that word is what
         * an earlier frame left there (memcheck: undefined). The call is
         * the 5 bytes before g.sched.pc: E8 and mcall's offset. */
        if (go_mcall && pc > 8) {
            unsigned char code[8];
            struct iovec local = {code, sizeof code}, remote = {(void *)(pc - 8), sizeof code};
            int32_t rel;
            if (syscall(SYS_process_vm_readv, getpid(), &local, 1, &remote, 1, 0) ==
                    (long)sizeof code && code[3] == 0xe8) {
                memcpy(&rel, code + 4, sizeof rel);
                if (pc + (uintptr_t)(intptr_t)rel == go_mcall && cur.sched_sp + 8 < cur.hi)
                    cur.sched_sp += 8;
            }
        }
        /* no stack (freed), or a stack pointer that is not in it: the
         * stack, if any, is left whole */
        if (cur.lo < cur.hi && cur.hi - cur.lo <= GO_STACK_MAX && cur.sched_sp > cur.lo &&
            cur.sched_sp < cur.hi) {
            dead[n][0] = cur.lo;
            dead[n++][1] = cur.sched_sp;
        }
    }
    return n;
}

/* How many goroutines runtime.allgs holds (0 if not known). */
uintptr_t mt_go_goroutines(void)
{
    uintptr_t count;
    if (!go_allgs || read_word(go_allgs + 8, &count) || count > (1u << 24))
        return 0;
    return count;
}

void mt_go_exit(int code, uintptr_t go_sp)
{
    /* The exiting thread's own bounds first: if Go's structures cannot be
     * read, the process ends unscanned, and says so, as a raw exit_group. */
    uintptr_t dead[2][2];
    const char *why = NULL;
    uintptr_t g = mt_go_current_g();
    if (!g)
        why = "its exiting thread has no Go g in its TLS slot";
    else
        mt_go_dead_ranges(g, go_sp, 0, dead, &why); /* sets why when it fails */
    if (why) {
        mt_log("cannot scan this Go program at its exit (%s): its leaks are not classified", why);
    } else {
        struct mt_go_exit_view view = {go_sp, g, {0, 0}};
        stack_t ss; /* earlier signals' frames there hold copies of registers */
        if (sigaltstack(NULL, &ss) == 0 && !(ss.ss_flags & (SS_DISABLE | SS_ONSTACK)) && ss.ss_sp) {
            view.altstack[0] = (uintptr_t)ss.ss_sp;
            view.altstack[1] = (uintptr_t)ss.ss_sp + ss.ss_size;
        }
        mt_note_exit(code);
        mt_scan_at_exit(MT_SCAN_FOREIGN, &view);
    }
    for (;;)
        syscall(SYS_exit_group, code);
}

/* 1 if the note segment at [p, end) holds Go's build id (name "Go", type 4). */
static int go_note(const unsigned char *p, const unsigned char *end)
{
    while (p + sizeof(ElfW(Nhdr)) <= end) {
        const ElfW(Nhdr) *n = (const void *)p;
        const unsigned char *name = p + sizeof *n;
        if ((n->n_namesz == 3 || n->n_namesz == 4) && n->n_type == 4 && name + 3 <= end &&
            memcmp(name, "Go", 3) == 0) /* Go writes "Go\0\0" */
            return 1;
        p = name + ((n->n_namesz + 3) & ~3u) + ((n->n_descsz + 3) & ~3u);
    }
    return 0;
}

/* The address of the data symbol name in the executable (its .symtab,
 * read from /proc/self/exe), or 0. bias: the executable's load bias. */
static uintptr_t exe_object(const char *name, uintptr_t bias)
{
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    uintptr_t found = 0;
    void *map = fstat(fd, &st) == 0 && st.st_size > (off_t)sizeof(Elf64_Ehdr)
                    ? mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0)
                    : MAP_FAILED;
    close(fd);
    if (map == MAP_FAILED)
        return 0;
    const unsigned char *image = map;
    size_t size = (size_t)st.st_size;
    const Elf64_Ehdr *eh = map;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_shentsize == sizeof(Elf64_Shdr) &&
        eh->e_shoff < size && eh->e_shnum <= (size - eh->e_shoff) / sizeof(Elf64_Shdr)) {
        const Elf64_Shdr *sections = (const void *)(image + eh->e_shoff);
        for (unsigned k = 0; k < eh->e_shnum && !found; k++) {
            const Elf64_Shdr *sh = &sections[k];
            if (sh->sh_type != SHT_SYMTAB || sh->sh_link >= eh->e_shnum ||
                sh->sh_entsize != sizeof(Elf64_Sym) || sh->sh_offset > size ||
                sh->sh_size > size - sh->sh_offset)
                continue;
            const Elf64_Shdr *strtab = &sections[sh->sh_link];
            if (strtab->sh_offset > size || strtab->sh_size > size - strtab->sh_offset)
                continue;
            const char *names = (const char *)image + strtab->sh_offset;
            const Elf64_Sym *syms = (const void *)(image + sh->sh_offset);
            size_t len = strlen(name);
            for (size_t i = 0; i < sh->sh_size / sizeof *syms; i++) {
                if (ELF64_ST_TYPE(syms[i].st_info) != STT_OBJECT ||
                    syms[i].st_shndx == SHN_UNDEF || syms[i].st_name >= strtab->sh_size ||
                    strtab->sh_size - syms[i].st_name <= len ||
                    memcmp(names + syms[i].st_name, name, len + 1) != 0)
                    continue;
                found = bias + syms[i].st_value;
                break;
            }
        }
    }
    munmap(map, size);
    return found;
}

struct go_exe {
    uintptr_t bias;
    int is_go;
    const ElfW(Phdr) *tls; /* the executable's PT_TLS */
    void *tls_data;        /* this thread's copy of it */
};

static int find_go(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct go_exe *exe = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_NOTE) {
            const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
            if (go_note(p, p + ph->p_memsz))
                exe->is_go = 1;
        } else if (ph->p_type == PT_TLS) {
            exe->tls = ph;
        }
    }
    exe->bias = info->dlpi_addr;
    if (size >= offsetof(struct dl_phdr_info, dlpi_tls_data) + sizeof info->dlpi_tls_data)
        exe->tls_data = info->dlpi_tls_data;
    return 1; /* the first object is the executable */
}

void mt_go_exit_install(void)
{
    struct go_exe exe = {0, 0, NULL, NULL};
    dl_iterate_phdr(find_go, &exe);
    if (!exe.is_go)
        return;
    /* Go's only TLS variable is runtime.tlsg, its g: an 8-byte block */
    if (!exe.tls || exe.tls->p_memsz != 8 || !exe.tls_data) {
        mt_log("a Go program whose executable has no 8-byte TLS block (Go's g): it ends "
               "without libc's exit and cannot be scanned");
        return;
    }
    Dl_info self;
    if (!dladdr((void *)mt_go_exit_install, &self))
        return;
    struct mt_symbol sym;
    if (mt_symbol_find("runtime.exit.abi0", 1, (uintptr_t)self.dli_fbase, &sym) != 1 &&
        mt_symbol_find("runtime.exit", 1, (uintptr_t)self.dli_fbase, &sym) != 1) {
        mt_log("a Go program without runtime.exit in its symbol table (stripped?): it ends "
               "without libc's exit and cannot be scanned");
        return;
    }
    struct mt_symbol text, etext;
    if (mt_symbol_find("runtime.text", 1, (uintptr_t)self.dli_fbase, &text) == 1 &&
        mt_symbol_find("runtime.etext", 1, (uintptr_t)self.dli_fbase, &etext) == 1 &&
        text.address < etext.address) {
        go_text_lo = text.address;
        go_text_hi = etext.address;
    }
    go_allgs = exe_object("runtime.allgs", exe.bias);
    struct mt_symbol mcall;
    if (mt_symbol_find("runtime.mcall", 1, (uintptr_t)self.dli_fbase, &mcall) == 1)
        go_mcall = mcall.address;
    void *stack = mt_map(GO_STACK_SIZE);
    if (!stack)
        return;
    go_tls_offset = (intptr_t)((uintptr_t)exe.tls_data - thread_pointer());
    go_tls_known = 1;
    mt_go_stack_top = (uintptr_t)stack + GO_STACK_SIZE;
    void *original;
    const char *why = mt_hook_patch(&sym, (void *)mt_go_exit_entry, &original);
    if (why)
        mt_log("cannot hook Go's runtime.exit, so this Go program cannot be scanned: %s", why);
    else
        mt_go_process = 1;
    mt_hook_patch_done();
}
