/* The leak kinds' names, in enum mt_leak_kind's order. */
#ifndef MEMTRACE_LEAK_KINDS_H
#define MEMTRACE_LEAK_KINDS_H

#include "memtrace/format.h"

extern const char *const leak_kind_names[MT_KIND_COUNT];
/* "definite,indirect", "all", ...: the mask of 1 << kind; 0, or -1 for a
 * name it does not know or an empty list. */
int parse_leak_kinds(const char *list, unsigned *mask);

#endif
