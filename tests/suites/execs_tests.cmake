# An exec'd image memtrace cannot trace fails the gates, saying so (issue 17
# point 5).
foreach(case static_sh static failed dynamic seccomp nofile noenv setgid background spawn)
  memtrace_e2e(execs.${case} test_execs.py TIMEOUT 120 ARGS --case ${case})
endforeach()
