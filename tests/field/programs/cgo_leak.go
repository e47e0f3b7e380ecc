// The field test's Go program (tests/field/test_field.py, case go_cgo): Go's
// own heap is not malloc (neither tool sees it); the blocks its C code gets
// from C.malloc are. 27 blocks of 1000+i bytes are leaked by the C side
// (definitely lost), 8 blocks of 256 bytes are kept in a C global (still
// reachable), 4 are freed. Go's runtime ends the process with a raw
// exit_group, not libc's exit.
package main

/*
#include <stdlib.h>
#include <string.h>

static void *kept[8];

static void c_leak(int n)
{
    for (int i = 0; i < n; i++) {
        char *p = malloc(1000 + i);
        memset(p, i, 16);
    }
}

static void c_keep(void)
{
    for (int i = 0; i < 8; i++)
        kept[i] = malloc(256);
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

func main() {
	C.c_leak(27)
	C.c_keep()
	for i := 0; i < 4; i++ {
		p := C.malloc(C.size_t(100 * (i + 1)))
		C.free(unsafe.Pointer(p))
	}
	words := make([]string, 0)
	for i := 0; i < 1000; i++ {
		words = append(words, fmt.Sprint(i))
	}
	fmt.Println("go words", len(words))
}
