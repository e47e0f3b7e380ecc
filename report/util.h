/* Small helpers shared by the consumer (cli/) and the reader (report/):
 * growable arrays, hash mixing, JSON strings, a path's last part. */
#ifndef MEMTRACE_UTIL_H
#define MEMTRACE_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xml_util.h"

/* The last part of a path: what follows its last '/' (NULL for NULL). */
static inline const char *path_base_name(const char *path)
{
    const char *slash = path ? strrchr(path, '/') : NULL;
    return slash ? slash + 1 : path;
}

/* Makes room for `need` elements of `elem` bytes in *p (capacity *cap,
 * doubled as needed, new room zeroed). 0, or -1 when out of memory. */
static inline int array_grow(void **p, uint32_t *cap, size_t elem, uint64_t need)
{
    if (need <= *cap)
        return 0;
    if (need > UINT32_MAX / 2)
        return -1;
    uint32_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, (size_t)n * elem);
    if (!q)
        return -1;
    memset((char *)q + (size_t)*cap * elem, 0, (size_t)(n - *cap) * elem);
    *p = q;
    *cap = n;
    return 0;
}

static inline uint64_t hash_mix(uint64_t h, uint64_t v)
{
    h ^= v;
    h *= 0xff51afd7ed558ccdull;
    return h ^ (h >> 32);
}

/* Grows an open-addressing index whose slots hold entry ids (i + 1, 0 =
 * empty) of count entries, to twice its size (first_mask + 1 slots when it
 * has none yet), placing each entry by hash_at(ctx, i) with linear probing.
 * 0, or -1 when out of memory (the old index is kept). */
static inline int index_grow(uint32_t **slots, uint32_t *mask, uint32_t count, uint32_t first_mask,
                             uint64_t (*hash_at)(const void *ctx, uint32_t i), const void *ctx)
{
    uint32_t new_mask = *mask ? *mask * 2 + 1 : first_mask;
    uint32_t *n = calloc((size_t)new_mask + 1, sizeof *n);
    if (!n)
        return -1;
    for (uint32_t e = 0; e < count; e++) {
        uint32_t i = (uint32_t)hash_at(ctx, e) & new_mask;
        while (n[i])
            i = (i + 1) & new_mask;
        n[i] = e + 1;
    }
    free(*slots);
    *slots = n;
    *mask = new_mask;
    return 0;
}

/* Writes len bytes at s as a JSON string (embedded NULs included). JSON is
 * always valid UTF-8 (the rule man/memtrace-report.1 states): valid UTF-8
 * is kept, each byte that is not part of a valid UTF-8 sequence becomes
 * U+FFFD (written \ufffd), and control characters -- C0, DEL and C1 --
 * are \u00XX escapes. The runs that need no escape go out whole (a report
 * can write hundreds of megabytes of paths). */
static inline void json_write_bytes(FILE *out, const char *s, size_t len)
{
    fputc('"', out);
    const unsigned char *c = (const unsigned char *)s, *end = c + len, *run = c;
    while (c < end) {
        if (*c >= 0x20 && *c < 0x7f && *c != '"' && *c != '\\') {
            c++;
            continue;
        }
        int n = *c >= 0x80 ? utf8_length_n(c, end) : 0;
        if (n > 1 && !(n == 2 && c[0] == 0xc2 && c[1] < 0xa0)) { /* not a C1 control */
            c += n;
            continue;
        }
        fwrite(run, 1, (size_t)(c - run), out);
        if (n == 2) { /* C1 */
            fprintf(out, "\\u%04x", c[1]);
            c += 2;
        } else {
            if (*c >= 0x80)
                fputs("\\ufffd", out);
            else if (*c < 0x20 || *c == 0x7f)
                fprintf(out, "\\u%04x", *c);
            else
                fprintf(out, "\\%c", *c);
            c++;
        }
        run = c;
    }
    fwrite(run, 1, (size_t)(c - run), out);
    fputc('"', out);
}

/* Writes s as a JSON string (json_write_bytes up to its NUL), or null. */
static inline void json_write_string(FILE *out, const char *s)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    json_write_bytes(out, s, strlen(s));
}

#endif
