// Victim of the report test: leaks from a C++ method, whose name the report
// must show demangled. Prints "LEAK size function line".
#include <cstdio>

struct Widget {
    char *grow(unsigned long n);
};

static int grow_line;
char *volatile leak_sink; // global: the store cannot be optimized away

__attribute__((noinline)) char *Widget::grow(unsigned long n)
{
    grow_line = __LINE__; return new char[n];
}

int main()
{
    Widget w;
    leak_sink = w.grow(2003);
    leak_sink = nullptr; // lost
    std::printf("LEAK 2003 Widget::grow(unsigned long) %d\n", grow_line);
    return 0;
}
