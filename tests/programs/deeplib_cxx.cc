// The C++ library that deepbind_main loads with RTLD_DEEPBIND: its
// operators new and delete bind to libstdc++'s, past any preloaded library.
//
// deep_cxx_run(n): n rounds of new int, new char[64 + i % 5], a
// std::string of 100 characters and a nothrow new double; all deleted
// but the char arrays of every fifth round, kept (reachable). Then a
// new char[777] whose pointer is dropped (definitely lost), and a last
// new/delete pair. Returns 0.
#include <new>
#include <string>

static char *kept[1024];
static char *volatile sink;

extern "C" long deep_cxx_run(long n);

__attribute__((noinline)) static void deep_cxx_leak()
{
    sink = new char[777];
    sink = nullptr;
}

extern "C" long deep_cxx_run(long n)
{
    int k = 0;
    for (long i = 0; i < n && i < 10000; i++) {
        int *a = new int(7);
        char *b = new char[64 + i % 5];
        std::string s(100, 'x');
        double *d = new (std::nothrow) double(1.0);
        if (i % 5 == 0 && k < 1024)
            kept[k++] = b;
        else
            delete[] b;
        delete a;
        delete d;
    }
    deep_cxx_leak();
    delete new int(1);
    return 0;
}
