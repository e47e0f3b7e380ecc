# Issue 18 points 11-13: the programs of the hostile.* tests.
memtrace_victim(hostile_victim SOURCES ${P}/hostile_victim.c)
