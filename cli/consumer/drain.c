/* From rings to dump: the consumer's merge of one process's per-thread rings
 * in timestamp order, the bookkeeping of live blocks and totals, and the
 * records written for each event. Also the fork snapshot that gives a child
 * its parent's heap.
 *
 * The rings are memory shared with a process that may be buggy or dying, so
 * every record header is checked before it is trusted; a bad one stops the
 * reading of that process (its dump keeps what came before).
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memtrace/format.h"
#include "memtrace/varint.h"
#include "util.h"
#include "process.h"

_Static_assert(MT_MAX_STACK_ENTRIES <= MT_STACK_DEPTH_MAX, "the dump holds every stack a ring can");

/* ---- byte buffers ------------------------------------------------------- */

/* Appends n bytes (the buffer doubles as it grows). 0, or -1 when out of
 * memory. */
static int byte_buffer_append(struct byte_buffer *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *q = realloc(b->bytes, cap);
        if (!q)
            return -1;
        b->bytes = q;
        b->cap = cap;
    }
    memcpy(b->bytes + b->len, data, n);
    b->len += n;
    return 0;
}

/* ---- events ------------------------------------------------------------- */

static void account_alloc(struct process *p, uint64_t ts, const struct heap_block *b)
{
    struct heap_block old;
    struct heap_totals *t = &p->totals;
    int r = heap_table_insert(&p->live, b, &old);
    if (r == 1) { /* a free we never saw: the old block is gone */
        t->in_use_bytes -= old.size;
        t->in_use_blocks--;
    }
    t->allocations++;
    t->bytes_allocated += b->size;
    t->in_use_bytes += b->size;
    t->in_use_blocks++;
    if (t->in_use_bytes > t->peak_bytes) {
        t->peak_bytes = t->in_use_bytes;
        t->peak_blocks = t->in_use_blocks;
        t->peak_time_ns = ts - p->start_ns;
    }
}

static void on_alloc(struct process *p, struct consumer_ring *ring, const struct mt_ring_alloc *a)
{
    uint32_t stack = stack_store_local(p->stacks, a->stack_id);
    struct heap_block b = {a->ptr, a->size, stack, MT_KIND_UNKNOWN};
    account_alloc(p, a->hdr.ts, &b);
    dump_write_alloc(&p->dump, a->hdr.ts, ring->thread, a->function, a->ptr, a->size, stack);
}

static void on_free(struct process *p, struct consumer_ring *ring, const struct mt_ring_free *f)
{
    struct heap_block b;
    if (heap_table_remove(&p->live, f->ptr, &b)) {
        p->totals.frees++;
        p->totals.in_use_bytes -= b.size;
        p->totals.in_use_blocks--;
    }
    dump_write_free(&p->dump, f->hdr.ts, ring->thread, f->function, f->ptr);
}

static int on_stack(struct process *p, const struct mt_ring_stack *s, uint32_t len)
{
    if (s->depth > MT_MAX_STACK_ENTRIES || sizeof *s + s->depth * 8ull > len)
        return -1;
    uint32_t id = stack_store_add(p->stacks, s->ips, s->depth, &p->dump);
    return stack_store_set_local(p->stacks, s->id, id);
}

/* Removes the module id's record from a module log. */
static void modules_forget(struct byte_buffer *log, uint32_t id)
{
    for (size_t at = 0; at < log->len;) {
        const struct mt_ring_module_load *m = (const void *)(log->bytes + at);
        size_t len = m->hdr.len;
        if (m->module_id == id) {
            memmove(log->bytes + at, log->bytes + at + len, log->len - at - len);
            log->len -= len;
            return;
        }
        at += len;
    }
}

/* A fork child announces its modules again, under its own ids, before its
 * first stack: the modules it inherited are unloaded first (the inherited
 * stacks before them were symbolized with them). */
static void modules_own(struct process *p, uint64_t ts)
{
    if (!p->modules_inherited)
        return;
    for (size_t at = 0; at < p->modules.len;) {
        const struct mt_ring_module_load *m = (const void *)(p->modules.bytes + at);
        dump_write_module_unload(&p->dump, ts, m->module_id);
        at += m->hdr.len;
    }
    p->modules.len = 0;
    p->modules_inherited = 0;
}

/* A module mapped at time ts: into the dump and the process's module log. */
static int on_module_load(struct process *p, const struct mt_ring_module_load *m, uint32_t len,
                          uint64_t ts)
{
    uint64_t need = sizeof *m + (uint64_t)m->nsegments * sizeof(struct mt_ring_segment) +
                    m->path_len + m->build_id_len;
    if (need > len || len != m->hdr.len)
        return -1;
    const struct mt_ring_segment *seg = (const void *)(m + 1);
    const char *path = (const char *)(seg + m->nsegments);
    _Static_assert(sizeof *seg == 3 * sizeof(uint64_t), "segments are (vaddr, memsz, flags)");
    dump_write_module_load(&p->dump, ts, m->module_id, m->load_bias, path, m->path_len,
                           path + m->path_len, m->build_id_len, m->nsegments,
                           (const uint64_t *)seg);
    modules_forget(&p->modules, m->module_id); /* an id reused without its unload */
    return byte_buffer_append(&p->modules, m, len);
}

static void on_module_unload(struct process *p, uint64_t ts, uint32_t id)
{
    modules_own(p, ts);
    dump_write_module_unload(&p->dump, ts, id);
    modules_forget(&p->modules, id);
}

/* ---- Python frames ------------------------------------------------------ */

static int on_pyframe(struct process *p, const struct mt_ring_pyframe *f, uint32_t len)
{
    if (sizeof *f + (uint64_t)f->function_len + f->file_len > len || f->id == 0)
        return -1;
    const char *function = (const char *)(f + 1);
    dump_write_pyframe(&p->dump, f->id, f->line, function, f->function_len,
                       function + f->function_len, f->file_len);
    return byte_buffer_append(&p->pyframes, f, len);
}

/* Writes every frame of log into the child's dump (and its own log). */
static void pyframes_inherit(struct process *child, const struct byte_buffer *log)
{
    for (size_t at = 0; at + sizeof(struct mt_ring_pyframe) <= log->len;) {
        const struct mt_ring_pyframe *f = (const void *)(log->bytes + at);
        on_pyframe(child, f, f->hdr.len);
        at += f->hdr.len;
    }
}

/* ALLOCATOR (a custom function id and its name) and MARK (a label). */
static int on_name(struct process *p, struct consumer_ring *ring, const struct mt_ring_name *n,
                   uint32_t len)
{
    if (n->len > MT_RING_NAME_MAX || sizeof *n + n->len > len)
        return -1;
    if (n->hdr.type == MT_RING_MARK) {
        dump_write_mark(&p->dump, n->hdr.ts, ring->thread, n->text, n->len);
        return 0;
    }
    if (n->a < MT_FN_CUSTOM_BASE || n->a >= MT_FN_CUSTOM_LIMIT)
        return -1;
    dump_write_allocator(&p->dump, n->a, n->text, n->len);
    return 0;
}

/* ---- fork snapshots ----------------------------------------------------- */

static void take_snapshot(struct process *p, uint32_t seq, struct fork_snapshot **list)
{
    struct fork_snapshot *s = calloc(1, sizeof *s);
    if (!s)
        return;
    s->parent = p->pid;
    s->seq = seq;
    if (p->pyframes.len && byte_buffer_append(&s->pyframes, p->pyframes.bytes, p->pyframes.len) != 0)
        s->pyframes.len = 0;
    if (p->modules.len && byte_buffer_append(&s->modules, p->modules.bytes, p->modules.len) != 0)
        s->modules.len = 0;
    s->totals = p->totals;
    s->nblocks = heap_table_snapshot(&p->live, &s->blocks);
    if (s->nblocks < 0)
        s->nblocks = 0;
    /* the blocks' stacks are the parent's numbers: its store keeps them */
    s->stacks = p->stacks;
    s->nstacks = p->stacks->count;
    stack_store_retain(s->stacks);
    s->next = *list;
    *list = s;
}

void process_take_snapshot(struct process *p, uint32_t seq, struct fork_snapshot **list)
{
    take_snapshot(p, seq, list);
}

void fork_snapshot_free(struct fork_snapshot *s)
{
    free(s->blocks);
    free(s->pyframes.bytes);
    free(s->modules.bytes);
    stack_store_release(s->stacks);
    free(s);
}

void process_inherit(struct process *child, const struct fork_snapshot *snap)
{
    struct dump_writer *w = &child->dump;
    /* the frames and modules the stacks name, before them */
    pyframes_inherit(child, &snap->pyframes);
    for (size_t at = 0; at < snap->modules.len;) {
        const struct mt_ring_module_load *m = (const void *)(snap->modules.bytes + at);
        on_module_load(child, m, m->hdr.len, child->start_ns);
        at += m->hdr.len;
    }
    child->modules_inherited = 1;
    /* the stacks of the blocks, in the parent's order (one is most like the
     * one numbered before it): map[parent's number] = the child's */
    uint32_t *map = calloc((size_t)snap->nstacks + 1, sizeof *map);
    for (long i = 0; map && i < snap->nblocks; i++)
        if (snap->blocks[i].stack && snap->blocks[i].stack <= snap->nstacks)
            map[snap->blocks[i].stack] = 1; /* 0, no stack, stays 0 */
    uint64_t ips[MT_MAX_STACK_ENTRIES];
    for (uint32_t id = 1; map && id <= snap->nstacks; id++) {
        uint32_t depth = map[id] ? stack_store_get(snap->stacks, id, ips) : 0;
        map[id] = depth ? stack_store_add(child->stacks, ips, depth, w) : 0;
    }
    for (long i = 0; i < snap->nblocks; i++) {
        struct heap_block b = snap->blocks[i];
        b.stack = map && b.stack <= snap->nstacks ? map[b.stack] : 0;
        struct heap_block old;
        heap_table_insert(&child->live, &b, &old);
        dump_write_inherit(w, b.address, b.size, b.stack);
    }
    free(map);
    child->totals = snap->totals;
    child->totals.peak_bytes = snap->totals.in_use_bytes;
    child->totals.peak_blocks = snap->totals.in_use_blocks;
    child->totals.peak_time_ns = 0;
    dump_write_inherit_totals(w, snap->totals.allocations, snap->totals.frees,
                              snap->totals.bytes_allocated);
    child->waiting_for_fork = 0;
}

/* ---- the merge ---------------------------------------------------------- */

static int is_ordered(uint32_t type) { return type != MT_RING_PAD; }

/* Reads the record at the ring's tail; NULL if none or malformed. */
/* The ring's memory is shared with the process, which may write it at any
 * moment: a field read twice may differ. So a record is read once, into
 * memory of ours, and only that copy is checked and used: its header into
 * r->front (for the merge), the whole of it into record_copy when it is
 * processed. No record is longer than this (a module's path and build id,
 * a stack of MT_MAX_STACK_ENTRIES frames, a Python frame's names). */
#define RING_RECORD_MAX (1u << 20)

/* Reads the header of the record at the ring's tail into r->front; NULL if
 * none or malformed. */
static const struct mt_ring_record *front(struct process *p, struct consumer_ring *r)
{
    while (r->tail < r->head_seen) {
        uint64_t offset = r->tail & (r->capacity - 1);
        struct mt_ring_record rec;
        uint32_t len;
        if (offset + sizeof rec <= r->capacity) {
            memcpy(&rec, r->data + offset, sizeof rec);
        } else { /* a PAD of 8 bytes at the very end */
            memcpy(&rec, r->data + offset, 8);
            rec.ts = 0;
        }
        __atomic_signal_fence(__ATOMIC_SEQ_CST); /* the copy is what we check */
        len = rec.len;
        /* A PAD may be 8 bytes (type and len only); others have a time. */
        if (len < 8 || (len & 7) || offset + len > r->capacity || r->tail + len > r->head_seen ||
            (rec.type != MT_RING_PAD && (len < sizeof rec || len > RING_RECORD_MAX))) {
            p->corrupt = 1;
            return NULL;
        }
        if (rec.type == MT_RING_PAD) {
            r->tail += len;
            continue;
        }
        r->front = rec;
        return &r->front;
    }
    return NULL;
}

/* The whole record whose header front() read, copied out of the ring, with
 * that header (not whatever the ring holds now). NULL when out of memory. */
static const struct mt_ring_record *copy_record(const struct consumer_ring *r)
{
    static uint64_t *copy; /* 8-byte aligned, as records are */
    static size_t copy_cap;
    uint32_t len = r->front.len;
    if (len > copy_cap) {
        uint64_t *q = realloc(copy, len);
        if (!q)
            return NULL;
        copy = q;
        copy_cap = len;
    }
    memcpy(copy, r->data + (r->tail & (r->capacity - 1)), len);
    memcpy(copy, &r->front, sizeof r->front);
    __atomic_signal_fence(__ATOMIC_SEQ_CST); /* only the copy is read from here on */
    return (const struct mt_ring_record *)copy;
}

static void process_record(struct process *p, struct consumer_ring *r,
                           const struct mt_ring_record *rec, struct fork_snapshot **snapshots)
{
    const struct mt_ring_u32pair *pair = (const void *)rec;
    int bad = 0;
    switch (rec->type) {
    case MT_RING_ALLOC: /* address 0 is never a block: only garbage has it */
        bad = rec->len < sizeof(struct mt_ring_alloc) || !((const struct mt_ring_alloc *)rec)->ptr;
        if (!bad)
            on_alloc(p, r, (const void *)rec);
        break;
    case MT_RING_FREE:
        bad = rec->len < sizeof(struct mt_ring_free) || !((const struct mt_ring_free *)rec)->ptr;
        if (!bad)
            on_free(p, r, (const void *)rec);
        break;
    case MT_RING_STACK:
        bad = rec->len < sizeof(struct mt_ring_stack) || on_stack(p, (const void *)rec, rec->len);
        break;
    case MT_RING_MODULE_LOAD:
        modules_own(p, rec->ts);
        bad = rec->len < sizeof(struct mt_ring_module_load) ||
              on_module_load(p, (const void *)rec, rec->len, rec->ts);
        break;
    case MT_RING_ALLOCATOR:
    case MT_RING_MARK:
        bad = rec->len < sizeof(struct mt_ring_name) || on_name(p, r, (const void *)rec, rec->len);
        break;
    case MT_RING_MODULE_UNLOAD:
        on_module_unload(p, rec->ts, pair->a);
        break;
    case MT_RING_THREAD_START:
        r->thread = pair->a;
        dump_write_thread(&p->dump, pair->a, (uint32_t)pair->b);
        break;
    case MT_RING_THREAD_END:
        break;
    case MT_RING_EXIT:
        p->saw_exit = 1;
        p->exit_how = pair->a == MT_EXIT_SIGNAL ? MT_EXIT_SIGNAL : MT_EXIT_STATUS;
        p->exit_value = pair->b;
        break;
    case MT_RING_FORK:
        if (pair->b != 1) /* else its child will never claim it */
            take_snapshot(p, pair->a, snapshots);
        break;
    case MT_RING_EXEC:
        if (pair->a == 2) /* a vfork child of it, pid b, is about to exec */
            process_watch_exec(p, (pid_t)pair->b, rec->ts);
        else if (pair->a == 3) /* and that exec failed */
            process_unwatch_exec(p, (pid_t)pair->b);
        else if (pair->a == 4) /* a posix_spawn child, pid b, exec'd already */
            process_watch_exec(p, (pid_t)pair->b, p->start_ns);
        else
            p->exec_pending = pair->a == 1;
        break;
    case MT_RING_PYFRAME:
        bad = rec->len < sizeof(struct mt_ring_pyframe) ||
              on_pyframe(p, (const void *)rec, rec->len);
        break;
    case MT_RING_INCOMPLETE: /* the shim lost something: the gates must know */
        process_note_incomplete(p, rec->ts, pair->a, (uint32_t)pair->b);
        break;
    default:
        bad = 1;
    }
    if (bad)
        p->corrupt = 1;
    p->last_event_ns = rec->ts;
}

/* Starts loading the live-table slot of the ring's next record if it is an
 * event, while the merge looks at the other rings. Nothing is trusted
 * here: the record is checked when it is read, and a prefetch of a wrong
 * address does no harm. */
static void prefetch_next(struct process *p, const struct consumer_ring *r)
{
    uint64_t offset = r->tail & (r->capacity - 1);
    if (r->tail >= r->head_seen || offset + sizeof(struct mt_ring_alloc) > r->capacity)
        return;
    const struct mt_ring_alloc *a = (const void *)(r->data + offset);
    if (a->hdr.type == MT_RING_ALLOC || a->hdr.type == MT_RING_FREE) {
        _Static_assert(offsetof(struct mt_ring_alloc, ptr) == offsetof(struct mt_ring_free, ptr),
                       "ALLOC and FREE records hold the address at the same place");
        heap_table_prefetch(&p->live, a->ptr);
    }
}

/* Slots of the spare pool that a thread has taken (a non-zero busy or
 * head) join the rings read, with every slot before them: called after
 * the drain's clock, as a ring's busy is read (ring.h), so that a slot
 * still untouched here will stamp its first event later than that clock.
 * A slot whose control page claims another size is garbage. */
static void process_pool_wake(struct process *p)
{
    const size_t slot = MT_RING_DATA_OFFSET + p->pool_capacity;
    uint32_t last = p->pool_next;
    for (uint32_t i = p->pool_next; i < p->pool_slots; i++) {
        const struct mt_ring_control *ctl = (const void *)(p->pool_map + (size_t)i * slot);
        if (__atomic_load_n(&ctl->busy, __ATOMIC_ACQUIRE) ||
            __atomic_load_n(&ctl->head, __ATOMIC_ACQUIRE))
            last = i + 1;
    }
    for (; p->pool_next < last; p->pool_next++) {
        if (p->nrings == p->rings_cap) {
            uint32_t cap = p->rings_cap ? p->rings_cap * 2 : 8;
            struct consumer_ring *q = realloc(p->rings, cap * sizeof *q);
            if (!q) {
                p->corrupt = 1;
                return;
            }
            p->rings = q;
            p->rings_cap = cap;
        }
        uint8_t *mem = p->pool_map + (size_t)p->pool_next * slot;
        /* map_size 0: unmapped with the pool, not alone */
        p->rings[p->nrings++] = (struct consumer_ring){
            .ctl = (void *)mem, .data = mem + MT_RING_DATA_OFFSET, .capacity = p->pool_capacity};
    }
}

long process_drain(struct process *p, int final, struct fork_snapshot **snapshots)
{
    if (p->waiting_for_fork)
        return 0;
    if (p->corrupt) { /* the dump stops here, but the program must not block */
        if (p->pool_map)
            process_pool_wake(p);
        for (uint32_t i = 0; i < p->nrings; i++) {
            p->rings[i].tail = __atomic_load_n(&p->rings[i].ctl->head, __ATOMIC_ACQUIRE);
            __atomic_store_n(&p->rings[i].ctl->tail, p->rings[i].tail, __ATOMIC_RELEASE);
        }
        return 0;
    }
    /* Our clock first, then each ring's busy word, then its head. */
    uint64_t horizon = final ? UINT64_MAX : consumer_now_ns();
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (p->pool_map)
        process_pool_wake(p);
    for (uint32_t i = 0; i < p->nrings; i++) {
        struct consumer_ring *r = &p->rings[i];
        if (!final) {
            uint64_t busy = __atomic_load_n(&r->ctl->busy, __ATOMIC_ACQUIRE);
            for (int spin = 0; busy == MT_BUSY_STAMPING && spin < 200; spin++) {
                __builtin_ia32_pause();
                busy = __atomic_load_n(&r->ctl->busy, __ATOMIC_ACQUIRE);
            }
            /* Still stamping: its stamp is at least its last record's. */
            uint64_t bound = busy == MT_BUSY_STAMPING ? r->last_ts : busy;
            if (busy && bound < horizon)
                horizon = bound;
        }
        uint64_t head = __atomic_load_n(&r->ctl->head, __ATOMIC_ACQUIRE);
        if (head - r->tail > r->capacity) { /* nonsense from the producer */
            p->corrupt = 1;
            return 0;
        }
        r->head_seen = head;
    }
    long moved = 0;
    for (;;) {
        struct consumer_ring *best = NULL;
        const struct mt_ring_record *best_rec = NULL;
        for (uint32_t i = 0; i < p->nrings; i++) {
            const struct mt_ring_record *rec = front(p, &p->rings[i]);
            if (rec && is_ordered(rec->type))
                p->rings[i].last_ts = rec->ts > p->rings[i].last_ts ? rec->ts : p->rings[i].last_ts;
            if (rec && rec->ts <= horizon && (!best_rec || rec->ts < best_rec->ts)) {
                best = &p->rings[i];
                best_rec = rec;
            }
        }
        if (p->corrupt || !best)
            break;
        uint32_t len = best_rec->len; /* our copy's */
        const struct mt_ring_record *whole = copy_record(best);
        if (!whole) {
            p->corrupt = 1;
            break;
        }
        process_record(p, best, whole, snapshots);
        best->tail += len;
        prefetch_next(p, best);
        if ((++moved & 255) == 0)
            __atomic_store_n(&best->ctl->tail, best->tail, __ATOMIC_RELEASE);
        if (p->corrupt)
            break;
    }
    for (uint32_t i = 0; i < p->nrings; i++)
        __atomic_store_n(&p->rings[i].ctl->tail, p->rings[i].tail, __ATOMIC_RELEASE);
    return moved;
}

void process_sample_rss(struct process *p, uint64_t now)
{
    if (p->rss_fd < 0 || now - p->last_rss_ns < 10000000ull)
        return;
    p->last_rss_ns = now;
    char buf[128];
    ssize_t n = pread(p->rss_fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return;
    buf[n] = '\0';
    unsigned long long size, resident;
    /* A process that has died but is not yet reaped reads as all zeros:
     * that is no sample. */
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2 || size == 0)
        return;
    dump_write_rss(&p->dump, now, resident * (uint64_t)sysconf(_SC_PAGESIZE));
}

void process_watch_exec(struct process *p, pid_t pid, uint64_t since_ns)
{
    for (size_t i = 0; i < p->nwatches; i++)
        if (p->watches[i].pid == pid) { /* exec'd again (a failed exec not said) */
            p->watches[i].since_ns = since_ns;
            return;
        }
    if (p->nwatches == p->watches_cap) {
        size_t cap = p->watches_cap ? 2 * p->watches_cap : 4;
        struct exec_watch *grown = realloc(p->watches, cap * sizeof *grown);
        if (!grown)
            return;
        p->watches = grown;
        p->watches_cap = cap;
    }
    p->watches[p->nwatches++] = (struct exec_watch){.pid = pid, .since_ns = since_ns};
}

void process_unwatch_exec(struct process *p, pid_t pid)
{
    for (size_t i = 0; i < p->nwatches; i++)
        if (p->watches[i].pid == pid) {
            free(p->watches[i].image);
            p->watches[i] = p->watches[--p->nwatches];
            return;
        }
}

void process_note_incomplete(struct process *p, uint64_t ts, uint32_t reason, uint64_t count)
{
    dump_write_incomplete(&p->dump, ts, reason, count);
    summary_add_incomplete(&p->incomplete, reason, count);
}
