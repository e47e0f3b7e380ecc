/* LEB128 varints and zigzag, the field encodings of the dump (format.h). */
#ifndef MEMTRACE_VARINT_H
#define MEMTRACE_VARINT_H

#include <stddef.h>
#include <stdint.h>

#define MT_VARINT_MAX 10

/* Writes v at p (room for MT_VARINT_MAX bytes); returns the bytes used. */
static inline size_t mt_varint_put(unsigned char *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (unsigned char)v;
    return n;
}

/* Reads a varint from [p, end); returns the bytes used, 0 if incomplete,
 * or -1 if malformed (longer than 10 bytes). */
static inline int mt_varint_get(const unsigned char *p, const unsigned char *end, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < MT_VARINT_MAX; i++) {
        if (p + i >= end)
            return 0;
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *out = v;
            return i + 1;
        }
    }
    return -1;
}

static inline uint64_t mt_zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static inline int64_t mt_unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

#endif
