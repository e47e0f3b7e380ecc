# Processes that end by _exit, and children that share their parent's memory
# (issue 17; tests/e2e/test_forks.py, victim fork_underscore_exit).
foreach(case freeres vfork vfork_ok)
  memtrace_e2e(forks.${case} test_forks.py LABELS valgrind TIMEOUT 300 ARGS --case ${case})
endforeach()
# 20 fork children of 8,000 blocks each that end by _exit(1), 10 runs; the
# same with children that close every descriptor first
foreach(case many many_closefds)
  memtrace_e2e(forks.${case} test_forks.py TIMEOUT 900 ARGS --case ${case})
endforeach()
# python3 children that leave by os._exit (multiprocessing's way) are scanned
memtrace_e2e(forks.python_os_exit test_forks.py TIMEOUT 300 ARGS --case python_os_exit)
