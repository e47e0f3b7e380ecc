/* The reachability scan at the end of a traced process (SPEC section 5):
 * classifies every live block as definite, indirect, possible or reachable
 * with valgrind memcheck's semantics (mc_leakcheck.c).
 *
 * It runs in the process itself, last: from our destructor after exit(),
 * or from _exit(). It stops every other thread with a signal whose handler
 * saves the thread's registers and stack pointer and waits; asks the
 * consumer for the live blocks (the consumer drains the rings first and
 * hands them over sorted, in a memfd); scans the roots -- the writable
 * private mappings that hold no heap block (data and bss of every module,
 * anonymous memory, the main thread's TLS), each thread's stack from its
 * stack pointer less the red zone up (its TLS and thread descriptor sit at
 * the top), and each thread's registers -- then the blocks reached from
 * them; writes one kind per block back into the memfd, and lets the threads
 * go.
 *
 * Roots are only what the program holds. The thread that ends the process
 * counts from the program's stack pointer where it called exit (or returned
 * from main, or called _exit, or took the fatal signal) with the program's
 * registers there: never the frames of the shim, of libc's exit machinery or
 * of the scan, which hold stale copies of block addresses. The shim's own
 * memory (its module's data and bss, its mappings, each thread's struct
 * mt_thread) is never a root either. In a Go process (scanned from
 * runtime.exit, go_exit.c) the dead parts of every thread's g0 and goroutine
 * stacks are left out the same way.
 *
 * Runs inside the traced process: memory from mmap only, no stdio, no
 * malloc (the guard is raised throughout).
 */
#define _GNU_SOURCE
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <link.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <ucontext.h>
#include <unistd.h>

#include "loader.h"
#include "scan_state.h"

/* ---- where the program's own stack ends --------------------------------- */

/* [lo, hi) of the function that holds address (its symbol's size), or 0s. */
static void function_range(void *address, uintptr_t *lo, uintptr_t *hi)
{
    Dl_info info;
    const ElfW(Sym) *sym = NULL;
    *lo = *hi = 0;
    if (address && dladdr1(address, &info, (void **)&sym, RTLD_DL_SYMENT) && sym &&
        info.dli_saddr && sym->st_size) {
        *lo = (uintptr_t)info.dli_saddr;
        *hi = *lo + sym->st_size;
    }
}

static void view_from_cursor(unw_cursor_t *c, struct program_view *v)
{
    static const int callee_saved[] = {UNW_X86_64_RBX, UNW_X86_64_RBP, UNW_X86_64_R12,
                                       UNW_X86_64_R13, UNW_X86_64_R14, UNW_X86_64_R15};
    unw_word_t sp = 0;
    unw_get_reg(c, UNW_REG_SP, &sp);
    v->sp = (uintptr_t)sp;
    v->nregs = 0;
    for (size_t i = 0; i < sizeof callee_saved / sizeof *callee_saved; i++) {
        unw_word_t value;
        if (unw_get_reg(c, callee_saved[i], &value) == 0)
            v->regs[v->nregs++] = value;
    }
}

/* Walks out of the scan to the program: to the caller of libc's exit (the
 * scan runs from our destructor, under exit, also after a return from main,
 * whose caller calls exit), or else to the caller of the shim's outermost
 * frame (our _exit, _Exit). Its stack pointer there is the lowest address the
 * program holds, and its callee-saved registers what it holds in registers
 * (the others are dead across a call). 0 on success. */
static int view_by_walk(int through_exit, struct program_view *v)
{
    static uintptr_t exit_lo, exit_hi;
    if (through_exit && !exit_hi)
        function_range(dlsym(RTLD_DEFAULT, "exit"), &exit_lo, &exit_hi);
    struct mt_thread *t = &mt_thread_state;
    unw_context_t context;
    unw_cursor_t cursor;
    int found = -1, own_chain = 1;
    t->unwinding++; /* libunwind's own mallocs pass through */
    if (unw_getcontext(&context) == 0 && unw_init_local(&cursor, &context) == 0) {
        for (int depth = 0; depth < 256; depth++) {
            unw_word_t ip = 0;
            if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0)
                break;
            /* a return address: the call may be the function's last
             * instruction (exit's call of __run_exit_handlers is) */
            uintptr_t at = (uintptr_t)ip - (depth > 0);
            int in_exit = through_exit && at >= exit_lo && at < exit_hi;
            int own = mt_is_own((uintptr_t)ip);
            if (unw_step(&cursor) <= 0)
                break;
            unw_word_t next_ip = 0;
            unw_get_reg(&cursor, UNW_REG_IP, &next_ip);
            if (in_exit) {
                view_from_cursor(&cursor, v);
                found = 0;
                break;
            }
            if (own_chain && own && !mt_is_own((uintptr_t)next_ip)) {
                own_chain = 0;
                view_from_cursor(&cursor, v);
                found = 0;
                if (!through_exit)
                    break;
            }
        }
    }
    t->unwinding--;
    return found;
}
/* ---- talking to the consumer -------------------------------------------- */

static int send_simple(int fd, uint32_t type)
{
    struct mt_msg_simple msg = {type, 0};
    return send(fd, &msg, sizeof msg, MSG_NOSIGNAL) == (ssize_t)sizeof msg ? 0 : -1;
}

/* Asks for the live blocks; returns the memfd, or -1. */
static int request_blocks(int sock)
{
    if (send_simple(sock, MT_MSG_SCAN) != 0)
        return -1;
    struct mt_msg_reply reply;
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &reply, .iov_len = sizeof reply};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                        .msg_controllen = sizeof control};
    ssize_t n;
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    int fd = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); n > 0 && cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    if (n != (ssize_t)sizeof reply || reply.status != MT_REPLY_OK) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (fd < 0 && (mh.msg_flags & MSG_CTRUNC)) {
        /* The blocks were sent, but their memfd found no free number (the
         * program lowered RLIMIT_NOFILE): the kernel dropped it. Said as
         * it is, or the dump would say the process ended before its scan. */
        struct mt_thread *t = &mt_thread_state;
        t->in_record++;
        mt_emit_incomplete(t, MT_INCOMPLETE_SCAN_NOT_SERVED, MT_SCAN_NOT_RECEIVED + EMFILE);
        t->in_record--;
    }
    return fd;
}

/* _exit never flushes stdio, but libc's freeres does (_IO_cleanup flushes
 * every stream, then frees their buffers). Before it runs at _exit, what is
 * pending in each stream is dropped, as _exit drops it (__fpurge: unwritten
 * output, and unread input that a sync would seek back over): the program's
 * output and file offsets stay what they are bare, and the buffers are
 * freed as under valgrind, whose freeres at _exit does flush them. */
void _IO_list_lock(void);   /* libc's, exported (GLIBC_2.2.5), in no header */
void _IO_list_unlock(void);

static void drop_pending_stdio(FILE **list_all)
{
    _IO_list_lock();
    for (FILE *f = *list_all; f; f = f->_chain)
        __fpurge(f);
    _IO_list_unlock();
}

static void run_freeres(struct mt_thread *t, int how)
{
    /* As valgrind's --run-libc-freeres and --run-cxx-freeres: libc's and
     * libstdc++'s one-time allocations are freed, and those frees recorded,
     * at exit and at _exit alike (valgrind runs both at every exit_group).
     * Looked up guarded (a failed dlsym allocates its message), called
     * unguarded. */
    t->guard++;
    void (*cxx)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "_ZN9__gnu_cxx9__freeresEv");
    void (*libc)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "__libc_freeres");
    FILE **list_all = dlsym(RTLD_DEFAULT, "_IO_list_all");
    t->guard--;
    if (cxx)
        cxx();
    if (libc && (how == MT_SCAN_UNDERSCORE_EXIT || how == MT_SCAN_FOREIGN)) { /* Go's raw exit too */
        if (!list_all)
            return; /* no way to keep stdio unflushed */
        drop_pending_stdio(list_all);
    }
    if (libc)
        libc();
}

static int scanned;

__attribute__((noinline)) static void scan_with_blocks(int memfd, const struct program_view *self)
{
    struct mt_scan_header header;
    if (pread(memfd, &header, sizeof header, 0) != (ssize_t)sizeof header)
        return;
    size_t size = sizeof header + header.count * (sizeof(struct mt_scan_block) + 1);
    uint8_t *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (map == MAP_FAILED)
        return;
    struct marker m = {.blocks = (const void *)(map + sizeof header), .count = header.count};
    m.state = map + sizeof header + header.count * sizeof(struct mt_scan_block);
    m.stack_cap = 2 * header.count + 16;
    size_t stack_size = m.stack_cap * sizeof *m.stack;
    m.stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m.stack != MAP_FAILED && m.count) {
        m.lo = m.blocks[0].address;
        for (uint64_t i = 0; i < m.count; i++)
            if (m.blocks[i].address + m.blocks[i].size + 1 > m.hi)
                m.hi = m.blocks[i].address + m.blocks[i].size + 1;
        memset(m.state, UNREACHED, m.count);
        mt_scan_roots(&m, self);
        mt_scan_drain_marks(&m);
        mt_scan_mark_cliques(&m);
        static const uint8_t kind_of[] = {MT_KIND_DEFINITE, MT_KIND_POSSIBLE, MT_KIND_REACHABLE,
                                          MT_KIND_INDIRECT};
        for (uint64_t i = 0; i < m.count; i++)
            m.state[i] = kind_of[m.state[i]];
    }
    if (m.stack != MAP_FAILED)
        munmap(m.stack, stack_size);
    munmap(map, size);
}

void mt_scan_at_exit(int how, const void *context)
{
    struct mt_thread *t = &mt_thread_state;
    /* Not in a child that shares our memory (vfork, clone with CLONE_VM):
     * its _exit ends it, not the traced process, whose heap it would scan,
     * and free libc's blocks of, under the traced process's feet. */
    if (mt_state != MT_STATE_ACTIVE || mt_config.leak_check != MT_LEAK_CHECK_FULL ||
        getpid() != mt_traced_pid() || __atomic_exchange_n(&scanned, 1, __ATOMIC_ACQ_REL))
        return;
    int saved = errno;
    /* Its frees are events. From exit and _exit (there with stdio's pending
     * data dropped first: drop_pending_stdio). Never from a signal handler:
     * the signal may have come inside malloc (valgrind runs neither after a
     * fatal signal). */
    if (how != MT_SCAN_SIGNAL && mt_config.freeres && !t->guard)
        run_freeres(t, how);
    t->guard++;
    /* The program's view of this thread, taken before anything else runs. */
    struct program_view self;
    memset(&self, 0, sizeof self);
    if (how == MT_SCAN_SIGNAL && context) {
        const ucontext_t *uc = context;
        self.sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP] - RED_ZONE;
        self.nregs = NGREG;
        for (int r = 0; r < NGREG; r++)
            self.regs[r] = (uint64_t)uc->uc_mcontext.gregs[r];
    } else if (how == MT_SCAN_FOREIGN) {
        self.sp = 0; /* the Go stacks' dead ranges (go_bounds) bound it */
        self.nregs = 0;  /* Go keeps nothing in registers across a call */
    } else if (view_by_walk(how == MT_SCAN_EXIT, &self) != 0) {
        /* no unwind: our own frame up, as the best bound there is */
        self.sp = (uintptr_t)__builtin_frame_address(0);
        self.nregs = 0;
    }
    mt_socket_lock();
    int sock = mt_socket_fd();
    if (sock >= 0 && mt_socket_is_ours() && mt_state == MT_STATE_ACTIVE) {
        int unstopped = mt_scan_stop_the_world(how == MT_SCAN_FOREIGN);
        if (how == MT_SCAN_FOREIGN && unstopped > 0)
            unstopped = mt_scan_wait_for_stragglers(unstopped);
        const char *why = NULL;
        if (how == MT_SCAN_FOREIGN) {
            if (unstopped != 0)
                why = "a thread could not be stopped";
            else if (mt_scan_signal_other_threads(0) > __atomic_load_n(&scan_stopped_count, __ATOMIC_ACQUIRE))
                why = "a thread started while the others were being stopped";
            else
                why = mt_scan_go_bounds(context);
        }
        int memfd = -1;
        if (why) { /* not scanned: every gate fails, saying so */
            mt_log("cannot scan this Go program at its exit (%s): its leaks are not classified",
                   why);
            t->in_record++;
            mt_emit_incomplete(t, MT_INCOMPLETE_SCAN_FAILED, 0);
            t->in_record--;
        } else {
            memfd = request_blocks(sock);
        }
        if (memfd >= 0) {
            scan_with_blocks(memfd, &self);
            close(memfd);
            send_simple(sock, MT_MSG_SCAN_DONE);
        }
        /* Go's exit_group follows at once (go_exit.c): the other threads
         * stay stopped, or one would allocate after the scan (Go's sysmon
         * starting a thread: a ThreadStart and a dtv, of kind unknown,
         * which fails the gates) */
        if (how != MT_SCAN_FOREIGN)
            mt_scan_release_the_world();
    }
    mt_socket_unlock();
    t->guard--;
    errno = saved;
}
