# Issue 18 points 11-13: hostile peers, crafted dumps, output encodings.
memtrace_e2e(hostile.crafted_dumps test_crafted_dumps.py TIMEOUT 600)
memtrace_e2e(hostile.peers test_hostile_peers.py TIMEOUT 300)
memtrace_e2e(hostile.encodings test_output_encodings.py)
# needs root (it makes a user and attacks root's consumer): exit 77 otherwise
set_tests_properties(e2e.hostile.peers PROPERTIES SKIP_RETURN_CODE 77)
