# `memtrace run`'s own life cycle (issue 18, points 7-10): daemons, pid
# namespaces, many children under a low fd limit, signals.
memtrace_victim(lifecycle SOURCES ${P}/lifecycle.c)
# A preloaded library that holds every fork child half a second before the
# shim's fork handler runs (lifecycle.daemon_late).
add_library(mt_slow_child MODULE ${P}/slow_child.c)
set_target_properties(mt_slow_child PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${MT_PROGRAMS_DIR})
list(APPEND MT_VICTIMS mt_slow_child)
