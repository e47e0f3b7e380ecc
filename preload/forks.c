/* Fork children (see shim.h): the kit a process keeps ready for its next
 * fork child (a connection and a spare pool made while it still can), the
 * atfork handlers that hand it over, and the children made without fork()
 * (clone, vfork), which must neither write into their parent's rings nor
 * use its socket. Runs inside the traced process. */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "loader.h"
#include "shim.h"
#include "init_state.h"

static uint32_t fork_count; /* fork children made by this process */

/* ---- the kit for the next fork child (ring.h, MT_HELLO_KIT) -------------
 * A connection and a spare pool, made while the process still can (at
 * start, and again after each fork), which the next fork child takes: it
 * then needs no descriptor, socket, connect, memfd or sendmsg of its own,
 * which the program may have taken away (RLIMIT_NOFILE, a seccomp filter).
 * The parent lets its copy go once the child has it. */
static int kit_fd = -1;
static dev_t kit_dev;
static ino_t kit_ino;
static void *kit_pool;
static size_t kit_pool_size;
static uint64_t kit_pool_capacity;
/* the last kit could not be made for want of a connection (errno) */
static int kit_error;

static int kit_is_ours(void)
{
    struct stat st;
    return kit_fd >= 0 && fstat(kit_fd, &st) == 0 && st.st_dev == kit_dev && st.st_ino == kit_ino;
}

/* Forgets the kit; its descriptor is closed only if it is still ours. */
static void kit_drop(void)
{
    if (kit_is_ours())
        close(kit_fd);
    kit_fd = -1;
    if (kit_pool)
        munmap(kit_pool, kit_pool_size);
    kit_pool = NULL;
}

/* Makes the kit if there is none; kit_error says why a child could not
 * connect either (0: a kit is ready, or only its pool failed). */
void mt_kit_make(void)
{
    if (kit_is_ours())
        return;
    kit_fd = -1; /* a number the program reused is its own */
    if (kit_pool)
        munmap(kit_pool, kit_pool_size);
    kit_pool = NULL;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&socket_address, socket_address_len) != 0) {
        int error = errno;
        close(fd);
        fd = -1;
        errno = error;
    }
    if (fd < 0) {
        kit_error = errno ? errno : EIO;
        return;
    }
    kit_error = 0;
    fd = mt_fd_move_high(fd);
    void *pool = NULL;
    size_t pool_size = 0;
    uint64_t capacity = 0;
    int memfd = mt_pool_make(&pool, &pool_size, &capacity);
    struct mt_msg_hello hello = {.type = MT_MSG_HELLO, .version = MT_IPC_VERSION, .pid = getpid(),
                                 .ppid = getppid(), .flags = MT_HELLO_KIT,
                                 .start_mono_ns = mt_coarse_ns(),
                                 .reserved = memfd >= 0 ? (uint32_t)(capacity >> 10) : 0};
    char control[MT_MSG_FD_SPACE];
    struct iovec iov = {.iov_base = &hello, .iov_len = sizeof hello};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (memfd >= 0)
        mt_msg_attach_fd(&mh, control, memfd);
    ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
    if (n < 0 && memfd >= 0) { /* sendmsg denied: a kit without a pool */
        close(memfd);
        munmap(pool, pool_size);
        memfd = -1;
        pool = NULL;
        hello.reserved = 0;
        n = send(fd, &hello, sizeof hello, MSG_NOSIGNAL);
    }
    if (memfd >= 0)
        close(memfd);
    struct mt_msg_reply reply;
    if (n == (ssize_t)sizeof hello) {
        do {
            n = recv(fd, &reply, sizeof reply, 0);
        } while (n < 0 && errno == EINTR);
    }
    struct stat st;
    if (n != (ssize_t)sizeof reply || reply.status != MT_REPLY_OK || fstat(fd, &st) != 0) {
        close(fd);
        if (pool)
            munmap(pool, pool_size);
        return;
    }
    kit_fd = fd;
    kit_dev = st.st_dev;
    kit_ino = st.st_ino;
    kit_pool = pool;
    kit_pool_size = pool_size;
    kit_pool_capacity = capacity;
}

/* ---- fork and exit ------------------------------------------------------ */

/* One fork at a time takes the kit (kit_busy): the thread that forks with
 * it (kit_mine, which its child sees too); a fork of another thread at the
 * same moment goes without, as before kits. */
static int kit_busy;
static __thread int kit_mine __attribute__((tls_model("initial-exec")));
static __thread int fork_untraced __attribute__((tls_model("initial-exec")));

void mt_atfork_prepare(void)
{
    mt_thread_state.guard++;
    fork_untraced = 0;
    kit_mine = 0;
    if (mt_state == MT_STATE_ACTIVE && mt_config.follow_fork &&
        !__atomic_exchange_n(&kit_busy, 1, __ATOMIC_ACQUIRE)) {
        kit_mine = 1;
        mt_kit_make(); /* none yet if the last attempt failed */
        /* without one, this child cannot connect either */
        fork_untraced = !kit_is_ours() && kit_error != 0;
    }
    mt_modules_lock();
    mt_python_lock();
}

void mt_atfork_parent(void)
{
    mt_python_unlock();
    mt_modules_unlock();
    struct mt_thread *t = &mt_thread_state;
    uint32_t seq = ++fork_count;
    if (mt_state == MT_STATE_ACTIVE && mt_config.follow_fork) {
        mt_emit_marker(t, MT_RING_FORK, seq, fork_untraced);
        if (fork_untraced) {
            t->in_record++;
            mt_emit_incomplete(t, MT_INCOMPLETE_CHILD_UNTRACED, 1);
            t->in_record--;
            mt_log("pid %d: its fork child #%u cannot be traced: no connection to memtrace could "
                   "be made for it (%s), and its dump says so",
                   (int)getpid(), seq, strerror(kit_error));
        }
        /* the child has the kit: the parent's copy goes, a new one comes */
        if (kit_mine && kit_fd >= 0) {
            kit_drop();
            mt_kit_make();
        }
    }
    if (kit_mine)
        __atomic_store_n(&kit_busy, 0, __ATOMIC_RELEASE);
    kit_mine = 0;
    t->guard--;
}

/* ---- children made without fork() ---------------------------------------
 * clone(fn, stack, SIGCHLD, arg) and syscall(SYS_clone, SIGCHLD, ...) make
 * a process without running the atfork handlers: it would write into its
 * parent's rings (mapped shared) and socket. A private page marked
 * MADV_WIPEONFORK holds a token: it reads zero in any child that does not
 * share our memory, and mt_ring_get (every event) and mt_socket_fd look at
 * it. mt_atfork_child sets it again in a fork() child. A child that shares our
 * memory (vfork, CLONE_VM) is left as it is (note_exec's getpid check). */
static volatile uint32_t token_fallback = 1; /* before init, or no MADV_WIPEONFORK */
volatile uint32_t *mt_clone_token = &token_fallback;

void mt_clone_token_setup(void)
{
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page != MAP_FAILED && madvise(page, 4096, MADV_WIPEONFORK) == 0) {
        *(volatile uint32_t *)page = 1;
        mt_clone_token = page;
    } else {
        if (page != MAP_FAILED)
            munmap(page, 4096);
        mt_clone_token = &token_fallback;
    }
}

static void become_child(pid_t parent, uint32_t seq);

/* This process is a child made without fork(): what mt_atfork_child does, and
 * locks that other threads of the parent held at the clone are let go (they
 * do not exist here). Its HELLO says fork_seq 0: the consumer gives it its
 * parent's heap as it is when the child says hello. */
void mt_clone_child(void)
{
    struct mt_thread *t = &mt_thread_state;
    *mt_clone_token = 1;
    t->guard++;
    mt_dl_after_fork();
    mt_rings_forget_all(); /* the ring and socket locks too */
    t->nheld = 0;
    mt_python_unlock();
    mt_modules_unlock();
    become_child(traced_pid, 0);
    t->guard--;
}

void mt_atfork_child(void)
{
    *mt_clone_token = 1;
    mt_dl_after_fork();
    mt_python_unlock(); /* the tables and their ids go on in the child */
    mt_modules_unlock();
    struct mt_thread *t = &mt_thread_state;
    uint32_t seq = ++fork_count;
    mt_rings_forget_all();
    become_child(traced_pid, seq);
    t->guard--;
}

/* A child (of fork, seq > 0, or of a clone, seq 0) forgets its parent's
 * connection and rings, and says hello as a child of parent. Guard
 * raised. */
static void become_child(pid_t parent, uint32_t seq)
{
    struct mt_thread *t = &mt_thread_state;
    mt_generation++;
    fork_count = 0;
    /* a clone child with CLONE_FILES shares the parent's descriptors */
    int shared = seq == 0 && syscall(SYS_kcmp, getpid(), getppid(), 2 /* KCMP_FILES */, 0, 0) == 0;
    if (!shared && mt_socket_is_ours()) /* else the number is the program's */
        close(socket_fd);
    socket_fd = -1;
    /* the parent's kit: a fork child's to take; a clone child's parent
     * keeps it (a CLONE_FILES child shares its descriptor: left open) */
    int kit = kit_is_ours() ? kit_fd : -1;
    void *pool = kit_pool;
    kit_fd = -1;
    kit_pool = NULL;
    int mine = kit_mine;
    kit_mine = 0;
    kit_busy = 0;
    if (kit >= 0 && (seq == 0 || !mine || mt_state != MT_STATE_ACTIVE || !mt_config.follow_fork)) {
        if (!shared)
            close(kit);
        kit = -1;
    }
    if (pool && kit < 0)
        munmap(pool, kit_pool_size);
    mt_modules_forget_announced();
    t->ring = NULL;
    t->stack_hi = 0;
    if (mt_state == MT_STATE_ACTIVE) {
        int ok = 0;
        if (!mt_config.follow_fork) {
            mt_state = MT_STATE_OFF;
        } else if (kit >= 0) { /* say hello on it: nothing else is needed */
            hello_flags = MT_HELLO_KIT_CHILD;
            int status = mt_say_hello(kit, parent, seq);
            hello_flags = 0;
            ok = status == MT_REPLY_OK;
            if (ok && pool)
                mt_rings_pool_adopt(pool, kit_pool_size, kit_pool_capacity);
            else if (pool)
                munmap(pool, kit_pool_size);
            if (status > 0) /* the consumer said no (and why): not again */
                mt_state = MT_STATE_OFF;
        }
        if (mt_state == MT_STATE_ACTIVE && !ok) {
            ok = mt_connect_and_hello(parent, seq) == MT_REPLY_OK;
            if (ok)
                mt_rings_pool_setup();
        }
        if (mt_state == MT_STATE_ACTIVE && !ok)
            mt_state = MT_STATE_OFF;
        if (ok)
            mt_kit_make(); /* for its own children */
    }
    if (mt_state == MT_STATE_ACTIVE) { /* the child's dump names them again */
        t->in_record++;
        mt_hooks_announce(t);
        t->in_record--;
    }
}

static void record_exit(int status)
{
    struct mt_thread *t = &mt_thread_state;
    if (mt_state != MT_STATE_ACTIVE)
        return;
    /* a clone child's first event may be its exit: it says hello first, so
     * that traced_pid is its own */
    if (MT_UNLIKELY(!*mt_clone_token))
        mt_clone_child();
    /* a vfork child's _exit ends the child, not the traced process */
    if (mt_state != MT_STATE_ACTIVE || getpid() != traced_pid)
        return;
    uint64_t lost = mt_deferred_lost();
    if (lost)
        mt_log("pid %d: %llu allocation events made in signal handlers could not be recorded "
               "(the thread's queue was full); its figures are short by them",
               (int)getpid(), (unsigned long long)lost);
    mt_unwind_verify_report();
    t->in_record++;
    mt_rings_report_missing(t);
    mt_emit_marker(t, MT_RING_EXIT, MT_EXIT_STATUS, status);
    t->in_record--;
}

void mt_on_exit_handler(int status, void *arg)
{
    (void)arg;
    record_exit(status);
}

void mt_note_exit(int status) MT_HIDDEN;
void mt_note_exit(int status) { record_exit(status); }

/* fatal_signals.c: the process is being killed by sig (before its scan). */
void mt_note_exit_signal(int sig) MT_HIDDEN;
void mt_note_exit_signal(int sig)
{
    struct mt_thread *t = &mt_thread_state;
    if (mt_state != MT_STATE_ACTIVE)
        return;
    t->in_record++;
    mt_rings_report_missing(t);
    mt_emit_marker(t, MT_RING_EXIT, MT_EXIT_SIGNAL, sig);
    t->in_record--;
}
