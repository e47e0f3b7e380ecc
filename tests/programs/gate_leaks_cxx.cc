// Victim of the suppression tests: C++ leaks through operator new (_Znwm)
// and operator new[] (_Znam), from functions whose mangled names valgrind
// suppression files use. Prints "LEAK size kind function line".
#include <cstdio>
#include <cstring>

struct Widget {
    char data[48];
    static Widget *make();
};

static int widget_line, array_line;
void *volatile sink; // the stores cannot be optimized away

__attribute__((noinline)) Widget *Widget::make() // _ZN6Widget4makeEv
{
    widget_line = __LINE__ + 1;
    Widget *w = new Widget();
    std::memset(w->data, 1, sizeof w->data);
    return w;
}

__attribute__((noinline)) int *make_array(int n) // _Z10make_arrayi
{
    array_line = __LINE__ + 1;
    int *a = new int[n];
    std::memset(a, 2, n * sizeof *a);
    return a;
}

void *volatile keep; // holds the last block: reachable

int main()
{
    sink = Widget::make();
    sink = make_array(30);
    sink = nullptr; // both lost
    // glibc's arena keeps a pointer to its top chunk, which starts in the
    // last 8 bytes of the block allocated last: let that block be one that
    // is reachable anyway
    keep = new char[16];
    std::printf("LEAK 48 definite Widget::make() %d\n", widget_line);
    std::printf("LEAK 120 definite make_array(int) %d\n", array_line);
    return 0;
}
