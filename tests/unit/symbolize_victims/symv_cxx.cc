// Victim of test_symbolize (built -O0 -g): a C++ method allocates with
// new[], so the innermost frame is a mangled name the symbolizer must
// demangle. Prints "SITE size function line".
#include <cstdio>

#define AT_LINE(var, expr) ((var) = __LINE__, (expr))

static int grow_line;

class Widget
{
  public:
    void grow(unsigned long n);
    ~Widget()
    {
        delete[] data_;
    }

  private:
    char *data_ = nullptr;
};

__attribute__((noinline)) void Widget::grow(unsigned long n)
{
    delete[] data_;
    data_ = AT_LINE(grow_line, new char[n]);
}

int main()
{
    Widget w;
    w.grow(1004);
    std::printf("SITE 1004 Widget::grow(unsigned long) %d\n", grow_line);
    return 0;
}
