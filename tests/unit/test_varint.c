/* Varint and zigzag encodings of the dump format. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "memtrace/varint.h"

int main(void)
{
    const uint64_t values[] = {0, 1, 127, 128, 255, 300, 16383, 16384, (1ull << 32) - 1,
                               1ull << 32, 0x7fffffffffffffffull, UINT64_MAX};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        unsigned char buf[MT_VARINT_MAX];
        size_t n = mt_varint_put(buf, values[i]);
        CHECK(n >= 1 && n <= MT_VARINT_MAX);
        uint64_t back = 0;
        CHECK(mt_varint_get(buf, buf + n, &back) == (int)n);
        CHECK(back == values[i]);
        /* every strict prefix is incomplete, never a wrong value */
        for (size_t k = 0; k < n; k++)
            CHECK(mt_varint_get(buf, buf + k, &back) == 0);
    }
    unsigned char eleven[11];
    memset(eleven, 0x80, sizeof eleven);
    uint64_t v;
    CHECK(mt_varint_get(eleven, eleven + sizeof eleven, &v) == -1);
    const int64_t signed_values[] = {0, 1, -1, 63, -64, 1000000, -1000000, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof signed_values / sizeof *signed_values; i++)
        CHECK(mt_unzigzag(mt_zigzag(signed_values[i])) == signed_values[i]);
    CHECK(mt_zigzag(-1) == 1 && mt_zigzag(1) == 2);
    return check_report();
}
