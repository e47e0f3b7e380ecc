/* Small helpers for text meant to be read: numbers as 1,234,567 and
 * 1.2 MiB, and strings from a dump made safe for a terminal. */
#ifndef MEMTRACE_TEXT_FORMAT_H
#define MEMTRACE_TEXT_FORMAT_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "xml_util.h"

/* Writes v with thousands separators into buf (32 bytes); returns buf. */
static inline const char *fmt_count(char *buf, uint64_t v)
{
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%llu", (unsigned long long)v);
    int out = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            buf[out++] = ',';
        buf[out++] = digits[i];
    }
    buf[out] = '\0';
    return buf;
}

/* Writes a byte count as B, KiB, MiB or GiB into buf (32 bytes). */
static inline const char *fmt_bytes(char *buf, uint64_t v)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double x = (double)v;
    int u = 0;
    while (x >= 1024 && u < 4) {
        x /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, 32, "%llu B", (unsigned long long)v);
    else
        snprintf(buf, 32, "%.1f %s", x, units[u]);
    return buf;
}

/* s as text output shows it: control characters (C0 including newline and
 * tab, DEL, C1) and bytes that are not part of valid UTF-8 as \xNN, so that
 * no argument or symbol name can move the cursor, change colours or retitle
 * the terminal. Returns s itself when nothing needs it, else buf (cut, with
 * "...", at size bytes). */
static inline const char *text_clean(const char *s, char *buf, size_t size)
{
    const unsigned char *c = (const unsigned char *)s;
    for (; *c; c++) {
        int n = *c >= 0x80 ? utf8_length(c) : 1;
        if (*c < 0x20 || *c == 0x7f || n == 0 || (n == 2 && c[0] == 0xc2 && c[1] < 0xa0))
            break;
        c += n - 1;
    }
    if (!*c)
        return s;
    size_t o = 0;
    for (c = (const unsigned char *)s; *c && o + 8 < size;) {
        int n = *c >= 0x80 ? utf8_length(c) : 1;
        if (*c < 0x20 || *c == 0x7f || n == 0 || (n == 2 && c[0] == 0xc2 && c[1] < 0xa0)) {
            int k = n == 2 ? 2 : 1;
            for (int i = 0; i < k; i++)
                o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c[i]);
            c += k;
        } else {
            memcpy(buf + o, c, (size_t)n);
            o += (size_t)n;
            c += n;
        }
    }
    if (*c && size >= 4)
        o = o + 3 < size ? o : size - 4, memcpy(buf + o, "...", 3), o += 3;
    buf[o < size ? o : size - 1] = '\0';
    return buf;
}

#endif
