/* The leak kinds' names (SPEC section 5) and the --leak-kinds list that
 * report, check and run's gates accept. */
#include "leak_kinds.h"

#include <string.h>

const char *const leak_kind_names[MT_KIND_COUNT] = {"definite", "indirect", "possible",
                                                     "reachable", "unknown"};
int parse_leak_kinds(const char *list, unsigned *mask)
{
    unsigned m = 0;
    const char *p = list;
    while (*p) {
        size_t len = strcspn(p, ",");
        int found = 0;
        if (len == 3 && strncmp(p, "all", 3) == 0) {
            m |= (1u << MT_KIND_COUNT) - 1;
            found = 1;
        }
        for (int k = 0; k < MT_KIND_COUNT && !found; k++)
            if (strlen(leak_kind_names[k]) == len && strncmp(p, leak_kind_names[k], len) == 0) {
                m |= 1u << k;
                found = 1;
            }
        if (!found)
            return -1;
        p += len;
        if (*p == ',')
            p++;
    }
    if (!m)
        return -1;
    *mask = m;
    return 0;
}
