// Victim for the counting test: the C++17 aligned operator new and delete
// (std::align_val_t), single and array, nothrow, plain and sized aligned
// delete, and a class with alignas(64) whose new/delete the compiler routes to
// the aligned operators. libstdc++'s aligned new calls aligned_alloc with the
// size rounded up to the alignment; the recorded size is the C++ request.
// No failing nothrow new (see count_cxx.cc). Some blocks are leaked. No
// iostreams.
#include <cstddef>
#include <cstdint>
#include <new>

namespace
{

struct alignas(64) Line {
    char bytes[100]; // sizeof(Line) == 128
};

} // namespace

void *volatile keep[32];

int main()
{
    const std::align_val_t a64{64};
    const std::align_val_t a4096{4096};

    void *p = ::operator new(100, a64);
    ::operator delete(p, a64); // aligned delete
    void *q = ::operator new(100, a4096);
    ::operator delete(q, 100, a4096);  // sized aligned delete
    keep[0] = ::operator new(10, a64); // leaked: 10 bytes

    void *arr = ::operator new[](1000, a64);
    ::operator delete[](arr, a64);
    void *arr2 = ::operator new[](3000, a4096);
    ::operator delete[](arr2, 3000, a4096);
    keep[1] = ::operator new[](7, a4096); // leaked: 7 bytes

    void *nt = ::operator new(256, a64, std::nothrow);
    ::operator delete(nt, a64, std::nothrow);
    keep[2] = ::operator new[](33, a64, std::nothrow); // leaked

    Line *line = new Line;     // operator new(128, align 64)
    delete line;               // sized aligned delete
    Line *lines = new Line[9]; // operator new[](1152, 64)
    delete[] lines;
    keep[3] = new Line;    // leaked
    keep[4] = new Line[2]; // leaked
    return 0;
}
