// Victim for the counting test: C++ operator new and delete, reported as the
// C++ call and not as the malloc under it (SPEC section 4).
//
// new/delete, new[]/delete[] (with and without an array cookie), nothrow new
// (a failing one is left out: libstdc++ implements it by catching bad_alloc,
// whose exception object is a real malloc that valgrind, replacing operator
// new wholesale, never sees), operator new(0) (libstdc++ asks malloc for
// 1 byte; the recorded size is 0), sized delete (built with
// -fsized-deallocation). Some blocks are leaked. No iostreams.
#include <cstddef>
#include <cstdint>
#include <new>

namespace
{

volatile std::size_t zero = 0;

struct Node {
    Node *next;
    long payload[5];
};

struct WithDestructor {
    int value = 0;
    ~WithDestructor()
    {
        value = -1;
    } // non-trivial: new[] stores a cookie
};

} // namespace

void *volatile keep[32];

int main()
{
    Node *head = nullptr;
    for (int i = 0; i < 50; i++) {
        Node *n = new Node();
        n->next = head;
        head = n;
    }
    for (int i = 0; i < 40; i++) { // delete 40 of 50: 10 leaked
        Node *n = head;
        head = n->next;
        delete n; // sized delete: operator delete(void*, size_t)
    }
    keep[0] = head;

    int *ints = new int[1000];
    delete[] ints;
    keep[1] = new int[3]; // leaked: 12 bytes

    WithDestructor *objs = new WithDestructor[17]; // 68 bytes + 8-byte cookie
    delete[] objs;                                 // sized delete[]
    keep[2] = new WithDestructor[5];               // leaked

    void *raw = ::operator new(zero); // 0 bytes as counted by valgrind
    ::operator delete(raw);
    keep[3] = ::operator new[](zero); // leaked 0-byte block

    void *sized = ::operator new(48);
    ::operator delete(sized, 48); // explicit sized delete
    void *sized_arr = ::operator new[](96);
    ::operator delete[](sized_arr, 96);

    char *nt = new (std::nothrow) char[300];
    delete[] nt;
    keep[4] = new (std::nothrow) long(7); // leaked

    void *big = ::operator new(500000); // mmap'd underneath
    ::operator delete(big, 500000);
    return 0;
}
