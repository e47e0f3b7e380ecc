/* Separate debug files with their DWARF sections inflated, kept by build id
 * (see debug_cache.c). */
#ifndef MEMTRACE_DEBUG_CACHE_H
#define MEMTRACE_DEBUG_CACHE_H

#include <stddef.h>

/* 1 when fd is a regular ELF file whose GNU build id is (id, len) (any
 * build id, or none, when len is 0). */
int elf_fd_matches(int fd, const unsigned char *id, size_t len);

/* The directory of the cache: $MEMTRACE_CACHE_DIR (empty: no cache), else
 * $XDG_CACHE_HOME/memtrace, else $HOME/.cache/memtrace. malloc'd, or NULL
 * for none. */
char *debug_cache_dir(void);

/* The copy in dir of the debug file of build id (id, len): an open
 * descriptor, its path in *name (malloc'd); -1 when there is none. */
int debug_cache_open(const char *dir, const unsigned char *id, size_t len, char **name);

/* Makes the copy of debug_file (of build id (id, len)) in dir, if it has
 * compressed sections and no copy is there yet; silently does nothing on
 * failure. */
void debug_cache_add(const char *dir, const char *debug_file, const unsigned char *id, size_t len);

#endif
