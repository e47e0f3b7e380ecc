"""Prints what the e2e test needs to know about how it was started."""
import os
import sys

print("PYTHONMALLOC=%s" % os.environ.get("PYTHONMALLOC", ""))
print("allocator=%s" % sys._xoptions.get("allocator", ""))
words = [str(i) * 3 for i in range(5000)]  # PROBE LINE
print(len(words))
