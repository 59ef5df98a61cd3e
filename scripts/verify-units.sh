#!/usr/bin/env bash
# Checks the systemd units in systemd/ with `systemd-analyze verify`, strictly: any line it
# prints (warning, error or notice) fails the check, because it exits 0 on many warnings.
#
# ExecStart= must name binaries that exist, so the units are verified as copies whose
# /usr/local/bin/brine-* paths point at the workspace's own builds; nothing is installed.
# Binaries: $BRINE_BIN_DIR when set, else `cargo build --bins` into the target directory.
# Works without a running systemd (a container): when systemd-analyze is missing and we are root,
# it installs Debian's `systemd` package.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
units=(brine-master.service brine-minion.service)

die() {
    echo "verify-units: $*" >&2
    exit 1
}

if ! command -v systemd-analyze >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || die "systemd-analyze is missing; install the systemd package (needs root)"
    command -v apt-get >/dev/null 2>&1 || die "systemd-analyze is missing and there is no apt-get"
    echo "verify-units: installing systemd (for systemd-analyze)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends systemd >&2
    command -v systemd-analyze >/dev/null 2>&1 || die "installed systemd, still no systemd-analyze"
fi

if [ -n "${BRINE_BIN_DIR:-}" ]; then
    bin_dir=$BRINE_BIN_DIR
else
    command -v cargo >/dev/null 2>&1 || die "cargo not found; set BRINE_BIN_DIR to a directory holding brine-master and brine-minion"
    cargo build --quiet --bins -p brine-master -p brine-minion
    bin_dir=${CARGO_TARGET_DIR:-$root/target}/debug
fi
bin_dir=$(cd "$bin_dir" && pwd)
case $bin_dir in
    *[[:space:]]* | *'#'*) die "binary directory '$bin_dir' contains a space or '#'" ;;
esac
for bin in brine-master brine-minion; do
    [ -x "$bin_dir/$bin" ] || die "$bin_dir/$bin does not exist or is not executable"
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
paths=()
for unit in "${units[@]}"; do
    grep -q '^ExecStart=/usr/local/bin/brine-' "systemd/$unit" ||
        die "systemd/$unit: no ExecStart=/usr/local/bin/brine-... line to point at the build"
    sed "s#/usr/local/bin/brine-#$bin_dir/brine-#g" "systemd/$unit" >"$work/$unit"
    paths+=("$work/$unit")
done

status=0
output=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "${paths[@]}" 2>&1) || status=$?
if [ "$status" -ne 0 ] || [ -n "$output" ]; then
    [ -z "$output" ] || printf '%s\n' "$output" >&2
    die "systemd-analyze verify failed (exit $status, $(printf '%s' "$output" | grep -c '') line(s) of output)"
fi

# verify accepts dependencies on units that do not exist (a typo in After=, Wants= or
# WantedBy= passes silently): every unit named there must be one of ours or a known unit.
mapfile -t unit_paths < <(systemd-analyze unit-paths 2>/dev/null)
for unit in "${units[@]}"; do
    deps=$(sed -n -E 's/^(After|Before|Wants|Requires|Requisite|BindsTo|PartOf|Conflicts|WantedBy|RequiredBy)=//p' "systemd/$unit")
    for dep in $deps; do
        found=no
        for known in "${units[@]}"; do [ "$dep" = "$known" ] && found=yes; done
        for dir in "${unit_paths[@]}"; do [ -e "$dir/$dep" ] && found=yes; done
        [ "$found" = yes ] || die "systemd/$unit: names '$dep', which is no known unit"
    done
done
echo "verify-units: ${units[*]} OK"
