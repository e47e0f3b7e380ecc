# No silent pass when a process has (almost) no descriptor (issue 17 points 5-6).
memtrace_e2e(nofd.exec_limit test_nofd.py TIMEOUT 300 LABELS valgrind)
