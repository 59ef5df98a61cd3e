#!/usr/bin/env bash
# The project's test command (the README's, and the one .ci/run runs): builds the binaries the
# end-to-end tests drive, then runs every test of the workspace with nextest, then the doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# The system programs some tests use, installed when this runs as root on Debian (as CI does);
# elsewhere, install them yourself: faketime (the fault tests run minions with skewed clocks),
# iputils-ping (network.ping's tests ping 127.0.0.1), a system python3 that every user may run
# (the control-socket attack test opens connections as other users with it), rpm (pkg's rpm
# version order is checked against rpm's own rpm.vercmp, through rpmlua; dpkg's against dpkg),
# postgresql (the shared store's tests start servers of their own in temporary directories).
missing=()
ls /usr/lib/*/faketime/libfaketime.so.1 >/dev/null 2>&1 || missing+=(faketime)
command -v ping >/dev/null || missing+=(iputils-ping)
[ -x /usr/bin/python3 ] || missing+=(python3-minimal)
command -v rpmlua >/dev/null || missing+=(rpm)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "test.sh: missing ${missing[*]}: some tests will fail (install them with apt-get as root)" >&2
    fi
fi

cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast "$@"
cargo test --workspace --doc
