# A gate never passes what memtrace could not check (issue 17, point 5):
# one case per way a process goes unchecked, each with `check` and `run`'s
# gates, --accept-unchecked, the JSON report, JUnit and SARIF.
foreach(case sigkill raw_exit truncated scan_no_memory scan_not_served leak_check_summary
             fork_child malformed_ring exec nothing_in_use)
  memtrace_e2e(unchecked.${case} test_unchecked.py TIMEOUT 180
               ARGS --case ${case} --npm-dir ${CMAKE_CURRENT_BINARY_DIR}/ci-reports-npm)
endforeach()
