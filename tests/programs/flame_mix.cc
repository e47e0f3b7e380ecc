// Victim of the flame graph test (tests/e2e/test_flamegraph.py): one run
// with something for every metric, from the program, from a library
// (libflame_lib.so), from libc (strdup) and from a C++ template whose
// demangled name holds the characters XML must escape ('<', '>', '&').
//   leaked      strdup in parse_config (libc), flame_lib_make x3 (library),
//               Pool<Item&>::make x10 (program)
//   peak        a 1 MiB block in peak_phase, freed before exit
//   temporary   100 malloc/free pairs in churn
#include <cstdlib>
#include <cstring>
#include <type_traits>

extern "C" void *flame_lib_make(size_t n);

struct Item {
    char data[48];
};

template <typename T> struct Pool {
    typedef typename std::remove_reference<T>::type value_type;
    value_type *make(size_t n)
    {
        return new value_type[n];
    }
};

static void *sink[64];
static int nsink;

static void keep(void *p)
{
    sink[nsink++ % 64] = p;
}

static void parse_config(const char *text)
{
    keep(strdup(text));
}

static void load_table()
{
    for (int i = 0; i < 3; i++)
        keep(flame_lib_make(1000));
}

static void cache_fill()
{
    Pool<Item &> pool;
    for (int i = 0; i < 10; i++)
        keep(pool.make(2));
}

static void churn()
{
    for (int i = 0; i < 100; i++) {
        char *p = static_cast<char *>(malloc(32));
        memset(p, i, 32);
        free(p);
    }
}

static void peak_phase()
{
    char *big = static_cast<char *>(malloc(1 << 20));
    memset(big, 1, 1 << 20);
    free(big);
}

int main()
{
    parse_config("name = flame; size = 1000");
    load_table();
    cache_fill();
    churn();
    peak_phase();
    return 0;
}
