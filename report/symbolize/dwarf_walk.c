/* The DWARF side of the symbolizer (symbolize_state.h): finding a module's
 * file and its debug info (build id, debuglink, the cache of inflated debug
 * files), opening it with its own Dwfl, and the walk from an address to its
 * function, file, line and inlined callers. */
#define _GNU_SOURCE
#include "symbolize_state.h"

#include "debug_cache.h"
#include "util.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <libelf.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ finding files */

/* 1 when path is a regular ELF file whose GNU build id is id (any build id,
 * or none, when len is 0). Never blocks on a FIFO, never trusts a bad file. */
static int elf_file_matches(const char *path, const unsigned char *id, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return 0;
    int ok = elf_fd_matches(fd, id, len);
    close(fd);
    return ok;
}


/* The debug file of build id (id, len) in the local debug directories:
 * DIR/.build-id/xx/yyyy.debug in debug_dir, the sysroot's /usr/lib/debug and
 * /usr/lib/debug, then debug_dir/NAME.debug. malloc'd path, or NULL. */
static char *find_debug_by_build_id(struct symbolizer *s, const char *path, const unsigned char *id,
                                    size_t len)
{
    char hex[2 * 64 + 2];
    if (len == 0 || len > 64)
        return NULL;
    for (size_t i = 0, o = 0; i < len; i++) {
        o += (size_t)sprintf(hex + o, "%02x", id[i]);
        if (i == 0)
            hex[o++] = '/';
    }
    char *sys_debug = s->sysroot ? sym_concat(s->sysroot, "/usr/lib/debug", NULL) : NULL;
    const char *dirs[] = {s->debug_dir, sys_debug, "/usr/lib/debug"};
    char *found = NULL;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0] && !found; i++) {
        if (!dirs[i])
            continue;
        char *dir = sym_concat(dirs[i], "/.build-id/", NULL);
        char *candidate = dir ? sym_concat(dir, hex, ".debug") : NULL;
        free(dir);
        if (candidate && elf_file_matches(candidate, id, len))
            found = candidate;
        else
            free(candidate);
    }
    free(sys_debug);
    if (!found && s->debug_dir) {
        char *dir = sym_concat(s->debug_dir, "/", path_base_name(path));
        char *candidate = dir ? sym_concat(dir, ".debug", NULL) : NULL;
        free(dir);
        if (candidate && elf_file_matches(candidate, id, len))
            found = candidate;
        else
            free(candidate);
    }
    return found;
}

/* libdwfl's find_debuginfo callback: the standard search (the file itself,
 * .gnu_debuglink beside it and under /usr/lib/debug, .build-id directories of
 * the debuginfo path, debuginfod), then what it cannot know: debug_dir/LINK,
 * SYSROOT/usr/lib/debug/DIR/LINK, and the build id search of
 * find_debug_by_build_id. Those candidates must carry the module's build id. */
int sym_find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                          const char *file_name, const char *debuglink_file,
                          GElf_Word debuglink_crc, char **debuginfo_file_name)
{
    struct module_file *f = *userdata;
    struct symbolizer *s = f ? f->owner : NULL;
    const unsigned char *id = NULL;
    GElf_Addr id_vaddr;
    int len = dwfl_module_build_id(mod, &id, &id_vaddr);
    int fd = s && len > 0 ? debug_cache_open(s->cache_dir, id, (size_t)len, debuginfo_file_name) : -1;
    if (fd >= 0)
        return fd;
    fd = dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name, debuglink_file,
                                      debuglink_crc, debuginfo_file_name);
    if (fd >= 0 && s && len > 0 && *debuginfo_file_name)
        debug_cache_add(s->cache_dir, *debuginfo_file_name, id, (size_t)len);
    if (fd >= 0 || !s || len <= 0)
        return fd;
    char *link =
        debuglink_file ? strdup(debuglink_file) : sym_concat(path_base_name(f->path), ".debug", NULL);
    char *dir = strndup(f->path, (size_t)(path_base_name(f->path) - f->path));
    char *candidates[3] = {NULL, NULL, NULL};
    if (link && dir) {
        if (s->debug_dir)
            candidates[0] = sym_concat(s->debug_dir, "/", link);
        if (s->sysroot) {
            char *root = sym_concat(s->sysroot, "/usr/lib/debug/", dir);
            candidates[1] = root ? sym_concat(root, "/", link) : NULL;
            free(root);
        }
    }
    candidates[2] = find_debug_by_build_id(s, f->path, id, (size_t)len);
    free(link);
    free(dir);
    for (size_t i = 0; i < 3; i++) {
        if (fd < 0 && candidates[i] && elf_file_matches(candidates[i], id, (size_t)len)) {
            fd = open(candidates[i], O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                *debuginfo_file_name = candidates[i];
                continue;
            }
        }
        free(candidates[i]);
    }
    if (fd >= 0)
        debug_cache_add(s->cache_dir, *debuginfo_file_name, id, (size_t)len);
    return fd;
}

/* ------------------------------------------------------------------ opening modules */

/* Makes (dwfl, mod) the module file's view, or ends dwfl when the module
 * has no usable ELF. 0 or -1. */
static int file_adopt(struct module_file *f, Dwfl *dwfl, Dwfl_Module *mod)
{
    void **userdata = NULL;
    Dwarf_Addr bias;
    if (mod && dwfl_module_info(mod, &userdata, NULL, NULL, NULL, NULL, NULL, NULL) && userdata)
        *userdata = f;
    if (!mod || !dwfl_module_getelf(mod, &bias)) {
        dwfl_end(dwfl);
        return -1;
    }
    f->dwfl = dwfl;
    f->mod = mod;
    f->bias = bias;
    return 0;
}

/* Reports one ELF file (the module itself, or a debug file standing in for
 * it) at its link-time addresses. 0 or -1. */
static int file_report_elf(struct symbolizer *s, struct module_file *f, const char *file)
{
    Dwfl *dwfl = dwfl_begin(&s->callbacks);
    if (!dwfl)
        return -1;
    dwfl_report_begin(dwfl);
    Dwfl_Module *mod = dwfl_report_elf(dwfl, f->path, file, -1, 0, false);
    if (dwfl_report_end(dwfl, NULL, NULL) != 0)
        mod = NULL;
    return file_adopt(f, dwfl, mod);
}

/* Reports the module by build id alone: libdwfl then looks for the ELF in
 * .build-id directories and through debuginfod (when DEBUGINFOD_URLS is set),
 * and its debug info as usual. 0 or -1. */
static int file_report_build_id(struct symbolizer *s, struct module_file *f)
{
    if (f->high <= f->low)
        return -1;
    Dwfl *dwfl = dwfl_begin(&s->callbacks);
    if (!dwfl)
        return -1;
    dwfl_report_begin(dwfl);
    Dwfl_Module *mod = dwfl_report_module(dwfl, f->path, f->low, f->high);
    if (mod && dwfl_module_report_build_id(mod, f->build_id, f->build_id_len, 0) != 0)
        mod = NULL;
    if (dwfl_report_end(dwfl, NULL, NULL) != 0)
        mod = NULL;
    return file_adopt(f, dwfl, mod);
}

/* Opens a module file on its first lookup: the file at sysroot + path when
 * its build id matches the recorded one; else a debug file found by build id;
 * else whatever libdwfl finds by build id. When nothing is found, lookups in
 * it give module+offset frames. */
void sym_file_open(struct symbolizer *s, struct module_file *f)
{
    f->tried = 1;
    if (!f->no_file) {
        char *local;
        if (!s->sysroot)
            local = strdup(f->path);
        else
            local = sym_concat(s->sysroot, f->path[0] == '/' ? "" : "/", f->path);
        if (local && elf_file_matches(local, f->build_id, f->build_id_len))
            file_report_elf(s, f, local);
        free(local);
    }
    if (f->dwfl || f->build_id_len == 0)
        return;
    char *debug = find_debug_by_build_id(s, f->path, f->build_id, f->build_id_len);
    if (debug)
        file_report_elf(s, f, debug);
    free(debug);
    if (!f->dwfl)
        file_report_build_id(s, f);
}

void sym_file_release(struct module_file *f)
{
    if (f->dwfl)
        dwfl_end(f->dwfl);
    f->dwfl = NULL;
    f->mod = NULL;
    f->tried = 0;
}

/* ------------------------------------------------------------------ DWARF */

/* A source path from DWARF, made absolute with the CU's directory when it
 * is relative. */
static const char *source_path(struct symbolizer *s, Dwarf_Die *cu, const char *src)
{
    if (!src || src[0] == '/' || !cu)
        return sym_intern(s, src);
    Dwarf_Attribute attr;
    const char *dir = dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &attr));
    if (!dir || dir[0] != '/')
        return sym_intern(s, src);
    char *full = sym_concat(dir, "/", src);
    const char *r = sym_intern(s, full ? full : src);
    free(full);
    return r;
}

/* The name of a subprogram or inlined subroutine: a mangled linkage name,
 * demangled, gives C++ its scope and parameters; else DW_AT_name, the name
 * in the source (C linkage names are asm labels, glibc's "__GI_malloc").
 * Both are looked for through DW_AT_abstract_origin and DW_AT_specification. */
static const char *die_function(struct symbolizer *s, Dwarf_Die *die)
{
    Dwarf_Attribute attr;
    const char *linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
    if (!linkage)
        linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
    if (linkage && linkage[0] == '_' && linkage[1] == 'Z')
        return sym_intern_function(s, linkage);
    const char *name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &attr));
    return sym_intern_function(s, name ? name : linkage);
}

/* Where an inlined subroutine was called: DW_AT_call_file and
 * DW_AT_call_line, the caller's file and line. */
static void call_site(struct symbolizer *s, Dwarf_Die *die, const char **file, int *line)
{
    Dwarf_Attribute attr;
    Dwarf_Word value;
    Dwarf_Die cu;
    Dwarf_Files *files;
    size_t nfiles;
    *file = NULL;
    *line = 0;
    if (dwarf_formudata(dwarf_attr(die, DW_AT_call_file, &attr), &value) == 0 &&
        dwarf_diecu(die, &cu, NULL, NULL) && dwarf_getsrcfiles(&cu, &files, &nfiles) == 0 &&
        value < nfiles)
        *file = source_path(s, &cu, dwarf_filesrc(files, value, NULL, NULL));
    if (dwarf_formudata(dwarf_attr(die, DW_AT_call_line, &attr), &value) == 0 && value <= INT_MAX)
        *line = (int)value;
}

/* Collects in chain[n..] the function-like DIEs (subprograms, inlined
 * subroutines) under parent whose ranges hold pc, outermost first, down to
 * the innermost. Namespaces, classes and modules have no ranges but may hold
 * functions (Rust, some C++): they are searched through. Returns the new n.
 *
 * Our own walk rather than dwarf_getscopes: in elfutils 0.188 that leaks its
 * result and returns nothing when it cannot find an inline's abstract origin
 * (often, in LTO builds), and it gives the abstract nesting where we want the
 * concrete one. */
static int scope_chain(Dwarf_Die *parent, Dwarf_Addr pc, Dwarf_Die *chain, int n, int depth)
{
    Dwarf_Die child;
    if (depth > 2 * MAX_FRAMES || dwarf_child(parent, &child) != 0)
        return n;
    do {
        switch (dwarf_tag(&child)) {
        case DW_TAG_namespace:
        case DW_TAG_module:
        case DW_TAG_class_type:
        case DW_TAG_structure_type:
        case DW_TAG_union_type:
        case DW_TAG_interface_type: {
            int found = scope_chain(&child, pc, chain, n, depth + 1);
            if (found > n)
                return found;
            break;
        }
        case DW_TAG_subprogram:
        case DW_TAG_inlined_subroutine:
        case DW_TAG_entry_point:
        case DW_TAG_lexical_block:
        case DW_TAG_try_block:
        case DW_TAG_catch_block:
        case DW_TAG_with_stmt:
            if (dwarf_haspc(&child, pc) != 1)
                break;
            if (dwarf_tag(&child) != DW_TAG_lexical_block && n < MAX_FRAMES)
                chain[n++] = child;
            return scope_chain(&child, pc, chain, n, depth + 1);
        default:
            break;
        }
    } while (dwarf_siblingof(&child, &child) == 0);
    return n;
}

/* The frames of pc (a CU-relative address): the innermost inlined
 * subroutine first, with the line of pc, then each caller with the line of
 * its call, up to the innermost subprogram. Returns how many frames, 0 when
 * no function of the CU holds pc. */
static int expand_scopes(struct symbolizer *s, Dwarf_Die *cudie, Dwarf_Addr pc, const char *file,
                         int line, struct cached_frame *frames)
{
    Dwarf_Die chain[MAX_FRAMES];
    int nchain = scope_chain(cudie, pc, chain, 0, 0);
    int n = 0;
    for (int i = nchain - 1; i >= 0; i--) {
        Dwarf_Die *die = &chain[i];
        if (dwarf_tag(die) == DW_TAG_inlined_subroutine) {
            frames[n++] = (struct cached_frame){die_function(s, die), file, line, 1};
            call_site(s, die, &file, &line);
        } else {
            frames[n++] = (struct cached_frame){die_function(s, die), file, line, 0};
            break;
        }
    }
    return n;
}

/* Symbolizes pc, a link-time address of an open module file, into frames.
 * DWARF when there is some; else the ELF symbol table. Returns >= 1. */
int sym_resolve(struct symbolizer *s, struct module_file *f, uint64_t pc,
                   struct cached_frame *frames)
{
    Dwarf_Addr addr = pc + f->bias;
    const char *file = NULL;
    int line = 0;
    Dwfl_Line *row = dwfl_module_getsrc(f->mod, addr);
    if (row) {
        const char *src = dwfl_lineinfo(row, NULL, &line, NULL, NULL, NULL);
        file = source_path(s, dwfl_linecu(row), src);
    }
    int n = 0;
    Dwarf_Addr cu_bias = 0;
    Dwarf_Die *cudie = dwfl_module_addrdie(f->mod, addr, &cu_bias), split;
    uint8_t unit_type;
    /* -gsplit-dwarf: the functions are in the skeleton's split unit (.dwo) */
    if (cudie && dwarf_cu_info(cudie->cu, NULL, &unit_type, NULL, &split, NULL, NULL, NULL) == 0 &&
        unit_type == DW_UT_skeleton && split.cu)
        cudie = &split;
    if (cudie)
        n = expand_scopes(s, cudie, addr - cu_bias, file, line, frames);
    if (n == 0)
        frames[n++] = (struct cached_frame){NULL, file, line, 0};
    if (!frames[n - 1].function)
        frames[n - 1].function = sym_intern_function(s, dwfl_module_addrname(f->mod, addr));
    return n;
}
