# The reachability scan at the end of a process (issue 17, points 1-4).
# Point 1: the leak as the very last heap call is definite, as memcheck says.
foreach(function malloc calloc realloc aligned_alloc new)
  memtrace_e2e(last_leak.${function} test_last_leak.py LABELS valgrind TIMEOUT 300
               ARGS --function ${function})
endforeach()
