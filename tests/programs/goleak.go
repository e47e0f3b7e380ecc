// A Go program with cgo for tests/e2e/test_golang.py (issue 17 point 4): Go's
// runtime ends it with a raw exit_group (runtime.exit), never libc's exit.
// Go's own heap is not malloc; the blocks its C code gets from malloc are,
// and it knows what it leaked (memcheck says the same, when valgrind 3.19
// can run it: with GODEBUG=cpu.rdtscp=off):
//
//	definitely lost  24,183 bytes in 13 blocks: 3 dropped by Go (700..702 bytes,
//	                 C.malloc), 5 dropped by C (2,000..2,004), 4 dropped by
//	                 goroutines on other threads (3,000..3,003), a chain's head (64)
//	indirectly lost  144 bytes in 3 blocks: the chain's 3 nodes of 48 bytes
//	still reachable  1,555 bytes in 4 blocks: 2 of 300 in a C global, 400 in a
//	                 Go global, 555 held by a live C frame of a thread that
//	                 sleeps in C
//	possibly lost    Go's threads' dtv blocks (288 bytes each, as memcheck says)
//
// usage: goleak return|exit3   (return from main, or os.Exit(3))
package main

/*
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *kept_c[2];            // a C global: still reachable
volatile int held_ready;

struct node {
	struct node *next;
	char pad[40];
};

static void c_leak(int n)  // definitely lost: dropped in C
{
	for (int i = 0; i < n; i++) {
		char *volatile p = malloc(2000 + i);
		memset(p, i, 16);
	}
}

static void c_leak_one(int i)
{
	char *volatile p = malloc(3000 + i);
	memset(p, i, 16);
}

static void c_keep(void)
{
	kept_c[0] = malloc(300);
	kept_c[1] = malloc(300);
}

struct node *volatile chain_sink;

static void c_chain(void)  // the head definitely lost, its 3 nodes indirectly
{
	struct node *head = malloc(64), *n = head;
	for (int i = 0; i < 3; i++) {
		n->next = malloc(sizeof *n);
		n = n->next;
	}
	n->next = NULL;
	chain_sink = head; // the compiler may not drop the chain
	chain_sink = NULL;
}

static void c_hold_forever(void)  // a live C frame: its block is reachable
{
	void *volatile held = malloc(555);
	memset(held, 1, 8);
	held_ready = 1;
	for (;;)
		pause();
}
*/
import "C"

import (
	"os"
	"time"
	"unsafe"
)

var keptGo unsafe.Pointer // a Go global: still reachable

//go:noinline
func goLeak() {
	for i := 0; i < 3; i++ {
		p := C.malloc(C.size_t(700 + i))
		C.memset(p, 7, 8)
	}
}

func worker(i int, done chan<- bool) {
	C.c_leak_one(C.int(i))
	done <- true
	select {}
}

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "return" && os.Args[1] != "exit3") {
		os.Stderr.WriteString("usage: goleak return|exit3\n")
		os.Exit(2)
	}
	goLeak()
	C.c_leak(5)
	C.c_keep()
	C.c_chain()
	keptGo = C.malloc(400)
	done := make(chan bool)
	for i := 0; i < 4; i++ {
		go worker(i, done)
	}
	for i := 0; i < 4; i++ {
		<-done
	}
	go C.c_hold_forever()
	for C.held_ready == 0 {
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < 5; i++ { // freed: not in use at exit
		C.free(C.malloc(C.size_t(100 * (i + 1))))
	}
	if os.Args[1] == "exit3" {
		os.Exit(3)
	}
}
