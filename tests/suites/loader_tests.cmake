# The loader tests (issue 18 point 1, issue 17 point 7).

# dlopen, dlmopen and dlsym relative to their caller.
foreach(case runpath_bare rpath_bare origin lib ld_path newlm next dlerror)
  memtrace_e2e(dlcaller.${case} test_dlcaller.py LABELS valgrind ARGS --case ${case})
endforeach()

# Allocation paths that bypass interposition, counted as memcheck does.
foreach(case libc_direct deepbind_now deepbind_lazy deepbind_cxx deepbind_cxx_lazy
             deepbind_ctor_window)
  memtrace_e2e(bypass.${case} test_bypass.py LABELS valgrind ARGS --case ${case})
endforeach()
