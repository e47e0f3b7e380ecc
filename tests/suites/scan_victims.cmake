# Victims of the scan subject (test_last_leak.py, test_fork_scan.py,
# test_fatal_signals.py).
memtrace_victim(last_leak SOURCES ${P}/last_leak.c LINK Threads::Threads)
memtrace_victim(last_leak_cxx SOURCES ${P}/last_leak_cxx.cc LINK Threads::Threads)
memtrace_victim(fork_exit SOURCES ${P}/fork_exit.c)
memtrace_victim(fatal_signal SOURCES ${P}/fatal_signal.c LINK Threads::Threads)
