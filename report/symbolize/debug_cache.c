/* Debian's separate debug files (python3-dbg, libc6-dbg, the -dbgsym
 * packages) keep their DWARF sections zlib-compressed (SHF_COMPRESSED), and
 * libdw inflates every one of them each time a file is opened: python3.11's
 * 9 MB of sections come to 0.1 s of zlib in every report of a python3 dump,
 * half of the report of a small one. So, as perf keeps ~/.debug, the report
 * keeps a copy of each such file with its sections inflated, named by build
 * id, made the first time the file is found, and hands libdwfl the copy from
 * then on (libdwfl keeps the file its own search found, so not at once).
 *
 * A copy is written beside its final name and renamed into place only once
 * complete, so a copy found is whole; one whose build id is not its name's
 * is ignored (and replaced). Any failure (no home, read-only or full disk)
 * leaves the original file in use: the answers are the same either way.
 */
#define _GNU_SOURCE
#include "debug_cache.h"

#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

char *debug_cache_dir(void)
{
    const char *own = getenv("MEMTRACE_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    char *dir = NULL;
    int n;
    if (own)
        n = *own ? asprintf(&dir, "%s", own) : -1;
    else if (xdg && *xdg == '/')
        n = asprintf(&dir, "%s/memtrace", xdg);
    else if (home && *home == '/')
        n = asprintf(&dir, "%s/.cache/memtrace", home);
    else
        n = -1;
    return n < 0 ? NULL : dir;
}

/* A copy that would be larger is not made (a browser's debug file can
 * inflate to gigabytes): the file is read as it is. */
#define COPY_MAX ((uint64_t)512 << 20)

/* 1 if the ELF file has SHF_COMPRESSED sections, none of the older .zdebug
 * kind (left alone: rare, and libdw tells them by name), and its sections
 * inflated come to at most COPY_MAX bytes. */
static int worth_inflating(int fd)
{
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    int compressed = 0, gnu = 0;
    uint64_t total = 0;
    size_t strndx;
    if (elf && elf_kind(elf) == ELF_K_ELF && elf_getshdrstrndx(elf, &strndx) == 0) {
        for (Elf_Scn *scn = NULL; (scn = elf_nextscn(elf, scn));) {
            GElf_Shdr sh;
            GElf_Chdr ch;
            if (!gelf_getshdr(scn, &sh))
                continue;
            const char *name = elf_strptr(elf, strndx, sh.sh_name);
            gnu |= name && strncmp(name, ".zdebug", 7) == 0;
            if (sh.sh_type == SHT_NOBITS)
                continue;
            if ((sh.sh_flags & SHF_COMPRESSED) && gelf_getchdr(scn, &ch)) {
                compressed = 1;
                total += ch.ch_size;
            } else {
                total += sh.sh_size;
            }
        }
    }
    elf_end(elf);
    return compressed && !gnu && total <= COPY_MAX;
}

int elf_fd_matches(int fd, const unsigned char *id, size_t len)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    int ok = 0;
    if (elf && elf_kind(elf) == ELF_K_ELF) {
        const void *bits = NULL;
        ssize_t n = dwelf_elf_gnu_build_id(elf, &bits);
        ok = len == 0 || (n == (ssize_t)len && memcmp(bits, id, len) == 0);
    }
    elf_end(elf);
    return ok;
}

/* mkdir -p of dir/debug, private to the user. 0 or -1. */
static int make_dirs(const char *path)
{
    char *p = strdup(path);
    if (!p)
        return -1;
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0700) != 0 && errno != EEXIST) {
                free(p);
                return -1;
            }
            if (!(*s = c))
                break;
        }
    }
    free(p);
    return 0;
}

/* Writes the copy of src, sections inflated, at tmp. 0 or -1. */
static int write_inflated(int src, const char *tmp)
{
    struct stat st;
    int out = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0)
        return -1;
    int ok = fstat(src, &st) == 0;
    for (off_t at = 0; ok && at < st.st_size;) {
        ssize_t n = sendfile(out, src, &at, (size_t)(st.st_size - at));
        ok = n > 0;
    }
    Elf *elf = ok ? elf_begin(out, ELF_C_RDWR, NULL) : NULL;
    ok = elf && elf_kind(elf) == ELF_K_ELF;
    for (Elf_Scn *scn = NULL; ok && (scn = elf_nextscn(elf, scn));) {
        GElf_Shdr sh;
        ok = gelf_getshdr(scn, &sh) != NULL;
        if (ok && (sh.sh_flags & SHF_COMPRESSED))
            ok = elf_compress(scn, 0, 0) == 1;
    }
    ok = ok && elf_update(elf, ELF_C_WRITE) >= 0;
    elf_end(elf);
    ok = close(out) == 0 && ok;
    return ok ? 0 : -1;
}

/* dir/debug and dir/debug/HEX.debug for build id (id, len): 0, or -1 when
 * out of memory or the id is unusable. */
static int cache_paths(const char *dir, const unsigned char *id, size_t len, char **debug_dir,
                       char **path)
{
    char hex[2 * 64 + 1];
    if (!dir || len == 0 || len > 64)
        return -1;
    for (size_t i = 0; i < len; i++)
        sprintf(hex + 2 * i, "%02x", id[i]);
    *debug_dir = *path = NULL;
    if (asprintf(debug_dir, "%s/debug", dir) < 0) {
        *debug_dir = NULL;
        return -1;
    }
    if (asprintf(path, "%s/%s.debug", *debug_dir, hex) < 0) {
        free(*debug_dir);
        *debug_dir = *path = NULL;
        return -1;
    }
    return 0;
}

int debug_cache_open(const char *dir, const unsigned char *id, size_t len, char **name)
{
    char *debug_dir, *path;
    if (cache_paths(dir, id, len, &debug_dir, &path) != 0)
        return -1;
    free(debug_dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd >= 0 && !elf_fd_matches(fd, id, len)) {
        close(fd);
        fd = -1;
    }
    if (fd < 0)
        free(path);
    else
        *name = path;
    return fd;
}

void debug_cache_add(const char *dir, const char *debug_file, const unsigned char *id, size_t len)
{
    char *debug_dir, *path, *tmp = NULL;
    if (cache_paths(dir, id, len, &debug_dir, &path) != 0)
        return;
    int src = open(debug_file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (src >= 0 && elf_fd_matches(src, id, len) && worth_inflating(src) &&
        make_dirs(debug_dir) == 0 &&
        asprintf(&tmp, "%s.%d.tmp", path, (int)getpid()) >= 0) {
        if (write_inflated(src, tmp) != 0 || rename(tmp, path) != 0)
            unlink(tmp);
    }
    if (src >= 0)
        close(src);
    free(tmp);
    free(debug_dir);
    free(path);
}
