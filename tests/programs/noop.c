/* libmt_noop.so: a library that does nothing. The real-program comparisons
 * (tests/e2e/mtlib.py) preload it, through symlinks whose names they choose,
 * in both the memtrace run and the valgrind run, so that the two LD_PRELOAD
 * strings the program sees have the same length.
 */
int mt_noop(void);

int mt_noop(void)
{
    return 0;
}
