/* The reading thread (see event_pipe.h).
 *
 * PIPE_BLOCKS blocks go round: the thread fills the free ones in order, the
 * pass takes the filled ones in the same order and gives each back when it
 * asks for the next. A block is handed over when its events are full or it
 * holds PIPE_RECORDS records (the leak kinds of a scan come by the million).
 * Blocks are large on purpose: with 4096 events, handing them over cost a
 * third more CPU than the decoding it moved (32768 x 56 bytes, 3 blocks:
 * 5.5 MB). When no thread can be started, the pass fills each block itself.
 */
#define _GNU_SOURCE
#include "event_pipe.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sites.h"
#include "util.h"

#define PIPE_BLOCKS 3
#define PIPE_RECORDS 4096

struct event_pipe {
    struct dump_reader *r;
    struct site_builder *sites;
    struct pipe_block *blocks; /* PIPE_BLOCKS */
    int threaded;
    pthread_t thread;
    pthread_mutex_t lock; /* over head, count, done and stop */
    pthread_cond_t filled, emptied;
    uint32_t head, count; /* blocks[head...] are filled, count of them */
    int held;             /* the pass holds blocks[head] */
    int done;             /* the thread filled its last block */
    int stop;             /* the pass wants no more */
    /* the reading side's */
    int status, oom;
    uint64_t last_time;
};

/* Whether the pass needs a record of this type (besides events). */
static int pass_needs(enum mt_record type)
{
    switch (type) {
    case MT_REC_STACK:
    case MT_REC_ALLOCATOR:
    case MT_REC_MARK:
    case MT_REC_INHERIT:
    case MT_REC_INHERIT_TOTALS:
    case MT_REC_SCAN:
    case MT_REC_LEAK_KIND:
    case MT_REC_EXIT:
    case MT_REC_INCOMPLETE:
        return 1;
    default:
        return 0;
    }
}

static int for_sites(enum mt_record type)
{
    return type == MT_REC_MODULE_LOAD || type == MT_REC_MODULE_UNLOAD || type == MT_REC_STACK ||
           type == MT_REC_PYFRAME;
}

/* Appends rec to b's records, before its next event. 0 or -1. */
static int add_record(struct pipe_block *b, const struct dump_record *rec)
{
    if (array_grow((void **)&b->records, &b->records_cap, sizeof *b->records, b->nrecords + 1) !=
        0)
        return -1;
    struct pipe_record *pr = &b->records[b->nrecords++];
    pr->before = b->nevents;
    pr->rec = *rec;
    if (rec->name) {
        memcpy(pr->label, rec->name, rec->name_len); /* at most 255 bytes */
        pr->label[rec->name_len] = '\0';
    }
    return 0;
}

/* Fills b from the dump. 1 if more may follow, 0 when the dump ended or
 * failed (p->status says which). */
static int fill(struct event_pipe *p, struct pipe_block *b)
{
    struct dump_reader *r = p->r;
    b->nevents = 0;
    b->nrecords = 0;
    while (b->nevents < PIPE_EVENTS && b->nrecords < PIPE_RECORDS) {
        if (r->events.left) {
            struct dump_event *e = b->events + b->nevents;
            int n = dump_next_events(r, e, (int)(PIPE_EVENTS - b->nevents));
            if (n < 0)
                break;
            b->nevents += (uint32_t)n;
            for (int i = 0; i < n; i++)
                if (e[i].time > p->last_time)
                    p->last_time = e[i].time;
            continue;
        }
        struct dump_record rec;
        int got = dump_next(r, &rec);
        if (got <= 0) {
            p->status = got;
            return 0;
        }
        if (rec.time > p->last_time)
            p->last_time = rec.time;
        if (rec.type == MT_REC_ALLOC || rec.type == MT_REC_FREE) {
            b->events[b->nevents++] = (struct dump_event){
                rec.time, rec.thread, rec.function, rec.address, rec.size, rec.stack,
                rec.type == MT_REC_FREE};
            continue;
        }
        if ((p->sites && for_sites(rec.type) && site_builder_add(p->sites, &rec) != 0) ||
            (pass_needs(rec.type) && add_record(b, &rec) != 0)) {
            p->oom = 1;
            break;
        }
    }
    if (b->nevents < PIPE_EVENTS && b->nrecords < PIPE_RECORDS) { /* it broke off */
        p->status = -1;
        return 0;
    }
    return 1;
}

static void *reader(void *arg)
{
    struct event_pipe *p = arg;
    int more = 1;
    while (more) {
        pthread_mutex_lock(&p->lock);
        while (p->count == PIPE_BLOCKS && !p->stop)
            pthread_cond_wait(&p->emptied, &p->lock);
        uint32_t next = (p->head + p->count) % PIPE_BLOCKS;
        int stop = p->stop;
        pthread_mutex_unlock(&p->lock);
        if (stop)
            break;
        more = fill(p, &p->blocks[next]);
        pthread_mutex_lock(&p->lock);
        p->count++;
        pthread_cond_signal(&p->filled);
        pthread_mutex_unlock(&p->lock);
    }
    pthread_mutex_lock(&p->lock);
    p->done = 1;
    pthread_cond_signal(&p->filled);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

struct event_pipe *event_pipe_start(struct dump_reader *r, struct site_builder *sites)
{
    struct event_pipe *p = calloc(1, sizeof *p);
    if (!p || !(p->blocks = calloc(PIPE_BLOCKS, sizeof *p->blocks))) {
        free(p);
        return NULL;
    }
    p->r = r;
    p->sites = sites;
    p->last_time = r->process.start_ns;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->filled, NULL);
    pthread_cond_init(&p->emptied, NULL);
    p->threaded = pthread_create(&p->thread, NULL, reader, p) == 0;
    return p;
}

const struct pipe_block *event_pipe_next(struct event_pipe *p)
{
    if (!p->threaded) { /* one block, filled here */
        if (p->held && p->done)
            return NULL;
        p->held = 1;
        p->done = !fill(p, &p->blocks[0]);
        return &p->blocks[0];
    }
    pthread_mutex_lock(&p->lock);
    if (p->held) {
        p->head = (p->head + 1) % PIPE_BLOCKS;
        p->count--;
        p->held = 0;
        pthread_cond_signal(&p->emptied);
    }
    while (!p->count && !p->done)
        pthread_cond_wait(&p->filled, &p->lock);
    const struct pipe_block *b = p->count ? &p->blocks[p->head] : NULL;
    p->held = b != NULL;
    pthread_mutex_unlock(&p->lock);
    return b;
}

int event_pipe_finish(struct event_pipe *p, uint64_t *last_time, int *oom)
{
    if (p->threaded) {
        pthread_mutex_lock(&p->lock);
        p->stop = 1;
        pthread_cond_signal(&p->emptied);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
    }
    int status = p->status;
    *last_time = p->last_time;
    *oom = p->oom;
    for (uint32_t i = 0; i < PIPE_BLOCKS; i++)
        free(p->blocks[i].records);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->filled);
    pthread_cond_destroy(&p->emptied);
    free(p->blocks);
    free(p);
    return status < 0 ? -1 : 0;
}
