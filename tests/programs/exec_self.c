/* Victim for the exec test: the same process execs the same program, so the
 * second dump is named with ".1" before ".mtr" (SPEC: same pid, same name).
 *
 *   exec_self first   allocates 111 and 222 bytes, frees the 111, execs
 *                     itself with "second" (the 222 block is live at exec)
 *   exec_self second  allocates 333 and 444 bytes, frees the 444, exits 0
 * No stdio.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void *volatile keep[4];

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    if (strcmp(argv[1], "first") == 0) {
        void *a = malloc(111);
        keep[0] = malloc(222);
        free(a);
        char *args[] = {argv[0], "second", NULL};
        execv(argv[0], args); /* run it by path, as the tests do */
        return 127;
    }
    if (strcmp(argv[1], "second") == 0) {
        keep[1] = malloc(333);
        void *b = malloc(444);
        free(b);
        return 0;
    }
    return 2;
}
