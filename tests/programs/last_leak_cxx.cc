/* last_leak.c built as C++: adds FUNCTION "new" (operator new[]). */
#include "last_leak.c"
