/* Which modules (executable, shared objects, vdso) the consumer has been told
 * about, and the LOAD/UNLOAD records that keep it in step with the loader.
 *
 * The loader's dlpi_adds/dlpi_subs counters say cheaply whether anything was
 * loaded or unloaded since the last look; only then are the modules walked.
 * Called on every new stack (so a stack never points into a module the dump
 * has not announced) and after dlclose; a change seen here also leaves work
 * for dl_track.c (mt_dl_note_change). All of it under one
 * spinlock; the list lives in mmap'd memory.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <link.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "loader.h"
#include "shim.h"

struct module {
    uint64_t bias;
    uint32_t id;
    uint32_t seen;
    char name[240]; /* dlpi_name, cut if longer: only used to match */
};

#define MAX_MODULES (1u << 14)

static struct module *modules; /* mmap'd, MAX_MODULES entries */
static uint32_t module_count;
static uint32_t next_module_id = 1;
static unsigned long long last_adds = ~0ull, last_subs = ~0ull;
static int modules_lock_word;

void mt_modules_lock(void) { mt_spin_lock(&modules_lock_word); }
void mt_modules_unlock(void) { mt_spin_unlock(&modules_lock_word); }

struct range_search {
    uintptr_t address, lo, hi;
};

static int find_range(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct range_search *rs = data;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        lo = start < lo ? start : lo;
        hi = start + ph->p_memsz > hi ? start + ph->p_memsz : hi;
    }
    if (rs->address < lo || rs->address >= hi)
        return 0;
    rs->lo = lo;
    rs->hi = hi;
    return 1;
}

int mt_module_range(uintptr_t address, uintptr_t *lo, uintptr_t *hi)
{
    struct range_search rs = {address, 0, 0};
    if (!dl_iterate_phdr(find_range, &rs))
        return -1;
    *lo = rs.lo;
    *hi = rs.hi;
    return 0;
}

void mt_modules_forget_announced(void)
{
    module_count = 0;
    next_module_id = 1;
    last_adds = last_subs = ~0ull;
}

static int read_counters(struct dl_phdr_info *info, size_t size, void *data)
{
    unsigned long long *c = data;
    if (size < offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs) {
        c[0] = c[1] = ~1ull; /* too old a loader to tell: always walk */
        return 1;
    }
    c[0] = info->dlpi_adds;
    c[1] = info->dlpi_subs;
    return 1;
}

/* Finds the GNU build id among the object's notes; returns its length. */
static uint32_t find_build_id(struct dl_phdr_info *info, const unsigned char **out)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
        const unsigned char *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const void *)p;
            size_t name_size = (nh->n_namesz + 3) & ~3u;
            size_t desc_size = (nh->n_descsz + 3) & ~3u;
            const unsigned char *name = p + sizeof *nh;
            const unsigned char *desc = name + name_size;
            if (desc + desc_size > end)
                break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
                nh->n_descsz <= 64) {
                *out = desc;
                return nh->n_descsz;
            }
            p = desc + desc_size;
        }
    }
    return 0;
}

struct sync_state {
    struct mt_ring *ring;
    uint64_t *ts;
    int changed;
};

static void stamp_once(struct sync_state *st)
{
    if (!st->changed) {
        *st->ts = mt_ring_stamp(st->ring);
        st->changed = 1;
    }
}

static void announce(struct sync_state *st, struct dl_phdr_info *info, uint32_t id)
{
    static char exe[4096];
    const char *path = info->dlpi_name;
    if (!path || !*path) { /* the main program */
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        exe[n > 0 ? n : 0] = '\0';
        path = exe;
    }
    const unsigned char *build_id = NULL;
    uint32_t build_id_len = find_build_id(info, &build_id);
    uint32_t nseg = 0;
    for (int i = 0; i < info->dlpi_phnum; i++)
        nseg += info->dlpi_phdr[i].p_type == PT_LOAD;
    uint32_t path_len = (uint32_t)strnlen(path, 4096);
    size_t len = sizeof(struct mt_ring_module_load) + nseg * sizeof(struct mt_ring_segment) +
                 path_len + build_id_len;
    len = (len + 7) & ~(size_t)7;
    stamp_once(st);
    struct mt_ring_module_load *rec = mt_ring_reserve(st->ring, (uint32_t)len);
    if (!rec)
        return;
    rec->hdr = (struct mt_ring_record){MT_RING_MODULE_LOAD, (uint32_t)len, *st->ts};
    rec->module_id = id;
    rec->nsegments = nseg;
    rec->load_bias = info->dlpi_addr;
    rec->path_len = path_len;
    rec->build_id_len = build_id_len;
    struct mt_ring_segment *seg = (void *)(rec + 1);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD)
            *seg++ = (struct mt_ring_segment){ph->p_vaddr, ph->p_memsz, (ph->p_flags & PF_X) ? 1 : 0};
    }
    char *tail = (char *)seg;
    memcpy(tail, path, path_len);
    if (build_id_len)
        memcpy(tail + path_len, build_id, build_id_len);
    mt_ring_commit(st->ring, (uint32_t)len);
}

static int visit_module(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct sync_state *st = data;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    for (uint32_t i = 0; i < module_count; i++) {
        struct module *m = &modules[i];
        if (m->bias == info->dlpi_addr && strncmp(m->name, name, sizeof m->name - 1) == 0) {
            m->seen = 1;
            return 0;
        }
    }
    if (module_count == MAX_MODULES)
        return 0;
    struct module *m = &modules[module_count++];
    m->bias = info->dlpi_addr;
    m->id = next_module_id++;
    m->seen = 1;
    strncpy(m->name, name, sizeof m->name - 1);
    m->name[sizeof m->name - 1] = '\0';
    announce(st, info, m->id);
    return 0;
}

int mt_modules_sync(struct mt_ring *r, uint64_t *ts)
{
    unsigned long long counters[2] = {0, 0};
    dl_iterate_phdr(read_counters, counters);
    if (counters[0] == last_adds && counters[1] == last_subs)
        return 0;
    mt_dl_note_change(); /* loaded behind dlopen's back, or by another thread */
    if (!modules) {
        void *p = mmap(NULL, MAX_MODULES * sizeof(struct module), PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return 0;
        modules = p;
        mt_own_add(p, MAX_MODULES * sizeof(struct module)); /* never a root of the scan */
    }
    struct sync_state st = {r, ts, 0};
    for (uint32_t i = 0; i < module_count; i++)
        modules[i].seen = 0;
    dl_iterate_phdr(visit_module, &st);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < module_count; i++) {
        if (!modules[i].seen) {
            stamp_once(&st);
            mt_ring_write_pair(r, MT_RING_MODULE_UNLOAD, *ts, modules[i].id, 0);
            continue;
        }
        modules[kept++] = modules[i];
    }
    module_count = kept;
    if (counters[0] != ~1ull) {
        last_adds = counters[0];
        last_subs = counters[1];
    }
    return st.changed;
}

void mt_modules_sync_now(struct mt_thread *t)
{
    struct mt_ring *r = mt_ring_get(t);
    if (r) {
        uint64_t ts = 0;
        mt_modules_lock();
        mt_modules_sync(r, &ts);
        mt_modules_unlock();
        mt_ring_idle(r);
    }
}
