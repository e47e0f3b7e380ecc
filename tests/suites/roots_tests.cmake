# Roots in mappings the kernel merged with the heap's (issue 17: classified
# exactly as memcheck classifies).
memtrace_e2e(roots.merged_mapping test_roots.py TIMEOUT 180 LABELS valgrind)
