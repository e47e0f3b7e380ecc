/* `memtrace run`: checks that the program can be traced at all, starts it
 * with the shim preloaded, serves as its consumer, and exits with its
 * status. Everything that can be refused is refused before the program
 * starts, in one line, so no dump is left half-written.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ci/gates.h"
#include "cli.h"
#include "consumer/consumer.h"
#include "memtrace/format.h"
#include "run_janitor.h"
#include "memtrace/ring.h"

static const char run_usage[] =
    "usage: memtrace run [OPTIONS] [--] PROGRAM [ARGS...]\n"
    "Run PROGRAM with every heap allocation recorded; write one dump per process\n"
    "and print memcheck's HEAP SUMMARY figures for each when it ends.\n"
    "\n"
    "  -o, --output PATTERN   dump path; %p = pid, %n = program name, %% = %\n"
    "                         (default ./memtrace.%n.%p.mtr)\n"
    "      --no-follow-fork   trace only the first process, not its children\n"
    "      --unwind MODE      stack capture: dwarf (default) or fp (frame\n"
    "                         pointers). dwarf: memtrace's own unwinder over the\n"
    "                         .eh_frame unwind tables, with libunwind taking the\n"
    "                         stacks it cannot follow (signal frames, DWARF\n"
    "                         expressions other than stack realignment's, code\n"
    "                         without unwind data)\n"
    "      --max-depth N      frames kept per stack, 1..256 (default 64)\n"
    "      --leak-check MODE  full (default): classify the blocks live at exit as\n"
    "                         definite, indirect, possible or reachable, by a scan\n"
    "                         of the process's memory as it ends; summary: no\n"
    "                         scan; none: no scan and no leak summary\n"
    "      --run-libc-freeres yes|no\n"
    "                         free libc's and libstdc++'s one-time allocations\n"
    "                         before the scan, as valgrind does (default yes)\n"
    "      --python MODE      Python frames in stacks: auto (default: when the\n"
    "                         program is CPython or loads libpython), on, off\n"
    "      --python-allocator malloc|pymalloc\n"
    "                         malloc (default): PYTHONMALLOC=malloc for a\n"
    "                         Python program so every object is seen; pymalloc:\n"
    "                         leave CPython's small-object allocator in place\n"
    "                         (objects of 512 bytes or less are then not seen)\n"
    "      --hook-alloc SYM:SIZEARG\n"
    "      --hook-free SYM:PTRARG\n"
    "      --hook-realloc SYM:PTRARG:SIZEARG\n"
    "                         trace a custom allocator: the function SYM (found in\n"
    "                         the full symbol tables, static functions too) is\n"
    "                         patched inline; SIZEARG/PTRARG say which argument,\n"
    "                         from 0, is the size or the pointer (up to 6 integer\n"
    "                         arguments). Repeatable. Its blocks are reported with\n"
    "                         SYM as their allocator (report --allocator SYM).\n"
    "                         A program that defines its own malloc, free, ... is\n"
    "                         hooked so without asking.\n"
    "  -q, --quiet            no summary and no notices on stderr (errors are\n"
    "                         still said)\n"
    "      --log-file FILE    write all of memtrace's output (summaries, notices,\n"
    "                         errors) to FILE instead of memtrace's stderr; the\n"
    "                         program's own stdout and stderr are never written\n"
    "  -h, --help             show this help\n"
    "\n";

static const char run_usage_end[] =
    "\n"
    "Exit status: the program's (128+N when killed by signal N); the\n"
    "--error-exitcode (default 99) when a gate fails; 1 when memtrace itself\n"
    "cannot run the program.\n";

static char socket_dir[PATH_MAX];
static char socket_path[PATH_MAX];
static char shim_link[PATH_MAX];
static volatile pid_t child_pid;
static volatile int child_pidfd = -1; /* signals never reach a reused pid */

/* SIGTERM, SIGHUP, SIGINT and SIGQUIT sent to run are passed on to the
 * program, as sudo does, and run waits for it to end as usual (so that its
 * dump is complete and the run directory removed). Not passed on: what the
 * terminal sent (^C, ^\, hangup: the program, in the same foreground
 * process group, got it too) and what the program sent itself. A signal
 * sent to the whole process group by another process reaches the program
 * twice. */
static void forward_signal(int sig, siginfo_t *info, void *context)
{
    (void)context;
    pid_t child = child_pid;
    if (child <= 0 || info->si_code == SI_KERNEL || (info->si_code <= 0 && info->si_pid == child))
        return;
    int saved = errno;
    if (child_pidfd >= 0) /* once the program is reaped: ESRCH, never another's */
        pidfd_send_signal(child_pidfd, sig, NULL, 0);
    else
        kill(child, sig);
    errno = saved;
}

static void forward_signals(void)
{
    struct sigaction sa = {.sa_sigaction = forward_signal, .sa_flags = SA_SIGINFO | SA_RESTART};
    sigemptyset(&sa.sa_mask);
    int forwarded[] = {SIGTERM, SIGHUP, SIGINT, SIGQUIT};
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++)
        sigaddset(&sa.sa_mask, forwarded[i]);
    for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++)
        sigaction(forwarded[i], &sa, NULL);
}

/* Finds PROGRAM the way execvp would; 0 and the path, or an errno. */
static int resolve_program(const char *name, char *out, size_t size)
{
    if (strchr(name, '/')) {
        snprintf(out, size, "%s", name);
        return access(out, F_OK) == 0 ? 0 : errno;
    }
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    int found_but_not_executable = 0;
    for (const char *p = path;; p++) {
        const char *end = strchrnul(p, ':');
        snprintf(out, size, "%.*s/%s", (int)(end - p), end == p ? "." : p, name);
        struct stat st;
        if (stat(out, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(out, X_OK) == 0)
                return 0;
            found_but_not_executable = 1;
        }
        if (!*end)
            break;
        p = end;
    }
    return found_but_not_executable ? EACCES : ENOENT;
}

/* 1 if the ELF file is dynamically linked (has an interpreter), 0 if
 * static, -1 if it is not ELF. */
static int elf_is_dynamic(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    Elf64_Ehdr eh;
    int result = -1;
    if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh && memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0) {
        result = 0;
        if (eh.e_ident[EI_CLASS] == ELFCLASS64) {
            for (int i = 0; i < eh.e_phnum; i++) {
                Elf64_Phdr ph;
                if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + (uint64_t)i * eh.e_phentsize)) !=
                    (ssize_t)sizeof ph)
                    break;
                if (ph.p_type == PT_INTERP)
                    result = 1;
            }
        } else {
            result = 1; /* 32-bit: let the loader decide */
        }
    }
    close(fd);
    return result;
}

/* Refuses what LD_PRELOAD cannot trace; prints the reason. */
static int check_program(const char *given, const char *path, int depth)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "memtrace: cannot run '%s': %s\n", given, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode) || access(path, X_OK) != 0) {
        fprintf(stderr, "memtrace: cannot run '%s': %s\n", given,
                S_ISDIR(st.st_mode) ? "it is a directory" : "permission denied (not executable)");
        return -1;
    }
    if (st.st_mode & (S_ISUID | S_ISGID)) {
        fprintf(stderr,
                "memtrace: cannot trace '%s': it is set%cid, and the loader ignores LD_PRELOAD for "
                "such programs; trace a copy without the set%cid bit\n",
                given, (st.st_mode & S_ISUID) ? 'u' : 'g', (st.st_mode & S_ISUID) ? 'u' : 'g');
        return -1;
    }
    int dyn = elf_is_dynamic(path);
    if (dyn == 0) {
        fprintf(stderr,
                "memtrace: cannot trace '%s': it is statically linked, so LD_PRELOAD cannot "
                "interpose its allocator; rebuild it dynamically linked\n",
                given);
        return -1;
    }
    if (dyn < 0 && depth == 0) { /* a script: check its interpreter */
        char line[PATH_MAX];
        FILE *f = fopen(path, "re");
        if (f && fgets(line, sizeof line, f) && line[0] == '#' && line[1] == '!') {
            char *interp = line + 2;
            interp += strspn(interp, " \t");
            interp[strcspn(interp, " \t\n")] = '\0';
            fclose(f);
            return *interp ? check_program(interp, interp, 1) : 0;
        }
        if (f)
            fclose(f);
    }
    return 0;
}

/* Checks that a dump can be created where the pattern says, before the
 * program runs. */
static int check_output(const char *pattern, const char *program)
{
    char path[PATH_MAX];
    const char *base = strrchr(program, '/');
    if (consumer_expand_pattern(pattern, 0, base ? base + 1 : program, path, sizeof path) != 0) {
        fprintf(stderr, "memtrace: the output path '%s' is too long\n", pattern);
        return -1;
    }
    if (!strstr(pattern, "%p")) {
        struct stat st;
        if (lstat(path, &st) == 0) {
            fprintf(stderr, "memtrace: cannot write the dump %s: %s\n", path,
                    S_ISLNK(st.st_mode) ? "it is a symbolic link (never followed)"
                                        : "the file already exists (dumps are never overwritten)");
            return -1;
        }
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    const char *d = dirname(dir);
    if (access(d, W_OK | X_OK) != 0) {
        fprintf(stderr, "memtrace: cannot write the dump in %s: %s\n", d, strerror(errno));
        return -1;
    }
    return 0;
}

/* The shim next to this executable, or one installed beside it. */
static int find_shim(char *out, size_t size)
{
    const char *env = getenv("MEMTRACE_PRELOAD");
    if (env && *env) {
        char real[PATH_MAX]; /* the run directory's link points to it */
        snprintf(out, size, "%s", realpath(env, real) ? real : env);
        return access(out, R_OK) == 0 ? 0 : -1;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return -1;
    self[n] = '\0';
    char *dir = dirname(self);
    const char *candidates[] = {"%s/libmemtrace.so", "%s/../lib/memtrace/libmemtrace.so",
                                "%s/../lib/libmemtrace.so"};
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++) {
        snprintf(out, size, candidates[i], dir);
        if (access(out, R_OK) == 0) {
            char real[PATH_MAX];
            if (realpath(out, real))
                snprintf(out, size, "%s", real);
            return 0;
        }
    }
    return -1;
}

/* The run's private directory (mode 0700): the socket, and the symbolic
 * link to the shim that LD_PRELOAD names, by which the shim finds the
 * socket (ring.h) without a variable in the program's environment. */
static int make_socket(const char *shim)
{
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp || strlen(tmp) > 60)
        tmp = "/tmp";
    snprintf(socket_dir, sizeof socket_dir, "%s/memtrace-XXXXXX", tmp);
    if (!mkdtemp(socket_dir)) {
        snprintf(socket_dir, sizeof socket_dir, "/tmp/memtrace-XXXXXX");
        if (!mkdtemp(socket_dir)) {
            fprintf(stderr, "memtrace: cannot create a private directory in /tmp: %s\n",
                    strerror(errno));
            return -1;
        }
    }
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(socket_dir) + sizeof MT_RUN_SOCKET_NAME + 1 > sizeof addr.sun_path) {
        fprintf(stderr, "memtrace: the socket path under %s is too long\n", socket_dir);
        rmdir(socket_dir);
        return -1;
    }
    snprintf(socket_path, sizeof socket_path, "%s/%s", socket_dir, MT_RUN_SOCKET_NAME);
    snprintf(shim_link, sizeof shim_link, "%s/%s", socket_dir, MT_RUN_SHIM_NAME);
    if (symlink(shim, shim_link) != 0) {
        fprintf(stderr, "memtrace: cannot link the shim into %s: %s\n", socket_dir,
                strerror(errno));
        rmdir(socket_dir);
        return -1;
    }
    memcpy(addr.sun_path, socket_path, strlen(socket_path) + 1);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 128) != 0) {
        fprintf(stderr, "memtrace: cannot listen on %s: %s\n", socket_path, strerror(errno));
        unlink(shim_link);
        rmdir(socket_dir);
        return -1;
    }
    return fd;
}

static void remove_socket(void)
{
    unlink(socket_path);
    unlink(shim_link);
    rmdir(socket_dir);
}

/* Adds a --hook-* option's SYM:ARG[:ARG] to the MEMTRACE_HOOKS list
 * ("kind:SYM:ARG[:ARG]" entries separated by ';'). 0, or -1 said. */
static int add_hook(char *list, size_t size, const char *kind, const char *spec, int nargs)
{
    const char *end = spec + strlen(spec);
    for (int k = 0; k < nargs; k++) {
        const char *colon = end;
        while (colon > spec && colon[-1] != ':')
            colon--;
        if (colon == spec || end - colon != 1 || *colon < '0' || *colon > '5') {
            cli_error("--hook-%s takes %s, with arguments numbered 0 to 5, not '%s'", kind,
                      nargs == 1 ? (strcmp(kind, "free") == 0 ? "SYM:PTRARG" : "SYM:SIZEARG")
                                 : "SYM:PTRARG:SIZEARG",
                      spec);
            return -1;
        }
        end = colon - 1;
    }
    if (end == spec || memchr(spec, ';', (size_t)(end - spec)) || strlen(spec) > 120) {
        cli_error("--hook-%s: '%s' does not name a function", kind, spec);
        return -1;
    }
    size_t used = strlen(list);
    if (used + strlen(kind) + strlen(spec) + 3 > size) {
        cli_error("too many --hook options");
        return -1;
    }
    snprintf(list + used, size - used, "%s%s:%s", used ? ";" : "", kind, spec);
    return 0;
}

int cmd_run(int argc, char **argv)
{
    static char hooks[4096];
    struct consumer_options o = {.output_pattern = "./memtrace.%n.%p.mtr",
                                 .unwind = MT_UNWIND_DWARF, .max_depth = 64, .follow_fork = 1,
                                 .leak_check = MT_LEAK_CHECK_FULL, .freeres = 1,
                                 .python = MT_PYTHON_AUTO};
    int pymalloc = 0;
    const char *log_file = NULL;
    static const struct option run_options[] = {
        {"output", required_argument, 0, 'o'}, {"no-follow-fork", no_argument, 0, 'F'},
        {"unwind", required_argument, 0, 'u'}, {"max-depth", required_argument, 0, 'd'},
        {"quiet", no_argument, 0, 'q'},        {"help", no_argument, 0, 'h'},
        {"leak-check", required_argument, 0, 'L'}, {"run-libc-freeres", required_argument, 0, 'R'},
        {"python", required_argument, 0, 'P'}, {"python-allocator", required_argument, 0, 'Y'},
        {"hook-alloc", required_argument, 0, 'A'}, {"hook-free", required_argument, 0, 'D'},
        {"hook-realloc", required_argument, 0, 'E'}, {"log-file", required_argument, 0, 'G'}};
    /* run's own options, then the gate options (which end with {0}) */
    enum { NRUN = sizeof run_options / sizeof *run_options };
    struct option longopts[NRUN + 64];
    memcpy(longopts, run_options, sizeof run_options);
    size_t ngate = 0;
    while (gate_long_options[ngate].name && ngate < 62)
        ngate++;
    memcpy(longopts + NRUN, gate_long_options, ngate * sizeof *longopts);
    memset(&longopts[NRUN + ngate], 0, sizeof *longopts);
    struct gate_options gates;
    gate_options_init(&gates, 99);
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+o:qh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'o': o.output_pattern = optarg; break;
        case 'F': o.follow_fork = 0; break;
        case 'q': o.quiet = 1; break;
        case 'G': log_file = optarg; break;
        case 'h':
            fputs(run_usage, stdout);
            fputs(gate_help, stdout);
            fputs(run_usage_end, stdout);
            return 0;
        case 'u':
            if (parse_unwind(optarg, &o.unwind) != 0)
                return cli_error("--unwind takes dwarf or fp, not '%s'", optarg);
            break;
        case 'L':
            if (parse_leak_check(optarg, &o.leak_check) != 0)
                return cli_error("--leak-check takes none, summary or full, not '%s'", optarg);
            break;
        case 'R':
            if (strcmp(optarg, "yes") != 0 && strcmp(optarg, "no") != 0)
                return cli_error("--run-libc-freeres takes yes or no, not '%s'", optarg);
            o.freeres = strcmp(optarg, "yes") == 0;
            break;
        case 'P':
            if (parse_python_mode(optarg, &o.python) != 0)
                return cli_error("--python takes auto, on or off, not '%s'", optarg);
            break;
        case 'Y':
            if (strcmp(optarg, "malloc") != 0 && strcmp(optarg, "pymalloc") != 0)
                return cli_error("--python-allocator takes malloc or pymalloc, not '%s'", optarg);
            pymalloc = strcmp(optarg, "pymalloc") == 0;
            break;
        case 'A':
        case 'D':
        case 'E':
            if (add_hook(hooks, sizeof hooks, opt == 'A' ? "alloc" : opt == 'D' ? "free" : "realloc",
                         optarg, opt == 'E' ? 2 : 1) != 0)
                return 1;
            break;
        case 'd':
            if (parse_depth(optarg, &o.max_depth) != 0)
                return cli_error("--max-depth takes a number from 1 to %d, not '%s'",
                                 MT_MAX_DEPTH_LIMIT, optarg);
            break;
        default: {
            int g = opt >= 1000 ? gate_parse_option(opt, optarg, &gates) : 0;
            if (g < 0)
                return 1;
            if (g == 0)
                return cli_bad_option("run", argv[optind - 1], optopt);
        }
        }
    }
    /* --log-file: memtrace's stderr is the file from here on; the program
     * gets the stderr memtrace was given. */
    int program_stderr = -1;
    if (log_file) {
        int fd = open(log_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
            return cli_error("cannot write the log file %s: %s", log_file, strerror(errno));
        program_stderr = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
        dup2(fd, STDERR_FILENO);
        close(fd);
    }
    o.notices = !o.quiet;
    o.hooks = hooks[0] ? hooks : NULL;
    /* settings for the shim, which once read them from the program's
     * environment: they now travel in the reply to its HELLO */
    const char *ring_kib = getenv("MEMTRACE_RING_KIB");
    if (ring_kib)
        o.ring_kib = (uint32_t)strtoul(ring_kib, NULL, 10);
    const char *verify = getenv("MEMTRACE_UNWIND_VERIFY");
    o.unwind_verify = verify && strcmp(verify, "1") == 0;
    if (optind >= argc)
        return cli_error("run needs a program to run (memtrace run --help)");
    const char *given = argv[optind];
    char program[PATH_MAX];
    int e = resolve_program(given, program, sizeof program);
    if (e)
        return cli_error("cannot run '%s': %s", given, strerror(e));
    if (check_program(given, program, 0) != 0 || check_output(o.output_pattern, program) != 0)
        return 1;
    char shim[PATH_MAX];
    if (find_shim(shim, sizeof shim) != 0)
        return cli_error("cannot find libmemtrace.so next to this memtrace (set MEMTRACE_PRELOAD)");
    /* CPython's own allocator serves small objects from arenas it mmaps:
     * only with malloc underneath is every object seen. The shim answers
     * CPython's getenv("PYTHONMALLOC") with "malloc" (a PYTHONMALLOC the
     * user set is theirs), and the environment stays as it was. */
    o.python_malloc = !pymalloc && (o.python == MT_PYTHON_ON ||
                                    (o.python == MT_PYTHON_AUTO && program_is_python(program)));
    int listen_fd = make_socket(shim);
    if (listen_fd < 0)
        return 1;
    /* removes the run directory if run is killed before it can; the
     * descriptor is held open until run's end (or its detached
     * consumer's) */
    int janitor_fd = run_janitor_start(socket_dir);
    (void)janitor_fd;

    int errpipe[2];
    if (pipe2(errpipe, O_CLOEXEC) != 0) {
        remove_socket();
        return cli_error("cannot create a pipe: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0) {
        remove_socket();
        return cli_error("cannot fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(errpipe[0]);
        if (program_stderr >= 0)
            dup2(program_stderr, STDERR_FILENO);
        const char *old = getenv("LD_PRELOAD");
        char preload[2 * PATH_MAX];
        snprintf(preload, sizeof preload, "%s%s%s", shim_link, old && *old ? ":" : "",
                 old ? old : "");
        setenv("LD_PRELOAD", preload, 1);
        execv(program, argv + optind);
        int err = errno;
        ssize_t ignored = write(errpipe[1], &err, sizeof err);
        (void)ignored;
        _exit(127);
    }
    child_pidfd = pidfd_open(pid, 0);
    child_pid = pid;
    close(errpipe[1]);
    if (program_stderr >= 0) /* the program's now: a background copy must not hold it */
        close(program_stderr);
    int exec_errno = 0;
    if (read(errpipe[0], &exec_errno, sizeof exec_errno) == (ssize_t)sizeof exec_errno) {
        waitpid(pid, NULL, 0);
        remove_socket();
        return cli_error("cannot run '%s': %s", given, strerror(exec_errno));
    }
    close(errpipe[0]);
    forward_signals();
    signal(SIGPIPE, SIG_IGN);
    o.direct_child = pid;
    o.detach = 1;
    int had_error = 0;
    int status = consumer_serve(&o, listen_fd, &had_error);
    if (consumer_role() == CONSUMER_DETACHED) { /* the copy that served the rest */
        remove_socket();
        return had_error;
    }
    child_pid = 0;
    if (consumer_role() == CONSUMER_ATTACHED) {
        close(listen_fd);
        remove_socket();
    } else if (consumer_pending_line()) { /* the detached copy removes it */
        fprintf(stderr, "%s\n", consumer_pending_line());
    }
    int program_status = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
    if (had_error && program_status == 0)
        program_status = 1; /* a dump could not be written: said on stderr */
    if (gate_options_any_gate(&gates) || gates.junit || gates.sarif || gates.gen_suppressions ||
        gates.nsuppressions) {
        int ndumps;
        char *const *dumps = consumer_dumps(&ndumps);
        int verdict = gates_check_dumps(&gates, dumps, ndumps);
        if (verdict != 0)
            return verdict < 0 ? 1 : verdict;
        size_t refused = consumer_refusals_unrecorded();
        if (refused && !gates.accept_unchecked) {
            fprintf(stderr, "memtrace: the gates fail: %zu process%s could not be traced "
                            "(open-file limit, said above)\n", refused, refused == 1 ? "" : "es");
            return gates.error_exitcode;
        }
    }
    return program_status;
}
