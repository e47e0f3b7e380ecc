# Victims of the ring tests (tests/e2e/test_rings.py): programs that take
# away what a new ring needs (descriptors, syscalls), then start threads
# and children that allocate.
memtrace_victim(ring_nofile SOURCES ${P}/ring_nofile.c LINK Threads::Threads)
memtrace_victim(ring_seccomp SOURCES ${P}/ring_seccomp.c LINK Threads::Threads)
