# Issue 17 point 3, the cases the first fatal-signal handler missed: a stack
# overflow (main thread, a known thread, a thread never seen, the program's
# own alternate stack), a fault or a kill with SIGSEGV blocked (by the mask,
# in a thread, in a handler),
# handlers installed through sigset, ssignal,
# __sigaction and sigvec.
foreach(case overflow thread_overflow early_overflow blocked_fault blocked_kill
             blocked_thread handler_mask xsi altstack sigset ssignal sigaction2 sigvec)
  memtrace_e2e(signals2.${case} test_signals2.py LABELS valgrind ARGS --case ${case})
endforeach()
