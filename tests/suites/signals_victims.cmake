# Victims of the fatal-signal cases of issue 17 point 3 (test_signals2.py).
memtrace_victim(sig_fatal SOURCES ${P}/sig_fatal.c OPTIONS -Wno-deprecated-declarations
                LINK Threads::Threads)
