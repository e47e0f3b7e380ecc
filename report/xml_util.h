/* Writing text into XML (the SVG exports, JUnit): one escaper for all. */
#ifndef MEMTRACE_XML_UTIL_H
#define MEMTRACE_XML_UTIL_H

#include <stddef.h>
#include <stdio.h>

/* Length of the valid UTF-8 sequence at s, or 0 if it is not one. */
static inline int utf8_length(const unsigned char *s)
{
    int n = s[0] < 0x80             ? 1
            : (s[0] & 0xe0) == 0xc0 ? 2
            : (s[0] & 0xf0) == 0xe0 ? 3
            : (s[0] & 0xf8) == 0xf0 ? 4
                                    : 0;
    if (n == 2 && s[0] < 0xc2)
        return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if (n == 3 && ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0)))
        return 0;
    if (n == 4 && ((s[0] == 0xf0 && s[1] < 0x90) || s[0] > 0xf4 || (s[0] == 0xf4 && s[1] >= 0x90)))
        return 0;
    return n;
}

/* The same, for the bytes [s, end): 0 when the sequence runs past end. */
static inline int utf8_length_n(const unsigned char *s, const unsigned char *end)
{
    int n = s[0] < 0x80             ? 1
            : (s[0] & 0xe0) == 0xc0 ? 2
            : (s[0] & 0xf0) == 0xe0 ? 3
            : (s[0] & 0xf8) == 0xf0 ? 4
                                    : 0;
    return n && end - s >= n ? utf8_length(s) : 0;
}

/* At most max bytes of text (up to its NUL) as XML character data or an
 * attribute value: markup characters escaped, and what XML 1.0 cannot hold
 * (control characters, invalid or cut UTF-8) as U+FFFD. */
static inline void xml_write_n(FILE *out, const char *text, size_t max)
{
    const unsigned char *c = (const unsigned char *)(text ? text : "");
    const unsigned char *end = c + max;
    while (c < end && *c) {
        int n = utf8_length(c);
        if (n == 0 || c + n > end || (*c < 0x20 && *c != '\n' && *c != '\t')) {
            fputs("\xef\xbf\xbd", out);
            c++;
            continue;
        }
        switch (*c) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&apos;", out); break;
        case '\n': fputs("&#10;", out); break;
        case '\t': fputs("&#9;", out); break;
        default: fwrite(c, 1, (size_t)n, out);
        }
        c += n;
    }
}

static inline void xml_write(FILE *out, const char *text) { xml_write_n(out, text, (size_t)-1 / 2); }

#endif
