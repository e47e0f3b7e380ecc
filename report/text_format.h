/* Small helpers for numbers meant to be read: 1,234,567 and 1.2 MiB. */
#ifndef MEMTRACE_TEXT_FORMAT_H
#define MEMTRACE_TEXT_FORMAT_H

#include <stdint.h>
#include <stdio.h>

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

#endif
