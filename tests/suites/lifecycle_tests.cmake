# `memtrace run`'s own life cycle (issue 18, points 7-10).
memtrace_e2e(lifecycle.daemon test_lifecycle.py TIMEOUT 120 ARGS --case daemon)
memtrace_e2e(lifecycle.pidns test_lifecycle.py ARGS --case pidns)
set_tests_properties(e2e.lifecycle.pidns PROPERTIES SKIP_RETURN_CODE 77)
memtrace_e2e(lifecycle.fdlimit test_lifecycle.py TIMEOUT 300 ARGS --case fdlimit)
memtrace_e2e(lifecycle.fdlimit_hard test_lifecycle.py TIMEOUT 300 ARGS --case fdlimit_hard)
foreach(case term int hup kill)
  memtrace_e2e(lifecycle.${case} test_lifecycle.py ARGS --case ${case})
endforeach()
