// Victim for the transparency test: prints what a program can observe of its
// allocator, and must print exactly the same bytes with and without memtrace
// (SPEC section 3: the shim never changes pointers, alignment,
// malloc_usable_size, errno, or failure with ENOMEM / EINVAL).
//
// Printed: alignment of every allocation function's results (address modulo
// the alignment asked for and modulo 16 and 4096), malloc_usable_size of
// blocks of many sizes, the distance of a run of small blocks from the first
// one (the heap layout), mallinfo2's in-use and mmap'd byte counts, errno
// around successful calls, and the results and errno of the calls that must
// fail. The addresses themselves are never printed (ASLR).
#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <malloc.h>
#include <new>
#include <pthread.h>
#include <string>

namespace
{

volatile std::size_t huge = SIZE_MAX;
volatile std::size_t half = SIZE_MAX / 2 + 1;
volatile std::size_t odd_alignment = 24;

std::string out; // collected first, printed at the end

void line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void line(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    out += buf;
    out += '\n';
}

unsigned long mod(const void *p, std::uintptr_t m)
{
    return static_cast<unsigned long>(reinterpret_cast<std::uintptr_t>(p) % m);
}

void *thread_probe(void *)
{
    void *p = std::malloc(100);
    line("thread malloc(100): mod16=%lu usable=%zu", mod(p, 16), malloc_usable_size(p));
    std::free(p);
    return nullptr;
}

} // namespace

int main()
{
    // heap layout: distances of a run of small blocks from the first one,
    // with frees in between so that later blocks reuse earlier chunks
    void *run[24];
    for (int i = 0; i < 24; i++) {
        run[i] = std::malloc(static_cast<std::size_t>(i * 11 % 90));
        if (i % 4 == 3)
            std::free(run[i - 2]);
    }
    for (int i = 0; i < 24; i++)
        line(
            "layout %d: %+ld", i,
            static_cast<long>(reinterpret_cast<char *>(run[i]) - reinterpret_cast<char *>(run[0])));
    struct mallinfo2 mi = mallinfo2();
    line("mallinfo2: uordblks=%zu hblkhd=%zu hblks=%zu", mi.uordblks, mi.hblkhd, mi.hblks);

    const std::size_t sizes[] = {0,    1,    8,     24,     25,     40,    100,
                                 1000, 4095, 65536, 131071, 131072, 300000};
    for (std::size_t n : sizes) {
        void *m = std::malloc(n);
        void *c = std::calloc(1, n);
        void *r = std::realloc(std::malloc(3), n + 1);
        line("size %zu: malloc mod16=%lu usable=%zu | calloc mod16=%lu usable=%zu | realloc "
             "mod16=%lu usable=%zu",
             n, mod(m, 16), malloc_usable_size(m), mod(c, 16), malloc_usable_size(c), mod(r, 16),
             malloc_usable_size(r));
        std::free(m);
        std::free(c);
        std::free(r);
    }
    for (std::size_t align = 8; align <= 8192; align *= 2) {
        void *a = memalign(align, 100);
        void *b = aligned_alloc(align, align * 3);
        void *c = nullptr;
        int pm = posix_memalign(&c, align, 77);
        line("align %zu: memalign mod=%lu usable=%zu | aligned_alloc mod=%lu usable=%zu | "
             "posix_memalign=%d mod=%lu usable=%zu",
             align, mod(a, align), malloc_usable_size(a), mod(b, align), malloc_usable_size(b), pm,
             mod(c, align), malloc_usable_size(c));
        std::free(a);
        std::free(b);
        std::free(c);
    }
    void *v = valloc(10);
    void *pv = pvalloc(10);
    line("valloc mod4096=%lu usable=%zu | pvalloc mod4096=%lu usable=%zu", mod(v, 4096),
         malloc_usable_size(v), mod(pv, 4096), malloc_usable_size(pv));
    std::free(v);
    std::free(pv);

    char *one = new char;
    char *arr = new char[1000];
    void *zero = ::operator new(0);
    void *al = ::operator new (100, std::align_val_t{256});
    void *al_arr = ::operator new[](100, std::align_val_t{4096});
    line("new mod16=%lu usable=%zu | new[] mod16=%lu usable=%zu | new(0) non-null=%d usable=%zu",
         mod(one, 16), malloc_usable_size(one), mod(arr, 16), malloc_usable_size(arr),
         zero != nullptr, malloc_usable_size(zero));
    line("aligned new mod256=%lu usable=%zu | aligned new[] mod4096=%lu usable=%zu", mod(al, 256),
         malloc_usable_size(al), mod(al_arr, 4096), malloc_usable_size(al_arr));
    delete one;
    delete[] arr;
    ::operator delete(zero);
    ::operator delete (al, std::align_val_t{256});
    ::operator delete[](al_arr, std::align_val_t{4096});

    // errno survives successful calls
    errno = 1234;
    void *p = std::malloc(10);
    line("errno after malloc: %d", errno);
    p = std::realloc(p, 5000);
    line("errno after realloc: %d", errno);
    std::free(p);
    line("errno after free: %d", errno);
    std::free(nullptr);
    line("errno after free(NULL): %d", errno);
    p = std::calloc(3, 3);
    line("errno after calloc: %d", errno);
    std::free(p);
    p = nullptr;
    int pmr = posix_memalign(&p, 64, 64);
    line("errno after posix_memalign: %d (returned %d)", errno, pmr);
    std::free(p);
    char *cxx = new char[64];
    delete[] cxx;
    line("errno after new/delete: %d", errno);

    // calls that must fail, and how
    errno = 0;
    p = std::malloc(huge);
    line("malloc(SIZE_MAX): %s errno=%d", p ? "non-null" : "NULL", errno);
    errno = 0;
    p = std::calloc(half, 2);
    line("calloc overflow: %s errno=%d", p ? "non-null" : "NULL", errno);
    errno = 0;
    void *volatile keep = std::malloc(50);
    p = std::realloc(keep, huge);
    line("realloc(p, SIZE_MAX): %s errno=%d, block usable=%zu", p ? "non-null" : "NULL", errno,
         malloc_usable_size(keep));
    errno = 0;
    p = reallocarray(keep, half, 2);
    line("reallocarray overflow: %s errno=%d", p ? "non-null" : "NULL", errno);
    std::free(keep);
    errno = 0;
    p = nullptr;
    int bad = posix_memalign(&p, odd_alignment, 100);
    line("posix_memalign(align 24): returned %d (EINVAL=%d) errno=%d p=%s", bad, EINVAL, errno,
         p ? "set" : "NULL");
    errno = 0;
    p = std::malloc(huge / 2);
    line("malloc(SIZE_MAX/2): %s errno=%d", p ? "non-null" : "NULL", errno);
    errno = 0;
    p = ::operator new(huge, std::nothrow);
    line("nothrow new(SIZE_MAX): %s", p ? "non-null" : "NULL");
    try {
        p = ::operator new(huge);
        line("new(SIZE_MAX): returned");
    } catch (const std::bad_alloc &) {
        line("new(SIZE_MAX): threw bad_alloc");
    }
    line("malloc_usable_size(NULL)=%zu", malloc_usable_size(nullptr));

    pthread_t t;
    pthread_create(&t, nullptr, thread_probe, nullptr);
    pthread_join(t, nullptr);

    std::fputs(out.c_str(), stdout);
    return 0;
}
