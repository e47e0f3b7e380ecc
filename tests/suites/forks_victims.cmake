# Victims of the forks subject (tests/e2e/test_forks.py): children that end
# by _exit, and a vfork child that does.
memtrace_victim(fork_underscore_exit SOURCES ${P}/fork_underscore_exit.c)
