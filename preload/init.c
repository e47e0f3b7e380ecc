/* Start-up of the shim: resolving the real allocator, and connecting to the
 * consumer (or, in plain LD_PRELOAD mode, starting one). What happens to
 * that connection across fork() is forks.c's (init_state.h: what they share).
 *
 * Init runs on the first interposed call, which can come before our own
 * constructor and from inside the loader: dlsym itself calls calloc, so
 * allocations made while resolving are served from a static bootstrap arena
 * (never freed; free() recognises and ignores them). While one thread
 * initializes, others wait. Nothing here calls the traced malloc: the guard
 * is raised so that libc's own allocations pass through unrecorded.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loader.h"
#include "shim.h"
#include "init_state.h"

struct mt_real_functions mt_real;
volatile int mt_state;
__thread struct mt_thread mt_thread_state __attribute__((tls_model("initial-exec")));
struct mt_config mt_config = {MT_UNWIND_DWARF, 64, 1, MT_RING_DEFAULT_CAPACITY,
                              MT_LEAK_CHECK_FULL, 1, MT_PYTHON_AUTO};
uint32_t mt_generation = 1;

int socket_fd = -1;
struct sockaddr_un socket_address;
socklen_t socket_address_len;
pid_t traced_pid; /* the pid this state belongs to */
static dev_t socket_dev;  /* identity of our socket, in case the program */
static ino_t socket_ino;  /* closes its fds and the number is reused */

extern char **environ;

/* ---- bootstrap arena --------------------------------------------------- */

static _Alignas(64) unsigned char bootstrap[512 * 1024];
static size_t bootstrap_used;

void *mt_bootstrap_alloc(size_t size, size_t align)
{
    if (align < 16)
        align = 16;
    for (;;) {
        size_t used = __atomic_load_n(&bootstrap_used, __ATOMIC_RELAXED);
        size_t start = (used + 16 + align - 1) & ~(align - 1);
        if (start + size > sizeof bootstrap || start + size < start)
            return NULL;
        if (__atomic_compare_exchange_n(&bootstrap_used, &used, start + size, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
            memcpy(bootstrap + start - sizeof(size_t), &size, sizeof size);
            return bootstrap + start;
        }
    }
}

int mt_is_bootstrap(const void *p)
{
    return (const unsigned char *)p >= bootstrap && (const unsigned char *)p < bootstrap + sizeof bootstrap;
}

size_t mt_bootstrap_size(const void *p)
{
    size_t size;
    memcpy(&size, (const unsigned char *)p - sizeof(size_t), sizeof size);
    return size;
}

/* ---- messages ----------------------------------------------------------- */

/* Every message of the shim goes through memtrace's own channel, never the
 * program's fd 2 (a program whose stderr must stay empty would fail): a
 * NOTICE on the socket, which the consumer prints on memtrace's stderr (or
 * --log-file, or nowhere with -q). Without a connection (it failed, or the
 * process is no longer traced) the message goes to the file MEMTRACE_LOG
 * names, when the user set it, or nowhere. */
static char log_path[512];

static void log_to_file(const char *text, size_t len)
{
    if (!log_path[0])
        return;
    int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return;
    char line[MT_NOTICE_MAX + 16];
    int n = snprintf(line, sizeof line, "memtrace: %.*s\n", (int)len, text);
    ssize_t ignored = write(fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    (void)ignored;
    close(fd);
}

void mt_log(const char *fmt, ...)
{
    int saved_errno = errno;
    struct mt_msg_notice m = {.type = MT_MSG_NOTICE};
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m.text, sizeof m.text, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (n >= (int)sizeof m.text)
        n = (int)sizeof m.text - 1;
    m.len = (uint32_t)n;
    int fd = mt_socket_fd();
    ssize_t sent = -1;
    if (fd >= 0) {
        do {
            sent = send(fd, &m, offsetof(struct mt_msg_notice, text) + m.len, MSG_NOSIGNAL);
        } while (sent < 0 && errno == EINTR);
    }
    if (sent < 0)
        log_to_file(m.text, m.len);
    errno = saved_errno;
}

void mt_disable(const char *why)
{
    if (mt_state != MT_STATE_OFF && why)
        mt_log("pid %d is no longer traced: %s", (int)getpid(), why);
    mt_state = MT_STATE_OFF;
}

static int reconnect(void);

/* The socket, or -1: when the program has closed it or dup2'd something
 * else over its number (daemons close every descriptor), we never write into
 * a descriptor that is no longer ours, and connect again. */
int mt_socket_fd(void)
{
    if (MT_UNLIKELY(!*mt_clone_token))
        mt_clone_child();
    if (mt_socket_is_ours())
        return socket_fd;
    return reconnect();
}

pid_t mt_traced_pid(void) { return traced_pid; }

int mt_socket_is_ours(void)
{
    struct stat st;
    return socket_fd >= 0 && fstat(socket_fd, &st) == 0 && st.st_dev == socket_dev &&
           st.st_ino == socket_ino;
}

/* Moves a descriptor of ours out of the program's way, close-on-exec: to the
 * first free number of the 16 below its soft RLIMIT_NOFILE (capped at 65536,
 * to keep the kernel's fd table small), as valgrind keeps the top fds for
 * itself, so that the program's open() returns the numbers it would bare.
 * Returns the new descriptor (the old one closed), or fd unchanged. */
int mt_fd_move_high(int fd)
{
    struct rlimit rl;
    rlim_t top = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        top = rl.rlim_cur;
    if (top > 65536)
        top = 65536;
    if (fd < 0 || top < 64 || (rlim_t)fd >= top - 16)
        return fd;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, (int)(top - 16));
    if (high < 0)
        return fd;
    close(fd);
    return high;
}

/* ---- resolving the real functions -------------------------------------- */

/* Without a next definition (the shim was not preloaded, so RTLD_NEXT
 * finds nothing after it), the C library's own functions, found in its
 * symbol table: the names __libc_malloc... are the shim's own exports. */
#define LIBC_OWN(field, name) mt_real.field = (__typeof__(mt_real.field))mt_libc_symbol(name)

#define RESOLVE(field, name) mt_real.field = (__typeof__(mt_real.field))dlsym(RTLD_NEXT, name)

static void resolve_real_functions(void)
{
    RESOLVE(malloc, "malloc");
    RESOLVE(free, "free");
    RESOLVE(calloc, "calloc");
    RESOLVE(realloc, "realloc");
    if (!mt_real.malloc || !mt_real.free || !mt_real.calloc || !mt_real.realloc) {
        LIBC_OWN(malloc, "malloc");
        LIBC_OWN(free, "free");
        LIBC_OWN(calloc, "calloc");
        LIBC_OWN(realloc, "realloc");
    }
    RESOLVE(reallocarray, "reallocarray");
    RESOLVE(posix_memalign, "posix_memalign");
    RESOLVE(aligned_alloc, "aligned_alloc");
    RESOLVE(memalign, "memalign");
    if (!mt_real.memalign)
        LIBC_OWN(memalign, "memalign");
    RESOLVE(valloc, "valloc");
    RESOLVE(pvalloc, "pvalloc");
    RESOLVE(dlopen, "dlopen");
    RESOLVE(dlmopen, "dlmopen");
    RESOLVE(dlclose, "dlclose");
    RESOLVE(_exit, "_exit");
    RESOLVE(_Exit, "_Exit");
    RESOLVE(execve, "execve");
    RESOLVE(execvpe, "execvpe");
    RESOLVE(fexecve, "fexecve");
    RESOLVE(execveat, "execveat");
    RESOLVE(posix_spawn, "posix_spawn");
    RESOLVE(posix_spawnp, "posix_spawnp");
}

/* ---- connecting -------------------------------------------------------- */

static int set_socket_name(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof socket_address.sun_path)
        return -1;
    memset(&socket_address, 0, sizeof socket_address);
    socket_address.sun_family = AF_UNIX;
    memcpy(socket_address.sun_path, name, len);
    if (name[0] == '@') /* abstract namespace */
        socket_address.sun_path[0] = '\0';
    socket_address_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    return 0;
}

/* The --hook-* list of `memtrace run` (from the HELLO reply), or, in plain
 * mode, the user's MEMTRACE_HOOKS. */
static char hooks_spec[MT_HOOKS_MAX + 1];
static int plain_mode;
static int python_malloc;

/* `memtrace run` has CPython use malloc for every object, as
 * PYTHONMALLOC=malloc does (cli/run.c), without putting that variable in the
 * environment, where os.environ would show it and every program copying its
 * environment would allocate for it: CPython reads it with getenv, and the
 * shim's getenv answers "malloc" when the environment does not hold it.
 * Otherwise this is glibc's getenv: the first NAME=value of environ. It runs
 * before our initialization too (python_malloc is 0 then). */
__attribute__((visibility("default"))) char *getenv(const char *name)
{
    size_t len = strlen(name);
    if (len == 0)
        return NULL;
    for (char **e = environ; e && *e; e++)
        if (strncmp(*e, name, len) == 0 && (*e)[len] == '=')
            return *e + len + 1;
    if (python_malloc && strcmp(name, "PYTHONMALLOC") == 0)
        return (char *)"malloc";
    return NULL;
}

const char *mt_hooks_spec(void) { return plain_mode ? getenv("MEMTRACE_HOOKS") : hooks_spec; }

/* The settings of the run, from the reply to HELLO (never from the
 * program's environment, which memtrace leaves as it was). */
static void take_settings(int fd, const struct mt_msg_reply *reply)
{
    mt_config.unwind = reply->unwind == MT_UNWIND_FP ? MT_UNWIND_FP : MT_UNWIND_DWARF;
    mt_config.max_depth = reply->max_depth >= 1 && reply->max_depth <= MT_MAX_DEPTH_LIMIT
                              ? reply->max_depth : 64;
    mt_config.follow_fork = reply->follow_fork;
    mt_config.leak_check = reply->leak_check;
    mt_config.freeres = reply->freeres;
    mt_config.python = reply->python <= MT_PYTHON_ON ? reply->python : MT_PYTHON_AUTO;
    uint32_t kib = reply->ring_kib;
    if (kib >= 64 && kib <= (1u << 20) && (kib & (kib - 1)) == 0)
        mt_config.ring_capacity = (uint64_t)kib * 1024;
    if (!plain_mode) {
        mt_unwind_verify = reply->unwind_verify == 1;
        python_malloc = reply->python_malloc == 1;
    }
    if (reply->hooks_len > 0 && reply->hooks_len <= MT_HOOKS_MAX) {
        ssize_t n;
        do {
            n = recv(fd, hooks_spec, MT_HOOKS_MAX, 0);
        } while (n < 0 && errno == EINTR);
        hooks_spec[n > 0 ? n : 0] = '\0';
    }
}

uint32_t hello_flags; /* MT_HELLO_RECONNECT while reconnecting */

/* Connects and says hello; returns the reply status, or -1. */
int mt_connect_and_hello(pid_t fork_parent, uint32_t fork_seq)
{
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&socket_address, socket_address_len) != 0) {
        close(fd);
        return -1;
    }
    return mt_say_hello(mt_fd_move_high(fd), fork_parent, fork_seq);
}

/* Says hello on fd, connected (closed unless the reply is OK, when it
 * becomes the process's socket); returns the reply status, or -1. */
int mt_say_hello(int fd, pid_t fork_parent, uint32_t fork_seq)
{
    struct mt_msg_hello hello = {.type = MT_MSG_HELLO, .version = MT_IPC_VERSION,
                                 .pid = getpid(), .ppid = getppid(), .fork_parent = fork_parent,
                                 .fork_seq = fork_seq, .flags = hello_flags,
                                 /* not after any event's stamp */
                                 .start_mono_ns = mt_coarse_ns()};
    struct mt_msg_reply reply;
    ssize_t n = send(fd, &hello, sizeof hello, MSG_NOSIGNAL);
    if (n == (ssize_t)sizeof hello) {
        do {
            n = recv(fd, &reply, sizeof reply, 0);
        } while (n < 0 && errno == EINTR);
    }
    if (n != (ssize_t)sizeof reply) {
        close(fd);
        return -1;
    }
    if (reply.status != MT_REPLY_OK) {
        close(fd); /* the consumer said why, on memtrace's stderr */
        return (int)reply.status;
    }
    take_settings(fd, &reply);
    socket_fd = fd;
    traced_pid = hello.pid;
    struct stat st;
    if (fstat(fd, &st) == 0) {
        socket_dev = st.st_dev;
        socket_ino = st.st_ino;
    }
    return MT_REPLY_OK;
}

/* Connects again after the program closed our socket: the old number is
 * the program's now (never closed or written by us). One thread connects;
 * the others wait for it and use its connection, except a signal handler
 * that interrupted the connecting thread itself, which gets -1. After a
 * failed attempt no other is made. Returns the socket, or -1. */
static int reconnect(void)
{
    static pid_t owner; /* the thread connecting, or 0 */
    static pid_t given_up; /* the process that failed to, or 0 */
    pid_t self = (pid_t)syscall(SYS_gettid);
    for (;;) {
        if (mt_state != MT_STATE_ACTIVE || traced_pid != getpid() || given_up == traced_pid)
            return -1;
        pid_t expected = 0;
        if (__atomic_compare_exchange_n(&owner, &expected, self, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_ACQUIRE))
            break;
        if (expected == self)
            return -1;
        sched_yield();
    }
    int fd = -1;
    if (mt_socket_is_ours()) { /* another thread connected meanwhile */
        fd = socket_fd;
    } else if (given_up != traced_pid) {
        socket_fd = -1;
        hello_flags = MT_HELLO_RECONNECT;
        if (mt_connect_and_hello(0, 0) == MT_REPLY_OK)
            fd = socket_fd;
        else
            given_up = traced_pid;
        hello_flags = 0;
    }
    __atomic_store_n(&owner, 0, __ATOMIC_RELEASE);
    return fd;
}

/* `memtrace run` preloads us through a symbolic link in its private
 * directory, beside its socket: the loader keeps the path as LD_PRELOAD
 * gave it, so the socket is found next to our own path, in this process
 * and in every program it execs, with nothing added to the environment. */
static int find_run_socket(void)
{
    Dl_info self;
    if (!dladdr((void *)find_run_socket, &self) || !self.dli_fname)
        return -1;
    const char *slash = strrchr(self.dli_fname, '/');
    if (!slash)
        return -1;
    int dir_len = (int)(slash - self.dli_fname);
    char path[sizeof socket_address.sun_path];
    if (snprintf(path, sizeof path, "%.*s/%s", dir_len, self.dli_fname, MT_RUN_SOCKET_NAME) >=
        (int)sizeof path)
        return -1;
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISSOCK(st.st_mode))
        return -1;
    return set_socket_name(path);
}

/* Plain LD_PRELOAD mode: start `memtrace __serve` as a detached process
 * (it binds the socket, forks, and its first half exits, so we never keep a
 * child the program could reap), then connect to it. */
static int spawn_consumer(const char *output)
{
    static char bin[4096], name[64], depth_arg[16];
    static char *argv[16];
    static char *envp[4096];
    const char *explicit_bin = getenv("MEMTRACE_BIN");
    if (explicit_bin && strlen(explicit_bin) < sizeof bin) {
        strcpy(bin, explicit_bin);
    } else {
        Dl_info self;
        if (!dladdr((void *)spawn_consumer, &self) || !self.dli_fname ||
            strlen(self.dli_fname) >= sizeof bin - 16)
            return -1;
        strcpy(bin, self.dli_fname);
        char *slash = strrchr(bin, '/');
        strcpy(slash ? slash + 1 : bin, "memtrace");
    }
    snprintf(name, sizeof name, "@memtrace-%d-%llx", (int)getpid(),
             (unsigned long long)mt_now_ns());
    const char *unwind = getenv("MEMTRACE_UNWIND");
    const char *depth = getenv("MEMTRACE_MAX_DEPTH");
    int argc = 0;
    argv[argc++] = bin;
    argv[argc++] = "__serve";
    argv[argc++] = "--socket";
    argv[argc++] = name;
    argv[argc++] = "--output";
    argv[argc++] = (char *)output;
    if (unwind) {
        argv[argc++] = "--unwind";
        argv[argc++] = (char *)unwind;
    }
    if (depth && strlen(depth) < sizeof depth_arg) {
        strcpy(depth_arg, depth);
        argv[argc++] = "--max-depth";
        argv[argc++] = depth_arg;
    }
    const char *python = getenv("MEMTRACE_PYTHON");
    if (python) {
        argv[argc++] = "--python";
        argv[argc++] = (char *)python;
    }
    argv[argc] = NULL;
    int envc = 0;
    for (char **e = environ; e && *e && envc < 4095; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0 &&
            (strncmp(*e, "MEMTRACE_", 9) != 0 || strncmp(*e, "MEMTRACE_LOG=", 13) == 0))
            envp[envc++] = *e;
    envp[envc] = NULL;
    pid_t pid;
    if (posix_spawn(&pid, bin, NULL, NULL, argv, envp) != 0) {
        mt_log("cannot start the consumer %s", bin);
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    /* Exec'd programs start consumers of their own: nothing is added to
     * the environment the user gave. */
    return set_socket_name(name);
}

/* ---- init ---------------------------------------------------------------- */

void mt_init(void)
{
    int expected = MT_STATE_UNINIT;
    if (!__atomic_compare_exchange_n(&mt_state, &expected, MT_STATE_STARTING, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        while (mt_state == MT_STATE_STARTING)
            sched_yield();
        return;
    }
    int saved_errno = errno;
    struct mt_thread *t = &mt_thread_state;
    t->guard++;
    t->generation = mt_generation;
    resolve_real_functions();

    int state = MT_STATE_OFF;
    const char *output = getenv("MEMTRACE_OUTPUT");
    const char *log = getenv("MEMTRACE_LOG");
    if (log && strlen(log) < sizeof log_path)
        strcpy(log_path, log);
    int have_socket = find_run_socket() == 0;
    if (!have_socket && output && *output) {
        /* plain LD_PRELOAD mode: the user's own variables are the settings */
        plain_mode = 1;
        const char *ring_kib = getenv("MEMTRACE_RING_KIB");
        const char *verify = getenv("MEMTRACE_UNWIND_VERIFY");
        mt_unwind_verify = verify && strcmp(verify, "1") == 0;
        if (ring_kib) {
            unsigned long kib = strtoul(ring_kib, NULL, 10);
            if (kib >= 64 && kib <= (1ul << 20) && (kib & (kib - 1)) == 0)
                mt_config.ring_capacity = kib * 1024;
        }
        have_socket = spawn_consumer(output) == 0;
    }
    if (have_socket) {
        int status = mt_connect_and_hello(0, 0);
        if (status == MT_REPLY_OK)
            state = MT_STATE_ACTIVE;
        else if (status < 0)
            mt_log("cannot reach the memtrace consumer; pid %d runs untraced", (int)getpid());
    }
    if (state == MT_STATE_ACTIVE) {
        Dl_info self;
        if (dladdr((void *)mt_init, &self)) {
            uintptr_t lo, hi; /* our own range: stacks skip our frames */
            if (mt_module_range((uintptr_t)self.dli_fbase, &lo, &hi) == 0)
                mt_stacks_set_own_range(lo, hi);
            mt_tls_compensation_init((uintptr_t)self.dli_fbase);
            mt_stacks_find_unwinder();
        }
        mt_rings_setup();
        mt_rings_pool_setup(); /* before the program can forbid it */
        if (mt_config.follow_fork)
            mt_kit_make();
        mt_clone_token_setup();
        pthread_atfork(mt_atfork_prepare, mt_atfork_parent, mt_atfork_child);
        on_exit(mt_on_exit_handler, NULL);
        mt_fatal_signals_install(); /* a fatal signal scans too */
    }
    __atomic_store_n(&mt_state, state, __ATOMIC_RELEASE);
    if (state == MT_STATE_ACTIVE) { /* the dump has the modules from the start */
        mt_modules_sync_now(t);
        mt_python_setup(NULL);
        mt_hooks_install();
        mt_go_exit_install(); /* Go leaves by a raw exit_group: scan it there */
        t->in_record++;
        mt_hooks_announce(t);
        t->in_record--;
    }
    t->guard--;
    errno = saved_errno;
}

/* Our destructor runs after the program's and its libraries' (they were
 * initialized after us): the latest moment to scan, as memcheck does. */
__attribute__((destructor)) static void mt_destructor(void) { mt_scan_at_exit(MT_SCAN_EXIT, NULL); }

__attribute__((constructor)) static void mt_constructor(void)
{
    if (mt_state == MT_STATE_UNINIT)
        mt_init();
}
