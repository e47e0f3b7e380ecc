/* dlopen, dlmopen, dlsym and dlvsym without becoming their caller (the C
 * side of dl_stubs.S), and the work a new module leaves for later.
 *
 * The stubs jump to libc's functions with the program's return address in
 * place, so glibc sees the program as the caller (its RUNPATH, $ORIGIN,
 * namespace, RTLD_NEXT) exactly as without the shim. The shim gets control
 * only before the real call: it cannot act when the new module is ready.
 * What a new module needs is therefore done lazily, by mt_dl_catch_up, at
 * the first event recorded after the change (any thread) or the next call of
 * a stub, whichever comes first:
 *   - modules.c announces it (LOAD records) before the first stack that may
 *     point into it, as it always did (mt_stack_intern);
 *   - cached unwind rules are dropped (mt_unwind_code_changed);
 *   - CPython loaded by dlopen is looked for (mt_python_setup);
 *   - a module that bypasses the shim (RTLD_DEEPBIND) gets its allocation
 *     calls rebound to the shim (got_patch.c).
 * A module found while another thread is still relocating it (the loader
 * lists a module as soon as it is mapped) is left for the next time: glibc
 * lists a module for _dl_find_object only once it is relocated.
 *
 * libc's functions are found in libc's own symbol table, not with dlsym
 * (which is one of the stubs): the first call may come before anything is
 * initialized, from the shim's own dlsym.
 *
 * Runs inside the traced process: no malloc, no stdio.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stddef.h>
#include <unistd.h>

#include "loader.h"

unsigned mt_dl_pending;

/* glibc 2.35 and later; weak so the test below can be made */
extern int _dl_find_object(void *address, struct dl_find_object *result) __attribute__((weak));

/* ---- libc's dlopen, dlmopen, dlsym, dlvsym ------------------------------- */

struct libc_search {
    uintptr_t address;
    struct mt_elf elf;
    int found;
};

static int find_module_of(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct libc_search *s = data;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && s->address >= start && s->address < start + ph->p_memsz) {
            s->found = mt_elf_read(info, &s->elf) == 0;
            return 1;
        }
    }
    return 0;
}

/* libc: the module that defines dl_iterate_phdr. */
void *mt_libc_symbol(const char *name)
{
    struct libc_search s = {(uintptr_t)&dl_iterate_phdr, {0}, 0};
    dl_iterate_phdr(find_module_of, &s);
    return s.found ? mt_elf_lookup(&s.elf, name) : NULL;
}

/* libc's function name, cached. Without it the process cannot go on. */
static void *libc_function(void **cache, const char *name)
{
    void *f = __atomic_load_n(cache, __ATOMIC_RELAXED);
    if (MT_LIKELY(f != NULL))
        return f;
    f = mt_libc_symbol(name);
    if (!f) {
        mt_log("cannot find %s in the C library; the process cannot go on", name);
        _exit(127);
    }
    __atomic_store_n(cache, f, __ATOMIC_RELAXED);
    return f;
}

static void *real_dlopen, *real_dlmopen, *real_dlsym, *real_dlvsym;

/* ---- catching up ---------------------------------------------------------- */

static int catch_up_lock;

int mt_dl_code_ready(const void *address)
{
    struct dl_find_object found;
    if (!_dl_find_object) /* glibc before 2.35: cannot tell */
        return 1;
    return _dl_find_object((void *)address, &found) == 0;
}

void mt_dl_catch_up(struct mt_thread *t)
{
    if (mt_state != MT_STATE_ACTIVE || __atomic_exchange_n(&catch_up_lock, 1, __ATOMIC_ACQUIRE))
        return; /* another thread is at it */
    unsigned work = __atomic_exchange_n(&mt_dl_pending, 0, __ATOMIC_ACQ_REL);
    unsigned again = 0;
    if (work) {
        t->guard++;
        mt_unwind_code_changed(); /* cached rules may name code that moved */
        if ((work & MT_DL_PYTHON) && mt_python_setup(NULL))
            again |= MT_DL_PYTHON;
        if (work & MT_DL_PATCH)
            again |= mt_got_patch_new_modules();
        t->guard--;
    }
    if (again)
        __atomic_or_fetch(&mt_dl_pending, again, __ATOMIC_RELAXED);
    __atomic_store_n(&catch_up_lock, 0, __ATOMIC_RELEASE);
}

void mt_dl_after_fork(void)
{
    /* a thread that held it is not in the child */
    __atomic_store_n(&catch_up_lock, 0, __ATOMIC_RELAXED);
}

/* Before a stub jumps: catch up on earlier changes when this thread is in
 * the program's own code (not inside the shim, not in a signal handler that
 * interrupted it). */
static void before_call(void)
{
    struct mt_thread *t = &mt_thread_state;
    if (MT_UNLIKELY(__atomic_load_n(&mt_dl_pending, __ATOMIC_RELAXED)) && !t->guard &&
        !t->in_record && !t->in_hook) {
        t->in_record++;
        mt_dl_catch_up(t);
        t->in_record--;
    }
}

/* ---- the stubs' before functions (dl_stubs.S) ---------------------------- */

void *mt_dl_before_open(const char *file, int flags) MT_HIDDEN;
void *mt_dl_before_mopen(long ns, const char *file, int flags) MT_HIDDEN;
void *mt_dl_before_sym(void) MT_HIDDEN;
void *mt_dl_before_vsym(void) MT_HIDDEN;

void *mt_dl_before_open(const char *file, int flags)
{
    (void)file;
    (void)flags;
    before_call();
    mt_dl_note_change(); /* for whatever this call loads */
    return libc_function(&real_dlopen, "dlopen");
}

void *mt_dl_before_mopen(long ns, const char *file, int flags)
{
    (void)ns;
    (void)file;
    (void)flags;
    before_call();
    mt_dl_note_change();
    return libc_function(&real_dlmopen, "dlmopen");
}

void *mt_dl_before_sym(void)
{
    before_call();
    return libc_function(&real_dlsym, "dlsym");
}

void *mt_dl_before_vsym(void)
{
    before_call();
    return libc_function(&real_dlvsym, "dlvsym");
}
