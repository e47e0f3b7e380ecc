# A Go program with cgo is scanned at Go's raw exit_group (issue 17 point 4):
# tests/e2e/test_golang.py builds tests/programs/goleak.go with `go build`
# (cgo; its cache under the work directories) and checks the leak kinds by
# the program's own construction (valgrind 3.19 cannot run it as it is).
foreach(case return exit3 stripped busy)
  memtrace_e2e(golang.${case} test_golang.py TIMEOUT 300
               ARGS --source ${CMAKE_CURRENT_SOURCE_DIR}/programs/goleak.go
                    --busy-source ${CMAKE_CURRENT_SOURCE_DIR}/programs/gobusy.go --case ${case})
endforeach()
