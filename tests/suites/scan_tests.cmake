# The reachability scan at the end of a process (issue 17, points 1-4).
# Point 1: the leak as the very last heap call is definite, as memcheck says.
foreach(function malloc calloc realloc aligned_alloc new)
  memtrace_e2e(last_leak.${function} test_last_leak.py LABELS valgrind TIMEOUT 300
               ARGS --function ${function})
endforeach()
# Point 2: 500 fork children that exit at once, 10 runs: every one scanned.
memtrace_e2e(fork_scan test_fork_scan.py TIMEOUT 1200)
# Point 3: death by a fatal signal is scanned, and ends as it would bare.
foreach(case abort segv term query handler twofaults)
  memtrace_e2e(fatal_signals.${case} test_fatal_signals.py LABELS valgrind
               ARGS --case ${case})
endforeach()
