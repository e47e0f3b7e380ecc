# Victims of tests/e2e/test_nofd.py: a program exec'd with almost no
# descriptor free (issue 17 points 5-6).
memtrace_victim(nofd_limit SOURCES ${P}/nofd_limit.c)
memtrace_victim(nofd_leak SOURCES ${P}/nofd_leak.c)
