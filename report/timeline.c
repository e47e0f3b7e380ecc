/* The series of `memtrace timeline` (being written). */
