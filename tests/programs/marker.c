/* Victim for the bad-input tests: creates the file named by its argument and
 * exits 0, so a test can tell whether the program ran at all. Built twice:
 * `marker` (dynamic) and `marker_static` (-static, which memtrace must refuse).
 * No allocation of its own.
 */
#include <fcntl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return 3;
    close(fd);
    return 0;
}
