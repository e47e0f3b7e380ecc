/* A ring as the shim holds it, shared by ring_writer.c (making rings and
 * attaching them to threads) and ring_records.c (writing records). Hidden. */
#ifndef MEMTRACE_RING_STATE_H
#define MEMTRACE_RING_STATE_H

#include "shim.h"

struct mt_ring {
    struct mt_ring_control *ctl;
    uint8_t *data;
    uint64_t capacity;
    uint64_t head;       /* our copy of ctl->head */
    uint64_t tail_seen;  /* last tail read from the consumer */
    size_t map_size;
    struct mt_ring *next_all;
    struct mt_ring *next_free;
    struct mt_deferred *deferred; /* MT_DEFERRED_MAX entries, mmap'd */
    volatile uint32_t ndeferred;
    int flushing; /* flush_deferred is writing the queue (no re-entry) */
    uint64_t floor_ts; /* the latest stamp of a queued handler event */
    struct mt_thread *volatile owner; /* the thread writing it, or NULL */
};

/* ring_records.c */
void mt_ring_flush_deferred(struct mt_thread *t, struct mt_ring *r) MT_HIDDEN;

#endif
