# The field test (issue 17): memtrace against valgrind memcheck on real
# programs from Debian's packages and toolchains, every process compared
# (tests/field/test_field.py). One CTest test per program, labelled `field`
# (and `valgrind`), each with its own timeout; scripts/test.sh runs them once,
# in the plain build's pass (`-LE field` in the ASan pass).
set(MT_FIELD_DIR ${PROJECT_SOURCE_DIR}/tests/field)
foreach(case git_status git_log sqlite3 perl python3 gzip xz zstd sort make gxx cmake
             rust go_cgo bash)
  add_test(NAME field.${case}
           COMMAND ${MT_PYTHON} -B ${MT_FIELD_DIR}/test_field.py ${MT_COMMON_ARGS}
                   --workdir ${MT_WORK}/field.${case} --case ${case}
                   --sources ${MT_FIELD_DIR}/programs)
  set_tests_properties(field.${case} PROPERTIES
                       ENVIRONMENT MEMTRACE_CACHE_DIR=${MT_WORK}/debug-cache
                       TIMEOUT 300
                       LABELS "field;valgrind")
endforeach()
# python3 -c with multiprocessing (fork children that leave by os._exit): its
# differences are explained by two facts in test_field.py (SHIM_LIBS: the
# shim's own liblzma; STALE_REUSE: glibc reuses freed addresses at once,
# valgrind does not), each with its measured bound; the frees that valgrind's
# freeres made at _exit are made by memtrace too since issue 17's forks work.
add_test(NAME field.python3_multiprocessing
         COMMAND ${MT_PYTHON} -B ${MT_FIELD_DIR}/test_field.py ${MT_COMMON_ARGS}
                 --workdir ${MT_WORK}/field.python3_multiprocessing
                 --case python3_multiprocessing --sources ${MT_FIELD_DIR}/programs)
set_tests_properties(field.python3_multiprocessing PROPERTIES
                     ENVIRONMENT MEMTRACE_CACHE_DIR=${MT_WORK}/debug-cache
                     TIMEOUT 300 LABELS "field;valgrind")

# The transparency comparison (issue 18): programs run bare and under
# memtrace give the same stdout, stderr, files, fds and environment (but
# LD_PRELOAD).
foreach(case probe_report probe_daemon probe_closeall sh python3 perl gxx git sqlite3)
  memtrace_e2e(transparency_compare.${case} test_transparency_compare.py TIMEOUT 120
               ARGS --case ${case})
endforeach()
