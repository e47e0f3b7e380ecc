# Issue 18.2-18.4 (tests/e2e/test_invisible.py): no descriptor, message or
# variable of memtrace's is seen by the traced program.
foreach(case fds_daemon first_open close_leak dup2_leak notices environment)
  memtrace_e2e(invisible.${case} test_invisible.py ARGS --case ${case})
endforeach()
memtrace_e2e(invisible.real_env test_invisible.py TIMEOUT 400 LABELS valgrind
             ARGS --case real_env)
