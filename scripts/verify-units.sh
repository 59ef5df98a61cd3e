#!/usr/bin/env bash
# Checks the systemd units in systemd/ with `systemd-analyze verify`, strictly: any line it
# prints (warning, error or notice) fails the check, because it exits 0 on many warnings.
# Then the master's sandbox: `systemd-analyze security --offline=yes` must rate the master
# unit's overall exposure at 2.0 (max_exposure) or lower (and print nothing on stderr), and, as a
# check of the check, an unhardened copy of it must score above that. Then systemd/brine.sysusers:
# `systemd-sysusers --dry-run` into an empty root must print nothing, and it must define the
# User= and Group= of the master unit. `--offline=yes` needs systemd 252 or newer (Debian 12).
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
sysusers=systemd/brine.sysusers
# The highest overall exposure `systemd-analyze security` may give the master unit.
max_exposure=2.0

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
echo "verify-units: ${units[*]}: systemd-analyze verify OK"

# The master's sandbox. `security` exits 0 whatever the score (without --threshold) and prints
# parse warnings on stderr, so the score is read from its "Overall exposure level" line and any
# stderr fails.
version=$(systemd-analyze --version | sed -n -E '1s/^systemd ([0-9]+).*/\1/p')
if [ -z "$version" ] || [ "$version" -lt 252 ]; then
    die "systemd-analyze security --offline=yes needs systemd 252 or newer (have '${version:-unknown}')"
fi

# Prints the overall exposure of the unit file $1; fails on any stderr or an unreadable report.
exposure() {
    local report status=0
    report=$(SYSTEMD_LOG_COLOR=0 SYSTEMD_COLORS=0 systemd-analyze security --offline=yes \
        --no-pager "$1" 2>"$work/security.err") || status=$?
    if [ "$status" -ne 0 ] || [ -s "$work/security.err" ]; then
        cat "$work/security.err" >&2
        die "systemd-analyze security --offline=yes $(basename "$1") failed (exit $status)"
    fi
    local score
    score=$(printf '%s\n' "$report" |
        sed -n -E 's/^.*Overall exposure level for [^:]*: ([0-9]+(\.[0-9]+)?) .*$/\1/p')
    [ -n "$score" ] || {
        printf '%s\n' "$report" >&2
        die "no 'Overall exposure level' line in the security report of $(basename "$1")"
    }
    printf '%s\n' "$score"
}
# True when $1 <= $2 (decimal numbers).
at_most() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 <= b + 0) }'; }

master=$work/brine-master.service
score=$(exposure "$master")
if ! at_most "$score" "$max_exposure"; then
    SYSTEMD_LOG_COLOR=0 SYSTEMD_COLORS=0 systemd-analyze security --offline=yes --no-pager \
        "$master" 2>/dev/null | grep -v '✓' >&2 || true
    die "brine-master.service: exposure $score is above $max_exposure; harden the unit (the ✗ lines above)"
fi
echo "verify-units: brine-master.service: exposure $score (at most $max_exposure) OK"

# The check of the check: the master unit without its [Service] hardening (only ExecStart= and
# Type= kept) must score above the limit, or the score is not being read right.
mkdir "$work/bare"
awk '/^\[/ { section = $0 } section != "[Service]" || /^\[/ || /^(Type|ExecStart)=/' "$master" \
    >"$work/bare/brine-master.service"
bare=$(exposure "$work/bare/brine-master.service")
at_most "$bare" "$max_exposure" &&
    die "the unhardened master unit scores $bare, not above $max_exposure: the exposure check does not bite"

# The brine user and group: a dry run into an empty root prints only warnings and errors at
# log level notice, so any output fails.
user=$(sed -n -E 's/^User=//p' systemd/brine-master.service)
group=$(sed -n -E 's/^Group=//p' systemd/brine-master.service)
if [ -z "$user" ] || [ -z "$group" ]; then
    die "systemd/brine-master.service: no User= or Group="
fi
grep -q -E "^u[[:space:]]+${user}[[:space:]]" "$sysusers" ||
    die "$sysusers: no 'u $user' line (User= of the master unit)"
grep -q -E "^[gu][[:space:]]+${group}[[:space:]]" "$sysusers" ||
    die "$sysusers: no group '$group' (Group= of the master unit)"
if command -v systemd-sysusers >/dev/null 2>&1; then
    mkdir "$work/sysroot"
    status=0
    output=$(SYSTEMD_LOG_LEVEL=notice SYSTEMD_LOG_COLOR=0 systemd-sysusers --dry-run \
        --root="$work/sysroot" "$root/$sysusers" 2>&1) || status=$?
    if [ "$status" -ne 0 ] || [ -n "$output" ]; then
        [ -z "$output" ] || printf '%s\n' "$output" >&2
        die "systemd-sysusers --dry-run $sysusers failed (exit $status)"
    fi
    echo "verify-units: $(basename "$sysusers"): systemd-sysusers --dry-run OK"
else
    echo "verify-units: systemd-sysusers not found; $(basename "$sysusers") checked by grep only" >&2
fi
echo "verify-units: OK"
