// A Go program with cgo whose threads are busy when it ends, for
// tests/e2e/test_golang.py (case busy): 3 goroutines allocate and free in C
// without end, 3 spin in Go, while main leaks 4 blocks from C (5,000..5,003
// bytes, 20,006 in all) and then returns, or panics (status 2, from Go's
// runtime on the thread's system stack). The scan must run with threads in
// C, in Go and in Go's scheduler, and classify each of the 4 blocks: definite,
// or still reachable when a goroutine that Go preempted holds a copy of the
// address in the registers it saved (a live copy, that memcheck would count
// too: the thread's registers kept it from the C call).
//
// usage: gobusy return|panic
package main

/*
#include <stdlib.h>
#include <string.h>

static void churn(int i)
{
	void *p = malloc(64 + i % 7);
	memset(p, 1, 8);
	free(p);
}

static void leak(int i)
{
	char *volatile p = malloc(5000 + i);
	memset(p, 1, 8);
}
*/
import "C"

import (
	"os"
	"time"
)

var sink int

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "return" && os.Args[1] != "panic") {
		os.Stderr.WriteString("usage: gobusy return|panic\n")
		os.Exit(64)
	}
	for i := 0; i < 3; i++ {
		go func(i int) {
			for {
				C.churn(C.int(i))
			}
		}(i)
		go func() {
			x := 0
			for {
				x++
				sink = x
			}
		}()
	}
	for i := 0; i < 4; i++ {
		C.leak(C.int(i))
	}
	time.Sleep(50 * time.Millisecond)
	if os.Args[1] == "panic" {
		panic("boom")
	}
}
