/* How the gates and the CI reports name a process and a site (verdict.h). */
#define _GNU_SOURCE
#include "verdict.h"
#include "util.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

const char *gate_relative_path(const char *path)
{
    static char cwd[PATH_MAX];
    static size_t cwd_len;
    if (!cwd_len && getcwd(cwd, sizeof cwd))
        cwd_len = strlen(cwd);
    if (path && cwd_len > 1 && strncmp(path, cwd, cwd_len) == 0 && path[cwd_len] == '/')
        return path + cwd_len + 1;
    return path;
}


void gate_frame_where(const struct sym_frame *f, char *buf, size_t size)
{
    if (f->file && f->line > 0)
        snprintf(buf, size, "%s:%d", gate_relative_path(f->file), f->line);
    else if (f->file)
        snprintf(buf, size, "%s", gate_relative_path(f->file));
    else if (f->module)
        snprintf(buf, size, "%s+0x%llx", path_base_name(f->module),
                 (unsigned long long)f->module_offset);
    else
        snprintf(buf, size, "0x%llx", (unsigned long long)f->address);
}

void gate_site_where(const struct analysis *a, const struct site *s, char *buf, size_t size)
{
    const uint32_t *frames = site_frame_list(a, s);
    if (s->nframes == 0) {
        snprintf(buf, size, "(no stack)");
        return;
    }
    const struct sym_frame *f = &a->frames[frames[0]];
    for (uint32_t k = 0; k < s->nframes; k++)
        if (a->frames[frames[k]].function) {
            f = &a->frames[frames[k]];
            break;
        }
    char where[PATH_MAX + 64];
    gate_frame_where(f, where, sizeof where);
    if (f->function)
        snprintf(buf, size, "%s (%s)", f->function, where);
    else
        snprintf(buf, size, "%s", where);
}

void gate_process_name(const struct dump_reader *r, char *buf, size_t size)
{
    const char *prog = r->process.argc ? r->process.argv[0] : "?";
    snprintf(buf, size, "%s (pid %llu)", prog, (unsigned long long)r->process.pid);
}
