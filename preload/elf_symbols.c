/* Finding a function by name for the inline hooks (hooks.c): in the full
 * symbol tables (.symtab and .dynsym) of the files of the loaded modules, so
 * that `static` functions, which the loader never sees, are found too.
 *
 * Each file is mapped read-only for the search and unmapped after it; the
 * executable is read through /proc/self/exe (it may have been deleted or
 * replaced). The executable is searched first, then the libraries in load
 * order, and the first module that defines the name wins, as symbol
 * resolution would have it; libmemtrace itself and the vdso are never
 * searched.
 *
 * Runs inside the traced process: no malloc, no stdio.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hooks.h"

struct search {
    const char *name;
    int main_only;
    int visit_main; /* 1: this pass looks at the executable only */
    uintptr_t own_base;
    struct mt_symbol *out;
    int found; /* distinct definitions seen in the module that defines it */
};

/* Adds the definitions of s->name in the symbol table sh of file image. */
static void scan_table(struct search *s, const unsigned char *image, size_t size,
                       const Elf64_Shdr *sections, unsigned nsections, const Elf64_Shdr *sh,
                       uintptr_t bias, const char *path)
{
    if (sh->sh_link >= nsections || sh->sh_entsize != sizeof(Elf64_Sym) ||
        sh->sh_offset > size || sh->sh_size > size - sh->sh_offset)
        return;
    const Elf64_Shdr *strtab = &sections[sh->sh_link];
    if (strtab->sh_offset > size || strtab->sh_size > size - strtab->sh_offset)
        return;
    const char *names = (const char *)image + strtab->sh_offset;
    size_t names_size = strtab->sh_size;
    size_t name_len = strlen(s->name);
    const Elf64_Sym *syms = (const void *)(image + sh->sh_offset);
    size_t count = sh->sh_size / sizeof *syms;
    for (size_t i = 0; i < count; i++) {
        const Elf64_Sym *sym = &syms[i];
        unsigned type = ELF64_ST_TYPE(sym->st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || sym->st_shndx == SHN_UNDEF ||
            sym->st_value == 0 || sym->st_name >= names_size ||
            names_size - sym->st_name <= name_len)
            continue;
        const char *n = names + sym->st_name;
        /* .dynsym names may carry no version; .symtab ones may ("f@@V1") */
        if (memcmp(n, s->name, name_len) != 0 || (n[name_len] != '\0' && n[name_len] != '@'))
            continue;
        uintptr_t address = bias + sym->st_value;
        if (s->found && s->out->address == address) { /* in .dynsym too */
            if (!s->out->size)
                s->out->size = sym->st_size;
            continue;
        }
        if (s->found == 0) {
            s->out->address = address;
            s->out->size = sym->st_size;
            s->out->is_ifunc = type == STT_GNU_IFUNC;
            size_t len = strlen(path);
            if (len >= sizeof s->out->module)
                len = sizeof s->out->module - 1;
            memcpy(s->out->module, path, len);
            s->out->module[len] = '\0';
        }
        s->found++;
    }
}

/* Searches one file. */
static void scan_file(struct search *s, const char *path, const char *shown, uintptr_t bias)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    void *map = MAP_FAILED;
    if (fstat(fd, &st) == 0 && st.st_size >= (off_t)sizeof(Elf64_Ehdr))
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED)
        return;
    size_t size = (size_t)st.st_size;
    const unsigned char *image = map;
    const Elf64_Ehdr *eh = map;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 && eh->e_ident[EI_CLASS] == ELFCLASS64 &&
        eh->e_shentsize == sizeof(Elf64_Shdr) && eh->e_shoff < size &&
        (size - eh->e_shoff) / sizeof(Elf64_Shdr) >= eh->e_shnum) {
        const Elf64_Shdr *sections = (const void *)(image + eh->e_shoff);
        /* .symtab first: it holds everything .dynsym does, and more */
        for (int pass = 0; pass < 2; pass++)
            for (unsigned i = 0; i < eh->e_shnum; i++)
                if (sections[i].sh_type == (pass == 0 ? SHT_SYMTAB : SHT_DYNSYM))
                    scan_table(s, image, size, sections, eh->e_shnum, &sections[i], bias, shown);
    }
    munmap(map, size);
}

static int visit_module(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct search *s = data;
    int is_main = info->dlpi_name == NULL || info->dlpi_name[0] == '\0';
    if (is_main != s->visit_main || s->found)
        return s->found != 0;
    if (is_main) {
        char path[4096];
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        path[n > 0 ? n : 0] = '\0';
        scan_file(s, "/proc/self/exe", path, info->dlpi_addr);
        return s->visit_main ? 1 : s->found != 0;
    }
    if (info->dlpi_addr == s->own_base || info->dlpi_name[0] != '/')
        return 0; /* ourselves; the vdso and other names that are not files */
    scan_file(s, info->dlpi_name, info->dlpi_name, info->dlpi_addr);
    return s->found != 0;
}

int mt_symbol_find(const char *name, int main_only, uintptr_t own_base, struct mt_symbol *out)
{
    memset(out, 0, sizeof *out);
    struct search s = {.name = name, .main_only = main_only, .visit_main = 1,
                       .own_base = own_base, .out = out};
    dl_iterate_phdr(visit_module, &s);
    if (!s.found && !main_only) {
        s.visit_main = 0;
        dl_iterate_phdr(visit_module, &s);
    }
    out->in_main = s.found && s.visit_main;
    return s.found;
}
