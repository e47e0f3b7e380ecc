/* Reading /proc/self/maps from inside the traced process: plain open/read
 * into the caller's buffer, no stdio and no malloc, so it is safe while the
 * heap must not change and in a signal handler. Used for a thread's stack
 * bounds (ring_writer.c) and for the scan's roots (scan.c). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

uintptr_t mt_parse_hex(const char **p)
{
    uintptr_t v = 0;
    for (;; (*p)++) {
        char c = **p;
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0)
            return v;
        v = v * 16 + (uintptr_t)d;
    }
}

int mt_maps_each(char *buf, size_t size, int (*fn)(const char *line, void *arg), void *arg)
{
    struct mt_thread *t = &mt_thread_state;
    mt_cancel_off(t); /* open, read and close are cancellation points */
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        mt_cancel_on(t);
        return -1;
    }
    size_t len = 0;
    int stop = 0;
    while (!stop) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        char *line = buf, *nl;
        while (!stop && (nl = strchr(line, '\n'))) {
            *nl = '\0';
            stop = fn(line, arg);
            line = nl + 1;
        }
        len = (size_t)(buf + len - line);
        memmove(buf, line, len);
    }
    close(fd);
    mt_cancel_on(t);
    return 0;
}
