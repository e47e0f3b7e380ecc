# Rings however the program limits itself (issue 17 point 6).
foreach(case nofile_soft nofile nofile_overflow seccomp seccomp_two)
  memtrace_e2e(rings.${case} test_rings.py TIMEOUT 300 LABELS valgrind ARGS --case ${case})
endforeach()
