/* gate_child.c: the indirect leak of gate_leaks, in a source file of its
 * own so that a suppression can name the file. */
#ifndef GATE_CHILD_H
#define GATE_CHILD_H

#include <stddef.h>

extern int make_child_line;
void *make_child(size_t n);

#endif
