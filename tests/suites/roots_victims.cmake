# Victims of tests/e2e/test_roots.py: what the reachability scan takes as roots.
memtrace_victim(merged_mapping SOURCES ${P}/merged_mapping.c)
