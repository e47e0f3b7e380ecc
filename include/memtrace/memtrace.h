/* memtrace client API: tell memtrace about the blocks of an allocator of
 * your own, and put named marks on the timeline. Header only; include it
 * and call the macros, nothing to link.
 *
 *   MEMTRACE_ALLOC(ptr, size)        a block of size bytes now lives at ptr
 *   MEMTRACE_FREE(ptr)               the block at ptr is gone
 *   MEMTRACE_REALLOC(old, ptr, size) old is gone, a block of size at ptr
 *                                    (either may be NULL)
 *   MEMTRACE_MARK(label)             a named point in time: `memtrace
 *                                    timeline` draws it, `memtrace report
 *                                    --between A,B` reports what was
 *                                    allocated between two marks
 *
 * Annotated blocks are counted as malloc's are (SPEC section 4), with the
 * stack of the macro's caller, and reported with the allocator "client"
 * (`memtrace report --allocator client`). Annotate blocks that malloc does
 * not already trace (carved from a region of your own), or they are counted
 * twice.
 *
 * Cost when the program does not run under memtrace: the functions behind
 * the macros are weak references, resolved by the dynamic loader only when
 * libmemtrace.so is preloaded; otherwise each macro is one load and one
 * predictable branch, and nothing is called. On x86-64 the reference is
 * made through the GOT explicitly, so that it also works in executables
 * linked without -pie (where the linker would resolve an undefined weak
 * reference to 0 for good). Define MEMTRACE_DISABLE to compile the macros
 * away entirely.
 */
#ifndef MEMTRACE_MEMTRACE_H
#define MEMTRACE_MEMTRACE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MEMTRACE_DISABLE) || !defined(__GNUC__)

#define MEMTRACE_ALLOC(ptr, size) ((void)(ptr), (void)(size))
#define MEMTRACE_FREE(ptr) ((void)(ptr))
#define MEMTRACE_REALLOC(old, ptr, size) ((void)(old), (void)(ptr), (void)(size))
#define MEMTRACE_MARK(label) ((void)(label))

#else

typedef void (*memtrace_alloc_fn_)(const void *, size_t);
typedef void (*memtrace_free_fn_)(const void *);
typedef void (*memtrace_realloc_fn_)(const void *, const void *, size_t);
typedef void (*memtrace_mark_fn_)(const char *);

#if defined(__x86_64__)
__asm__(".weak memtrace_client_alloc\n"
        ".weak memtrace_client_free\n"
        ".weak memtrace_client_realloc\n"
        ".weak memtrace_client_mark\n");
#define MEMTRACE_GOT_(name, type)                                                                  \
    static inline type memtrace_get_##name##_(void)                                                \
    {                                                                                              \
        type f;                                                                                    \
        __asm__("movq " #name "@GOTPCREL(%%rip), %0" : "=r"(f));                                   \
        return f;                                                                                  \
    }
#else
#define MEMTRACE_GOT_(name, type)                                                                  \
    extern void name() __attribute__((weak));                                                      \
    static inline type memtrace_get_##name##_(void) { return (type)name; }
#endif

MEMTRACE_GOT_(memtrace_client_alloc, memtrace_alloc_fn_)
MEMTRACE_GOT_(memtrace_client_free, memtrace_free_fn_)
MEMTRACE_GOT_(memtrace_client_realloc, memtrace_realloc_fn_)
MEMTRACE_GOT_(memtrace_client_mark, memtrace_mark_fn_)

#define MEMTRACE_CALL_(name, args)                                                                 \
    do {                                                                                           \
        __typeof__(memtrace_get_##name##_()) memtrace_f_ = memtrace_get_##name##_();               \
        if (__builtin_expect(memtrace_f_ != 0, 0))                                                 \
            memtrace_f_ args;                                                                      \
    } while (0)

#define MEMTRACE_ALLOC(ptr, size) MEMTRACE_CALL_(memtrace_client_alloc, ((ptr), (size)))
#define MEMTRACE_FREE(ptr) MEMTRACE_CALL_(memtrace_client_free, ((ptr)))
#define MEMTRACE_REALLOC(old, ptr, size)                                                           \
    MEMTRACE_CALL_(memtrace_client_realloc, ((old), (ptr), (size)))
#define MEMTRACE_MARK(label) MEMTRACE_CALL_(memtrace_client_mark, ((label)))

#endif

#ifdef __cplusplus
}
#endif

#endif
