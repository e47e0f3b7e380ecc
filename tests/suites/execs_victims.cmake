# Victims of the exec tests (tests/e2e/test_execs.py): images exec'd by a
# traced process that memtrace cannot trace (issue 17 point 5).
memtrace_victim(execs_static SOURCES ${P}/execs_leak.c LINK -static)
memtrace_victim(execs_dynamic SOURCES ${P}/execs_leak.c)
memtrace_victim(execs_runner SOURCES ${P}/execs_runner.c)
