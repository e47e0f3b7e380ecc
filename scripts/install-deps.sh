#!/usr/bin/env bash
# Installs every Debian 12 package that memtrace's build and test suite need.
# Idempotent: when all of them are already installed it touches nothing and
# returns at once; otherwise it runs `apt-get update` and installs the missing
# ones (as root). Prints one line saying what it did; apt's own output goes to
# a log that is shown only if apt fails.
#
#   bash scripts/install-deps.sh          install what is missing
#   bash scripts/install-deps.sh --force  run apt-get even if nothing is missing
set -euo pipefail

packages=(
    # build
    build-essential cmake pkg-config
    # libraries: stack capture, dump compression, symbols, instruction decoding
    libunwind-dev libzstd-dev libdw-dev libelf-dev libcapstone-dev
    # tests: reference tools and the programs the e2e tests drive
    valgrind sqlite3 perl gzip python3 python3-dbg libc6-dbg heaptrack hyperfine strace gdb
    util-linux file
    # the field test (tests/field): real programs from Debian's packages and
    # toolchains under memtrace and valgrind (g++, make, cmake, python3, perl,
    # sqlite3, gzip come above; golang-go below)
    git xz-utils zstd coreutils rustc
    # Python programs: libpython for the embedding test, CPython's headers for
    # the structure-offset test, CPython's own test suite for the benchmark
    libpython3.11 python3.11-dev libpython3.11-testsuite
    # pprof export: gzip through zlib; `go tool pprof` reads it back in the tests
    zlib1g-dev golang-go
    # CI reports: SARIF validated against its JSON schema (which the test
    # fetches with the machine's npm)
    python3-jsonschema
    # flame graph tests: the SVG in headless Chromium, driven by playwright-core
    # (which the test installs with npm into the build tree)
    chromium nodejs
    # fuzzing (tests/fuzz, -DMEMTRACE_FUZZ=ON): clang and its libFuzzer runtime
    clang libclang-rt-14-dev
)

force=0
case "${1:-}" in
    "") ;;
    --force) force=1 ;;
    *)
        echo "usage: $0 [--force]" >&2
        exit 2
        ;;
esac

# A package counts as installed when dpkg says "install ok installed" for it
# (any architecture).
is_installed() {
    dpkg-query -W -f='${db:Status-Status}\n' "$1" 2>/dev/null | grep -qx installed
}

missing=()
for pkg in "${packages[@]}"; do
    is_installed "$pkg" || missing+=("$pkg")
done

if [ "${#missing[@]}" -eq 0 ] && [ "$force" -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} packages already installed, apt not run"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing packages: ${missing[*]}; run this script as root" >&2
    exit 1
fi

log=$(mktemp /tmp/memtrace-install-deps.XXXXXX.log)
export DEBIAN_FRONTEND=noninteractive
apt_options=(-o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0)
if ! {
    apt-get "${apt_options[@]}" update &&
        apt-get "${apt_options[@]}" install -y --no-install-recommends "${packages[@]}"
} >"$log" 2>&1 </dev/null; then
    cat "$log" >&2
    echo "install-deps: apt-get failed (log above, kept in $log)" >&2
    exit 1
fi
rm -f "$log"

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-deps: apt-get update and install run; all ${#packages[@]} packages were already installed"
else
    echo "install-deps: installed ${#missing[@]} missing packages: ${missing[*]}"
fi
