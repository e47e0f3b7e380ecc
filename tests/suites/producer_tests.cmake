# The shim's recording survives whatever the program does to itself, and
# never loses events without saying so (issues 17 and 18).
foreach(case cancel_deferred cancel_async longjmp clone_fn clone_raw exec_threads)
  memtrace_e2e(resilience.${case} test_resilience.py TIMEOUT 300 LABELS valgrind
               ARGS --case ${case})
endforeach()
