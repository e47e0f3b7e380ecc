# Victims of the recording's robustness tests (tests/e2e/test_resilience.py):
# programs that cancel, longjmp out of, clone, limit and exec themselves
# while they allocate.
# cancel_loop links libgcc_s: glibc's first cancellation would dlopen it,
# and the loader's own allocations in dlopen are not what this test counts.
memtrace_victim(cancel_loop SOURCES ${P}/cancel_loop.c
                LINK Threads::Threads -Wl,--no-as-needed gcc_s -Wl,--as-needed)
memtrace_victim(longjmp_alloc SOURCES ${P}/longjmp_alloc.c)
memtrace_victim(clone_child SOURCES ${P}/clone_child.c)
memtrace_victim(exec_threads SOURCES ${P}/exec_threads.c LINK Threads::Threads)
