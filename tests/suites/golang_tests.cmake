# A Go program with cgo is scanned at Go's raw exit_group (issue 17 point 4):
# tests/e2e/test_golang.py builds tests/programs/goleak.go with `go build`
# (cgo; its cache under the work directories) and checks the leak kinds by
# the program's own construction, which memcheck confirms (return, exit3:
# valgrind runs it with GODEBUG=cpu.rdtscp=off).
foreach(case return exit3 stripped busy)
  if(case MATCHES "^(return|exit3)$")
    set(labels LABELS valgrind)
  else()
    set(labels)
  endif()
  memtrace_e2e(golang.${case} test_golang.py TIMEOUT 300 ${labels}
               ARGS --source ${CMAKE_CURRENT_SOURCE_DIR}/programs/goleak.go
                    --busy-source ${CMAKE_CURRENT_SOURCE_DIR}/programs/gobusy.go --case ${case})
endforeach()
