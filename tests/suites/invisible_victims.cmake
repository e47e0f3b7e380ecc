# Issue 18.2-18.4: the program sees nothing of memtrace (its descriptors,
# messages, environment).
memtrace_victim(fd_daemon SOURCES ${P}/fd_daemon.c LINK Threads::Threads)
