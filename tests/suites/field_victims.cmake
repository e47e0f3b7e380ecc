# Victims of the transparency comparison (tests/e2e/test_transparency_compare.py).
memtrace_victim(transp_probe SOURCES ${P}/transp_probe.c)
