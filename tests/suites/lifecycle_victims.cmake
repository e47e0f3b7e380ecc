# `memtrace run`'s own life cycle (issue 18, points 7-10): daemons, pid
# namespaces, many children under a low fd limit, signals.
memtrace_victim(lifecycle SOURCES ${P}/lifecycle.c)
