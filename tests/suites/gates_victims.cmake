# What memtrace could not check (issue 17, point 5): a victim that ends by
# SIGKILL, by a raw exit_group, by exec, or runs out of address space.
memtrace_victim(unchecked SOURCES ${P}/unchecked.c)
