/* Is this program CPython? `memtrace run` asks before it starts the program,
 * to decide whether to set PYTHONMALLOC=malloc (SPEC section 10): a program
 * named python*, a script whose #! line runs python, or an ELF file that
 * is or embeds the interpreter. The interpreter itself defines Py_BytesMain in its dynamic symbols (Debian's
 * python3 links libpython statically and exports it), and a program that
 * embeds CPython names libpython in its DT_NEEDED entries. Reads the ELF
 * file's section headers only; anything unexpected answers "no".
 */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Reads section i's contents (at most limit bytes); NULL on failure. */
static void *read_section(int fd, const Elf64_Shdr *sh, size_t limit)
{
    if (sh->sh_size == 0 || sh->sh_size > limit)
        return NULL;
    void *buf = malloc(sh->sh_size + 1);
    if (buf && pread(fd, buf, sh->sh_size, (off_t)sh->sh_offset) != (ssize_t)sh->sh_size) {
        free(buf);
        return NULL;
    }
    if (buf)
        ((char *)buf)[sh->sh_size] = '\0';
    return buf;
}

static int scan_section(int fd, const Elf64_Shdr *shdrs, int count, int i)
{
    const Elf64_Shdr *sh = &shdrs[i];
    if ((sh->sh_type != SHT_DYNSYM && sh->sh_type != SHT_DYNAMIC) || sh->sh_link >= (unsigned)count)
        return 0;
    const size_t limit = 64u << 20;
    char *strings = read_section(fd, &shdrs[sh->sh_link], limit);
    void *data = strings ? read_section(fd, sh, limit) : NULL;
    size_t nstrings = strings ? shdrs[sh->sh_link].sh_size : 0;
    int found = 0;
    if (data && sh->sh_type == SHT_DYNSYM) {
        const Elf64_Sym *sym = data;
        for (size_t k = 0; k < sh->sh_size / sizeof *sym && !found; k++)
            found = sym[k].st_shndx != SHN_UNDEF && sym[k].st_name < nstrings &&
                    (strcmp(strings + sym[k].st_name, "Py_BytesMain") == 0 ||
                     strcmp(strings + sym[k].st_name, "Py_Main") == 0);
    } else if (data) {
        const Elf64_Dyn *dyn = data;
        for (size_t k = 0; k < sh->sh_size / sizeof *dyn && dyn[k].d_tag != DT_NULL && !found; k++)
            found = dyn[k].d_tag == DT_NEEDED && dyn[k].d_un.d_val < nstrings &&
                    strncmp(strings + dyn[k].d_un.d_val, "libpython", 9) == 0;
    }
    free(data);
    free(strings);
    return found;
}

/* A script whose #! line names python, or a wrapper named python*
 * (pyenv's shims, virtualenv launchers). */
static int looks_like_python(const char *path, int fd)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strncmp(base, "python", 6) == 0)
        return 1;
    char line[256];
    ssize_t n = pread(fd, line, sizeof line - 1, 0);
    if (n < 2 || line[0] != '#' || line[1] != '!')
        return 0;
    line[n] = '\0';
    line[strcspn(line, "\n")] = '\0';
    return strstr(line, "python") != NULL;
}

int program_is_python(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    if (looks_like_python(path, fd)) {
        close(fd);
        return 1;
    }
    Elf64_Ehdr eh;
    int found = 0;
    if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh &&
        memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS64 &&
        eh.e_shentsize == sizeof(Elf64_Shdr) && eh.e_shnum > 0 && eh.e_shnum < 4096) {
        Elf64_Shdr *shdrs = malloc(eh.e_shnum * sizeof *shdrs);
        size_t bytes = eh.e_shnum * sizeof *shdrs;
        if (shdrs && pread(fd, shdrs, bytes, (off_t)eh.e_shoff) == (ssize_t)bytes)
            for (int i = 0; i < eh.e_shnum && !found; i++)
                found = scan_section(fd, shdrs, eh.e_shnum, i);
        free(shdrs);
    }
    close(fd);
    return found;
}
