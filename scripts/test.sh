#!/usr/bin/env bash
# The one command that checks memtrace: installs the Debian packages it needs,
# builds it with warnings as errors, and runs the whole test suite. Exits with
# ctest's status. Works from any directory; extra arguments go to ctest
# (e.g. `bash scripts/test.sh -R e2e`).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMTRACE_WERROR=ON
cmake --build build -j2

status=0
ctest --test-dir build --output-on-failure --no-tests=error -j2 "$@" || status=$?
exit "$status"
