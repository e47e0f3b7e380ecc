/* Why the shim corrects one allocation size: glibc gives every new thread a
 * DTV (dynamic thread vector) of one 16-byte entry per module that has
 * thread-local storage, allocated with calloc from inside ld.so. The shim
 * itself and libunwind (loaded only because of it) are such modules, so
 * under memtrace each thread's DTV is 16 bytes longer per module than in a
 * plain run, and totals would differ from valgrind's by that much per
 * thread. The shim records the size the program would have allocated
 * without it. Nothing else in glibc's allocations depends on the number of
 * TLS modules.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <link.h>
#include <string.h>

#include "shim.h"

static uintptr_t loader_lo, loader_hi; /* ld.so's segments */
static size_t extra_entries;           /* TLS modules that are here because of us */

struct scan {
    uintptr_t own_base;
    const char *own_name;
    int unwind_has_tls;
    int unwind_needed_by_others;
};

static int has_tls(const struct dl_phdr_info *info)
{
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_TLS && info->dlpi_phdr[i].p_memsz)
            return 1;
    return 0;
}

static int is_libunwind(const char *name)
{
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    return strncmp(base, "libunwind.so", 12) == 0;
}

/* 1 if the module lists libunwind among its DT_NEEDED. */
static int needs_libunwind(const struct dl_phdr_info *info)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        if (info->dlpi_phdr[i].p_type != PT_DYNAMIC)
            continue;
        const ElfW(Dyn) *dyn = (const void *)(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
        const char *strtab = NULL;
        for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++)
            if (d->d_tag == DT_STRTAB)
                strtab = (const char *)d->d_un.d_ptr; /* relocated by the loader */
        if (!strtab)
            return 0;
        for (const ElfW(Dyn) *d = dyn; d->d_tag != DT_NULL; d++)
            if (d->d_tag == DT_NEEDED && is_libunwind(strtab + d->d_un.d_val))
                return 1;
    }
    return 0;
}

static int visit(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct scan *s = data;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (strstr(name, "/ld-linux") || strstr(name, "/ld64")) {
        for (int i = 0; i < info->dlpi_phnum; i++) {
            const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
            if (ph->p_type != PT_LOAD)
                continue;
            uintptr_t start = info->dlpi_addr + ph->p_vaddr;
            if (!loader_lo || start < loader_lo)
                loader_lo = start;
            if (start + ph->p_memsz > loader_hi)
                loader_hi = start + ph->p_memsz;
        }
    }
    if (info->dlpi_addr == s->own_base) {
        extra_entries += has_tls(info);
        return 0;
    }
    if (is_libunwind(name))
        s->unwind_has_tls = has_tls(info);
    else if (needs_libunwind(info))
        s->unwind_needed_by_others = 1;
    return 0;
}

void mt_tls_compensation_init(uintptr_t own_base)
{
    struct scan s = {.own_base = own_base};
    dl_iterate_phdr(visit, &s);
    if (s.unwind_has_tls && !s.unwind_needed_by_others)
        extra_entries++;
}

size_t mt_tls_adjust_calloc(const void *caller, size_t n, size_t size)
{
    uintptr_t c = (uintptr_t)caller;
    if (size == 16 && c >= loader_lo && c < loader_hi && n > extra_entries)
        return (n - extra_entries) * size;
    return n * size;
}
