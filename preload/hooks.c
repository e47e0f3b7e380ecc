/* Custom allocators traced through inline hooks (SPEC section 6,
 * --hook-alloc/--hook-free/--hook-realloc), and the program's own malloc
 * family when the executable defines one (LD_PRELOAD cannot interpose on
 * it: the executable comes first in symbol resolution, so the shim's malloc
 * is never called).
 *
 * The hooks are installed once, from mt_init, before the program's main
 * and while no other thread runs (refused otherwise): hook_patch.c patches
 * each function to jump to one of the wrappers below, which records the
 * event and calls the trampoline that runs the original function. A
 * wrapper takes the six integer argument registers of the SysV ABI and
 * passes them on unchanged, so functions of up to six integer arguments
 * can be hooked (not ones taking arguments on the stack or in vector
 * registers). Events carry the hooked function's name as their allocator:
 * an id >= MT_FN_CUSTOM_BASE and an ALLOCATOR record naming it; the
 * executable's malloc family keeps the standard ids.
 *
 * While a hooked function runs (t->in_hook), the calls it makes to hooked
 * functions or to the malloc family are its own business (a pool calling
 * itself, or taking its chunks from malloc) and pass through unrecorded,
 * as the malloc under operator new does. A signal handler that interrupts
 * it is told apart by a signal frame between it and the hooked call (found
 * by libunwind, only in that rare nested case: mt_hook_from_signal); its
 * calls are recorded, or
 * queued (mt_defer_event) if it interrupted the writing of an event.
 *
 * Runs inside the traced process: static storage only, no malloc.
 */
#define _GNU_SOURCE
#define UNW_LOCAL_ONLY
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <libunwind.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hooks.h"

enum hook_kind { HOOK_ALLOC, HOOK_FREE, HOOK_REALLOC, HOOK_CALLOC, HOOK_REALLOCARRAY, HOOK_MEMALIGN };

/* The original returns in rax, or rdx:rax: both are kept. */
typedef unsigned __int128 (*function6)(uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);

struct hook {
    uint32_t kind;     /* enum hook_kind */
    uint32_t function; /* enum mt_function, or a custom id */
    int ptr_arg, size_arg, count_arg;
    int installed;
    function6 original; /* the trampoline */
    char name[128];
    const char *option; /* as the user would have typed it */
};

#define MAX_HOOKS 32
static struct hook hooks[MAX_HOOKS];
static int nhooks;

/* ---- recording ------------------------------------------------------------ */

/* The registers saved by mt_hook_common (below): the six argument
 * registers in argument order, then rax, r10, r11, and the rdx the
 * original left (its results: rax and RDX_OUT). */
enum { RAX = 6, RDX_OUT = 9 };

/* Runs the original with the arguments of regs; its rdx goes to regs. */
static inline uint64_t run_original(const struct hook *h, uint64_t *a)
{
    unsigned __int128 r = h->original(a[0], a[1], a[2], a[3], a[4], a[5]);
    a[RDX_OUT] = (uint64_t)(r >> 64);
    return (uint64_t)r;
}

static inline uint64_t call_original(struct mt_thread *t, const struct hook *h, uint64_t *a)
{
    t->in_hook++;
    uint64_t r = run_original(h, a);
    t->in_hook--;
    return r;
}

/* Walks up from here: past the frames of libmemtrace that lead to this
 * nested call, then through the caller's frames up to the next frame of
 * libmemtrace (the hooked call it is nested in). A signal frame on the way
 * means a handler made the call. (By libmemtrace's frames and not by stack
 * addresses, so that a handler on an alternate stack is found too.) */
int mt_hook_from_signal(struct mt_thread *t)
{
    unw_context_t context;
    unw_cursor_t cursor;
    int found = 0, left_own = 0;
    t->unwinding++; /* libunwind's own mallocs pass through */
    if (unw_getcontext(&context) == 0 && unw_init_local(&cursor, &context) == 0) {
        for (int depth = 0; depth < 256; depth++) {
            if (unw_is_signal_frame(&cursor) > 0) {
                found = 1;
                break;
            }
            unw_word_t ip;
            if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0)
                break;
            int own = mt_is_own((uintptr_t)ip);
            if (left_own && own)
                break; /* the hooked call this one is nested in */
            left_own |= !own;
            if (unw_step(&cursor) <= 0)
                break;
        }
    }
    t->unwinding--;
    return found;
}

static int should_record(struct mt_thread *t, const void *caller)
{
    if (mt_state != MT_STATE_ACTIVE || t->guard || (t->unwinding && mt_is_unwinder(caller)))
        return 0;
    return !t->in_hook || mt_hook_from_signal(t);
}

static void record_alloc(struct mt_thread *t, uint64_t p, uint64_t size, uint32_t function)
{
    if (!p)
        return;
    int saved = errno;
    if (MT_UNLIKELY(t->in_record)) {
        mt_defer_event(t, MT_RING_ALLOC, (void *)p, size, function, mt_now_ns());
    } else {
        t->in_record++;
        mt_emit_alloc(t, (void *)p, size, function);
        t->in_record--;
    }
    errno = saved;
}

/* A free (or the free half of a realloc) around the call of the original:
 * stamped before it runs, written after. Returns what the original did. */
static uint64_t free_around(struct mt_thread *t, const struct hook *h, uint64_t *a,
                            uint64_t p, uint64_t size, int is_resize)
{
    if (MT_UNLIKELY(t->in_record)) { /* a signal handler's */
        uint64_t ts = mt_now_ns();
        uint64_t q = call_original(t, h, a);
        int saved = errno;
        if (!is_resize || q || size == 0)
            mt_defer_event(t, MT_RING_FREE, (void *)p, 0, h->function, ts);
        if (is_resize && q)
            mt_defer_event(t, MT_RING_ALLOC, (void *)q, size, h->function, mt_now_ns());
        errno = saved;
        return q;
    }
    t->in_record++;
    struct mt_ring *r = mt_ring_get(t);
    uint64_t ts = r ? mt_ring_stamp(r) : 0;
    uint64_t q = call_original(t, h, a);
    int saved = errno;
    if (r) {
        if (!is_resize || q || size == 0) /* realloc(p, 0) that returns NULL frees p */
            mt_write_free(r, ts, (void *)p, h->function);
        mt_ring_idle(r);
        if (is_resize && q)
            mt_emit_alloc(t, (void *)q, size, h->function);
    }
    t->in_record--;
    errno = saved;
    return q;
}

static uint64_t hook_call(const struct hook *h, uint64_t *a, const void *caller)
{
    struct mt_thread *t = &mt_thread_state;
    if (!should_record(t, caller))
        return run_original(h, a);
    uint64_t size = h->size_arg >= 0 ? a[h->size_arg] : 0;
    switch (h->kind) {
    case HOOK_CALLOC:
    case HOOK_REALLOCARRAY:
        if (__builtin_mul_overflow(a[h->count_arg], size, &size))
            size = UINT64_MAX; /* the call fails */
        break;
    default:
        break;
    }
    switch (h->kind) {
    case HOOK_FREE:
        if (!a[h->ptr_arg])
            return call_original(t, h, a);
        return free_around(t, h, a, a[h->ptr_arg], 0, 0);
    case HOOK_REALLOC:
    case HOOK_REALLOCARRAY:
        if (a[h->ptr_arg])
            return free_around(t, h, a, a[h->ptr_arg], size, 1);
        break;
    case HOOK_MEMALIGN: { /* int posix_memalign(void **out, size_t align, size_t n) */
        uint64_t rc = call_original(t, h, a);
        if ((int)rc == 0)
            record_alloc(t, (uint64_t)*(void **)a[0], size, h->function);
        return rc;
    }
    default:
        break;
    }
    uint64_t p = call_original(t, h, a);
    record_alloc(t, p, size, h->function);
    return p;
}

/* The entry of the hooks. A patched function jumps (through its relay)
 * to mt_hook_stub_N, which makes a frame and pushes N; mt_hook_common
 * saves every register a caller may expect to survive -- all but rax and
 * rdx, whatever the ABI says, because a compiler that sees a static
 * function's body may keep values in the caller-saved registers it does
 * not touch (GCC's -fipa-ra) -- and calls mt_hook_dispatch, then restores
 * them with the original's rax and rdx. Both carry CFI, and the frame is
 * an rbp frame, so the stack is unwound through them to the hooked
 * function's caller by libunwind and by frame pointers alike. */
/* used: only the assembly below calls it, which LTO does not see */
void mt_hook_dispatch(uint64_t index, uint64_t *regs, const void *caller) MT_HIDDEN
    __attribute__((used));
extern const unsigned char mt_hook_stubs[] MT_HIDDEN; /* 32 bytes per stub */
__asm__(".text\n"
        ".balign 32\n"
        ".hidden mt_hook_stubs\n"
        "mt_hook_stubs:\n"
        ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31\n"
        ".balign 32\n"
        "mt_hook_stub_\\n:\n"
        ".cfi_startproc\n"
        "push %rbp\n"
        ".cfi_def_cfa_offset 16\n"
        ".cfi_offset %rbp, -16\n"
        "mov %rsp, %rbp\n"
        ".cfi_def_cfa_register %rbp\n"
        "push $\\n\n"
        "jmp mt_hook_common\n"
        ".cfi_endproc\n"
        ".endr\n"
        ".balign 16\n"
        "mt_hook_common:\n"
        ".cfi_startproc\n"
        ".cfi_def_cfa %rbp, 16\n"
        ".cfi_offset %rbp, -16\n"
        /* A static function may be called with the stack aligned to 8 only:
         * GCC knows which local functions need no more. */
        "sub $344, %rsp\n"
        "and $-16, %rsp\n"
        "mov %rdi, 0(%rsp)\n mov %rsi, 8(%rsp)\n mov %rdx, 16(%rsp)\n mov %rcx, 24(%rsp)\n"
        "mov %r8, 32(%rsp)\n mov %r9, 40(%rsp)\n mov %rax, 48(%rsp)\n mov %r10, 56(%rsp)\n"
        "mov %r11, 64(%rsp)\n"
        ".irp r, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
        "movaps %xmm\\r, 80+16*\\r(%rsp)\n"
        ".endr\n"
        "mov -8(%rbp), %rdi\n"
        "mov %rsp, %rsi\n"
        "mov 8(%rbp), %rdx\n"
        "call mt_hook_dispatch\n"
        ".irp r, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n"
        "movaps 80+16*\\r(%rsp), %xmm\\r\n"
        ".endr\n"
        "mov 0(%rsp), %rdi\n mov 8(%rsp), %rsi\n mov 72(%rsp), %rdx\n mov 24(%rsp), %rcx\n"
        "mov 32(%rsp), %r8\n mov 40(%rsp), %r9\n mov 48(%rsp), %rax\n mov 56(%rsp), %r10\n"
        "mov 64(%rsp), %r11\n"
        "leave\n"
        ".cfi_def_cfa %rsp, 8\n"
        "ret\n"
        ".cfi_endproc\n");

void mt_hook_dispatch(uint64_t index, uint64_t *regs, const void *caller)
{
    regs[RDX_OUT] = regs[2]; /* unless the original says otherwise */
    regs[RAX] = hook_call(&hooks[index], regs, caller);
}

/* ---- which functions --------------------------------------------------------- */

/* SPEC section 4's functions, hooked when the executable defines them. */
static const struct {
    const char *name;
    uint32_t kind, function;
    int ptr_arg, size_arg, count_arg;
} standard[] = {
    {"malloc", HOOK_ALLOC, MT_FN_MALLOC, -1, 0, -1},
    {"calloc", HOOK_CALLOC, MT_FN_CALLOC, -1, 1, 0},
    {"realloc", HOOK_REALLOC, MT_FN_REALLOC, 0, 1, -1},
    {"reallocarray", HOOK_REALLOCARRAY, MT_FN_REALLOCARRAY, 0, 2, 1},
    {"free", HOOK_FREE, MT_FN_FREE, 0, -1, -1},
    {"posix_memalign", HOOK_MEMALIGN, MT_FN_POSIX_MEMALIGN, -1, 2, -1},
    {"aligned_alloc", HOOK_ALLOC, MT_FN_ALIGNED_ALLOC, -1, 1, -1},
    {"memalign", HOOK_ALLOC, MT_FN_MEMALIGN, -1, 1, -1},
    {"valloc", HOOK_ALLOC, MT_FN_VALLOC, -1, 0, -1},
    {"pvalloc", HOOK_ALLOC, MT_FN_PVALLOC, -1, 0, -1},
    {"_Znwm", HOOK_ALLOC, MT_FN_NEW, -1, 0, -1},
    {"_Znam", HOOK_ALLOC, MT_FN_NEW_ARRAY, -1, 0, -1},
    {"_ZnwmRKSt9nothrow_t", HOOK_ALLOC, MT_FN_NEW, -1, 0, -1},
    {"_ZnamRKSt9nothrow_t", HOOK_ALLOC, MT_FN_NEW_ARRAY, -1, 0, -1},
    {"_ZnwmSt11align_val_t", HOOK_ALLOC, MT_FN_NEW, -1, 0, -1},
    {"_ZnamSt11align_val_t", HOOK_ALLOC, MT_FN_NEW_ARRAY, -1, 0, -1},
    {"_ZdlPv", HOOK_FREE, MT_FN_DELETE, 0, -1, -1},
    {"_ZdaPv", HOOK_FREE, MT_FN_DELETE_ARRAY, 0, -1, -1},
    {"_ZdlPvm", HOOK_FREE, MT_FN_DELETE, 0, -1, -1},
    {"_ZdaPvm", HOOK_FREE, MT_FN_DELETE_ARRAY, 0, -1, -1},
    {"_ZdlPvSt11align_val_t", HOOK_FREE, MT_FN_DELETE, 0, -1, -1},
    {"_ZdaPvSt11align_val_t", HOOK_FREE, MT_FN_DELETE_ARRAY, 0, -1, -1},
};
#define NSTANDARD (sizeof standard / sizeof *standard)

static int is_standard(const char *name)
{
    for (size_t i = 0; i < NSTANDARD; i++)
        if (strcmp(standard[i].name, name) == 0)
            return 1;
    return 0;
}

/* Reads a non-negative argument number at the end of s[0, *len) (after its
 * ':'), shortening *len; -1 if there is none. */
static int take_arg(const char *s, size_t *len)
{
    size_t end = *len, i = end;
    while (i > 0 && s[i - 1] >= '0' && s[i - 1] <= '9')
        i--;
    if (i == end || i == 0 || s[i - 1] != ':' || end - i > 1 || s[i] > '5')
        return -1;
    *len = i - 1;
    return s[i] - '0';
}

/* One entry of MEMTRACE_HOOKS: "alloc:SYM:SIZEARG", "free:SYM:PTRARG" or
 * "realloc:SYM:PTRARG:SIZEARG" (cli/run.c has checked them). */
static void parse_entry(const char *s, size_t len)
{
    static const char *const kinds[] = {"alloc:", "free:", "realloc:"};
    static const char *const options[] = {"--hook-alloc", "--hook-free", "--hook-realloc"};
    int kind = -1;
    for (int k = 0; k < 3; k++)
        if (len > strlen(kinds[k]) && memcmp(s, kinds[k], strlen(kinds[k])) == 0)
            kind = k;
    if (kind < 0 || nhooks == MAX_HOOKS) {
        mt_log("ignoring the hook '%.*s' (%s)", (int)len, s,
               kind < 0 ? "not alloc:, free: or realloc:" : "too many hooks");
        return;
    }
    size_t skip = strlen(kinds[kind]);
    s += skip;
    len -= skip;
    int second = take_arg(s, &len);
    int first = kind == 2 ? take_arg(s, &len) : second;
    if (first < 0 || second < 0 || len == 0 || len >= sizeof hooks[0].name) {
        mt_log("ignoring the hook '%s%.*s': expected SYMBOL:ARG (arguments 0 to 5)", kinds[kind],
               (int)(len + skip), s);
        return;
    }
    struct hook *h = &hooks[nhooks++];
    memset(h, 0, sizeof *h);
    memcpy(h->name, s, len);
    h->option = options[kind];
    h->kind = kind == 0 ? HOOK_ALLOC : kind == 1 ? HOOK_FREE : HOOK_REALLOC;
    h->ptr_arg = kind == 0 ? -1 : first;
    h->size_arg = kind == 1 ? -1 : second;
    h->count_arg = -1;
    h->function = 0; /* numbered when installed */
}

/* Number of threads of this process, from /proc/self/status. */
static int thread_count(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    const char *line = strstr(buf, "\nThreads:");
    return line ? atoi(line + 9) : 0;
}

static uint32_t next_custom = MT_FN_CUSTOM_BASE + 1; /* MT_FN_CUSTOM_BASE is "client" */

static void install(struct hook *h, int index, uintptr_t own_base)
{
    struct mt_symbol sym;
    int found = mt_symbol_find(h->name, h->option == NULL, own_base, &sym);
    const char *why = NULL;
    if (found == 0)
        why = "no function of that name in the program or its libraries";
    else if (found > 1)
        why = "several functions have that name (static functions of different files)";
    else if (h->option && is_standard(h->name) && !sym.in_main)
        why = "it is the C library's, which memtrace already traces";
    else
        why = mt_hook_patch(&sym, (void *)(mt_hook_stubs + 32 * index), (void **)&h->original);
    if (why) {
        if (h->option)
            mt_log("cannot hook %s (%s %s): %s", h->name, h->option, h->name, why);
        else
            mt_log("cannot hook the program's own %s: %s; its calls are not traced", h->name, why);
        return;
    }
    if (!h->function)
        h->function = next_custom++;
    h->installed = 1;
}

void mt_hooks_install(void)
{
    const char *spec = mt_hooks_spec();
    while (spec && *spec) {
        size_t len = strcspn(spec, ";");
        if (len)
            parse_entry(spec, len);
        spec += len + (spec[len] == ';');
    }
    int first_standard = nhooks;
    Dl_info self;
    uintptr_t own_base = dladdr((void *)mt_hooks_install, &self) ? (uintptr_t)self.dli_fbase : 0;
    char names[256] = "";
    for (size_t i = 0; i < NSTANDARD && nhooks < MAX_HOOKS; i++) {
        struct mt_symbol sym;
        int taken = 0;
        for (int k = 0; k < first_standard; k++)
            taken |= strcmp(hooks[k].name, standard[i].name) == 0;
        if (taken || mt_symbol_find(standard[i].name, 1, own_base, &sym) == 0)
            continue;
        struct hook *h = &hooks[nhooks++];
        memset(h, 0, sizeof *h);
        strcpy(h->name, standard[i].name);
        h->kind = standard[i].kind;
        h->function = standard[i].function;
        h->ptr_arg = standard[i].ptr_arg;
        h->size_arg = standard[i].size_arg;
        h->count_arg = standard[i].count_arg;
        size_t used = strlen(names);
        if (used + strlen(h->name) + 3 < sizeof names)
            strcat(strcat(names, used ? ", " : ""), h->name);
    }
    if (nhooks == 0)
        return;
    if (names[0])
        mt_log("the program defines its own %s: traced through inline hooks", names);
    int threads = thread_count();
    if (threads > 1) {
        mt_log("cannot hook any function: the process already runs %d threads, and patching "
               "code that another thread may be running is not safe", threads);
        return;
    }
    for (int i = 0; i < nhooks; i++)
        install(&hooks[i], i, own_base);
    mt_hook_patch_done();
}

void mt_hooks_announce(struct mt_thread *t)
{
    struct mt_ring *r = mt_ring_get(t);
    if (!r)
        return;
    uint64_t ts = mt_ring_stamp(r);
    mt_ring_write_name(r, MT_RING_ALLOCATOR, ts, MT_FN_CLIENT, "client", 6);
    for (int i = 0; i < nhooks; i++)
        if (hooks[i].installed && hooks[i].function >= MT_FN_CUSTOM_BASE)
            mt_ring_write_name(r, MT_RING_ALLOCATOR, ts, hooks[i].function, hooks[i].name,
                               strlen(hooks[i].name));
    mt_ring_idle(r);
}
