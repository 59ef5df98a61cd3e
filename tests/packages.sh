#!/usr/bin/env bash
# Installs the Debian packages brine-master and brine-minion on this machine for real and checks
# them: every file where the README says (and nothing else), the conffiles, the brine user, the
# units' enablement, `systemd-analyze verify` on the installed units, then a master and a minion
# run from the installed binaries, configuration and state directories (the master as the user
# brine, as its unit runs it) until `brine <id> test.ping` answers; then that `dpkg -r` keeps
# /etc/brine and /var/lib/brine and `dpkg -P` leaves nothing named brine behind but the user,
# which Debian packages keep. It purges the packages and removes what it made even when a check
# fails, so the machine is as before.
#
# Usage: tests/packages.sh [BRINE_MASTER.deb BRINE_MINION.deb]
# Without arguments it runs scripts/package.sh first (a release build: minutes from scratch,
# seconds when nothing changed), so the packages tested are never stale.
#
# Needs root and dpkg (Debian), and refuses to run where brine is installed already (a package,
# /etc/brine, /var/lib/brine, /run/brine). Works without a running systemd (a container): then
# nothing is started by the packages, and systemd-analyze comes from Debian's systemd package,
# installed as scripts/verify-units.sh does. Uses TCP ports on 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."

MINION_ID=pkgtest-minion
PIDS=()           # the daemons this script started
CREATED_USER=no   # whether the packages created the brine user (then this script removes it)
CREATED_GROUP=no
WORK=""

say() { echo "packages: $*"; }
fail() {
    echo "packages: FAIL: $*" >&2
    exit 1
}

# ---------------------------------------------------------------------------------------------
# Preconditions

[ "$(id -u)" -eq 0 ] || fail "needs root (it installs the packages with dpkg)"
command -v dpkg >/dev/null 2>&1 || fail "needs dpkg (a Debian system)"
# Whether dpkg knows the package: installed, or removed with its conffiles left.
known() {
    dpkg-query -W "$1" >/dev/null 2>&1 && [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1")" != "un " ]
}
for pkg in brine-master brine-minion; do
    ! known "$pkg" || fail "$pkg is on this machine; this test would purge it"
done
for path in /etc/brine /var/lib/brine /run/brine; do
    [ ! -e "$path" ] || fail "$path exists: brine is installed here; this test would delete it"
done

# Everything named brine in the places packages write; empty before, and again after the purge.
stray() {
    find /etc /usr/bin /usr/sbin /usr/lib /usr/share /var/lib /run -name '*brine*' 2>/dev/null |
        sort
}
before=$(stray)
[ -z "$before" ] || fail "files named brine exist already (a manual install?):
$before"

if ! command -v systemd-analyze >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || fail "systemd-analyze is missing and there is no apt-get"
    say "installing systemd (for systemd-analyze)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi
getent passwd brine >/dev/null || CREATED_USER=yes
getent group brine >/dev/null || CREATED_GROUP=yes

# ---------------------------------------------------------------------------------------------
# Helpers

# dpkg, waiting while another dpkg or apt holds its lock (other tests install packages too).
dpkg_() {
    local status out
    for _ in $(seq 180); do
        status=0
        out=$(dpkg "$@" 2>&1) || status=$?
        if [ "$status" -ne 0 ] && grep -q -E 'lock (is|was) locked|unable to lock' <<<"$out"; then
            sleep 1
            continue
        fi
        [ -z "$out" ] || printf '%s\n' "$out" | sed 's/^/  dpkg: /'
        return "$status"
    done
    echo "$out" >&2
    return 1
}

# stop PID...: SIGTERM, then SIGKILL after 15 s.
stop() {
    local pid alive
    kill -TERM "$@" 2>/dev/null || true
    for _ in $(seq 150); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" -eq 1 ] || break
        sleep 0.1
    done
    for pid in "$@"; do
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    if [ ${#PIDS[@]} -gt 0 ]; then
        stop "${PIDS[@]}"
    fi
    if [ "$status" -ne 0 ] && [ -n "$WORK" ]; then
        for log in "$WORK"/*.log; do
            [ -e "$log" ] || continue
            echo "----- $(basename "$log") (last 30 lines) -----" >&2
            tail -n 30 "$log" >&2
        done
    fi
    for pkg in brine-minion brine-master; do
        ! known "$pkg" || dpkg_ --purge "$pkg" >/dev/null
    done
    # What the packages or this script made, none of which existed before (checked above).
    rm -rf /etc/brine /var/lib/brine /run/brine
    [ "$CREATED_USER" = no ] || userdel brine 2>/dev/null
    [ "$CREATED_GROUP" = no ] || ! getent group brine >/dev/null || groupdel brine
    [ -z "$WORK" ] || rm -rf "$WORK"
    if [ "$status" -eq 0 ]; then
        say "OK"
    else
        echo "packages: failed; purged the packages and removed what they left" >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The files (not directories) a package installed, sorted.
files_of() {
    dpkg-query -L "$1" | while read -r path; do
        [ -d "$path" ] && [ ! -L "$path" ] || echo "$path"
    done | sort
}

# expect_files PACKAGE PATH...: the package installed exactly these files.
expect_files() {
    local pkg=$1
    shift
    local want got
    want=$(printf '%s\n' "$@" | sort)
    got=$(files_of "$pkg")
    [ "$got" = "$want" ] || fail "$pkg installed other files than expected:
$(diff <(echo "$want") <(echo "$got") | sed -n 's/^[<>]/  &/p')
  (< expected, > installed)"
    for path in "$@"; do
        [ -f "$path" ] || fail "$path is listed by dpkg but missing"
    done
}

# The unit as the package must install it: the source with ExecStart= in /usr/bin, comments aside.
expect_unit() {
    local unit=$1
    diff <(grep -v '^#' "systemd/$unit" | sed '/^ExecStart=/s#/usr/local/bin/#/usr/bin/#') \
        <(grep -v '^#' "/usr/lib/systemd/system/$unit") ||
        fail "/usr/lib/systemd/system/$unit differs from systemd/$unit (beyond the /usr/bin path)"
}

# check_man_and_completions COMMAND...: the installed pages and scripts are the CLI's.
check_man_and_completions() {
    local command
    for command in "$@"; do
        zcat "/usr/share/man/man1/$command.1.gz" | grep -q "^\.TH $command " ||
            fail "/usr/share/man/man1/$command.1.gz is not $command's man page"
        grep -q "complete -F _${command//-/__}" "/usr/share/bash-completion/completions/$command" ||
            fail "no bash completion for $command"
        grep -q "^#compdef $command" "/usr/share/zsh/vendor-completions/_$command" ||
            fail "no zsh completion for $command"
        grep -q "complete -c $command" "/usr/share/fish/vendor_completions.d/$command.fish" ||
            fail "no fish completion for $command"
    done
}

# Waits up to $1 seconds for the command after it to succeed.
wait_for() {
    local seconds=$1
    shift
    for _ in $(seq $((seconds * 4))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.25
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
# The packages

if [ $# -eq 2 ]; then
    master_deb=$1
    minion_deb=$2
elif [ $# -eq 0 ]; then
    say "building the packages (scripts/package.sh)"
    debs=$(scripts/package.sh)
    master_deb=$(grep '/brine-master_' <<<"$debs")
    minion_deb=$(grep '/brine-minion_' <<<"$debs")
else
    fail "usage: tests/packages.sh [BRINE_MASTER.deb BRINE_MINION.deb]"
fi
for deb in "$master_deb" "$minion_deb"; do
    [ -f "$deb" ] || fail "no package $deb"
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/brine-packages.XXXXXX")

say "dpkg -i $(basename "$master_deb") $(basename "$minion_deb")"
dpkg_ -i "$master_deb" "$minion_deb" || fail "dpkg -i failed"

# ---------------------------------------------------------------------------------------------
# Installed: where every file is

say "checking the installed files"
expect_files brine-master \
    /usr/bin/brine-master /usr/bin/brine /usr/bin/brine-run /usr/bin/brine-key \
    /usr/lib/systemd/system/brine-master.service \
    /usr/lib/sysusers.d/brine.conf \
    /etc/brine/master.toml \
    /usr/share/man/man1/brine.1.gz /usr/share/man/man1/brine-run.1.gz \
    /usr/share/man/man1/brine-key.1.gz \
    /usr/share/bash-completion/completions/brine \
    /usr/share/bash-completion/completions/brine-run \
    /usr/share/bash-completion/completions/brine-key \
    /usr/share/zsh/vendor-completions/_brine /usr/share/zsh/vendor-completions/_brine-run \
    /usr/share/zsh/vendor-completions/_brine-key \
    /usr/share/fish/vendor_completions.d/brine.fish \
    /usr/share/fish/vendor_completions.d/brine-run.fish \
    /usr/share/fish/vendor_completions.d/brine-key.fish \
    /usr/share/doc/brine-master/copyright
expect_files brine-minion \
    /usr/bin/brine-minion /usr/bin/brine-call \
    /usr/lib/systemd/system/brine-minion.service \
    /etc/brine/minion.toml \
    /usr/share/man/man1/brine-call.1.gz \
    /usr/share/bash-completion/completions/brine-call \
    /usr/share/zsh/vendor-completions/_brine-call \
    /usr/share/fish/vendor_completions.d/brine-call.fish \
    /usr/share/doc/brine-minion/copyright

for bin in brine-master brine brine-run brine-key brine-minion brine-call; do
    [ -x "/usr/bin/$bin" ] || fail "$bin is not executable"
    version=$("/usr/bin/$bin" --version) || fail "$bin --version failed"
    [[ $version == "$bin "[0-9]* ]] || fail "$bin --version printed '$version'"
done
for conf in master.toml minion.toml; do
    cmp -s "config/$conf" "/etc/brine/$conf" || fail "/etc/brine/$conf is not config/$conf"
done
cmp -s systemd/brine.sysusers /usr/lib/sysusers.d/brine.conf ||
    fail "/usr/lib/sysusers.d/brine.conf is not systemd/brine.sysusers"
expect_unit brine-master.service
expect_unit brine-minion.service
check_man_and_completions brine brine-run brine-key brine-call

for side in master minion; do
    conffiles=$(dpkg-query -W -f='${Conffiles}' "brine-$side" | awk 'NF { print $1 }')
    [ "$conffiles" = "/etc/brine/$side.toml" ] ||
        fail "brine-$side's conffiles are not just /etc/brine/$side.toml: $conffiles"
done

# The user the postinst made, as systemd/brine.sysusers describes it.
entry=$(getent passwd brine) || fail "the postinst did not create the user brine"
IFS=: read -r _ _ uid gid _ home shell <<<"$entry"
[ "$home" = /var/lib/brine ] || fail "brine's home is $home, not /var/lib/brine"
[[ $shell == */nologin ]] || fail "brine's shell is $shell, not nologin"
[ "$(getent group brine | cut -d: -f3)" = "$gid" ] || fail "brine's primary group is not brine"
[ "$uid" -lt 1000 ] || fail "brine is not a system user (uid $uid)"

# Enabled: the master (started too where systemd runs), not the minion (it has no master yet).
wants=/etc/systemd/system/multi-user.target.wants
unit=/usr/lib/systemd/system/brine-master.service
[ "$(readlink -f "$wants/brine-master.service")" = "$(readlink -f "$unit")" ] ||
    fail "brine-master.service is not enabled ($wants/brine-master.service)"
[ ! -e "$wants/brine-minion.service" ] && [ ! -L "$wants/brine-minion.service" ] ||
    fail "brine-minion.service is enabled on installation"

# systemd-analyze verify on the installed units, strictly as scripts/verify-units.sh runs it:
# any line it prints fails.
status=0
output=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no \
    /usr/lib/systemd/system/brine-master.service /usr/lib/systemd/system/brine-minion.service 2>&1) ||
    status=$?
[ "$status" -eq 0 ] && [ -z "$output" ] ||
    fail "systemd-analyze verify of the installed units (exit $status):
$output"
say "files, conffiles, user, enablement and units OK"

# ---------------------------------------------------------------------------------------------
# Installed: the daemons run, from the installed configuration and state directories

# Two free TCP ports on 127.0.0.1 (the shipped 4505 and 4506 may be in use here).
read -r PUBLISH_PORT RET_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')

# What the units' StateDirectory= and RuntimeDirectory= would make.
install -d -m 0755 /var/lib/brine
install -d -o brine -g brine -m 0700 /var/lib/brine/master
install -d -m 0700 /var/lib/brine/minion
install -d -o brine -g brine -m 0750 /run/brine

say "starting /usr/bin/brine-master as brine with /etc/brine/master.toml"
(
    umask 0077
    exec env BRINE_MASTER_INTERFACE=127.0.0.1 BRINE_MASTER_PUBLISH_PORT="$PUBLISH_PORT" \
        BRINE_MASTER_RET_PORT="$RET_PORT" \
        setpriv --reuid=brine --regid=brine --init-groups -- \
        /usr/bin/brine-master --config /etc/brine/master.toml
) >"$WORK/master.log" 2>&1 &
PIDS+=("$!")
wait_for 20 test -S /run/brine/master.sock || fail "brine-master did not open /run/brine/master.sock"
fingerprint=$(/usr/bin/brine-key master-finger) || fail "brine-key master-finger failed"

export BRINE_MINION_ID=$MINION_ID BRINE_MINION_MASTER=127.0.0.1 \
    BRINE_MINION_PUBLISH_PORT=$PUBLISH_PORT BRINE_MINION_RET_PORT=$RET_PORT \
    BRINE_MINION_MASTER_FINGERPRINT=$fingerprint BRINE_MINION_RETRY_MAX=1s
say "starting /usr/bin/brine-minion with /etc/brine/minion.toml"
/usr/bin/brine-minion --config /etc/brine/minion.toml >"$WORK/minion.log" 2>&1 &
PIDS+=("$!")
key_pending() { /usr/bin/brine-key --out json list | grep -q "\"$MINION_ID\""; }
wait_for 30 key_pending || fail "the minion's key did not reach the master"
minion_fingerprint=$(/usr/bin/brine-minion --config /etc/brine/minion.toml --print-fingerprint) ||
    fail "brine-minion --print-fingerprint failed"
/usr/bin/brine-key accept "$MINION_ID" --fingerprint "$minion_fingerprint" --yes >/dev/null ||
    fail "brine-key accept failed"
minion_up() { /usr/bin/brine-run manage.up | grep -q "$MINION_ID"; }
wait_for 30 minion_up || fail "the accepted minion did not connect"
answer=$(/usr/bin/brine "$MINION_ID" test.ping --out json) || fail "brine $MINION_ID test.ping failed"
grep -q "\"$MINION_ID\": true" <<<"$answer" || fail "test.ping answered: $answer"
answer=$(/usr/bin/brine-call --local test.ping --out json) || fail "brine-call --local test.ping failed"
grep -q true <<<"$answer" || fail "brine-call test.ping answered: $answer"
say "brine $MINION_ID test.ping and brine-call test.ping OK"

stop "${PIDS[@]}"
PIDS=()
rm -rf /run/brine "$WORK"/*.log
unset BRINE_MINION_ID BRINE_MINION_MASTER BRINE_MINION_PUBLISH_PORT BRINE_MINION_RET_PORT \
    BRINE_MINION_MASTER_FINGERPRINT BRINE_MINION_RETRY_MAX
[ -d /var/lib/brine/master/pki ] && [ -d /var/lib/brine/minion/pki ] ||
    fail "the daemons left no keys in /var/lib/brine/master/pki and /var/lib/brine/minion/pki"

# ---------------------------------------------------------------------------------------------
# Removed: the configuration and the state stay

say "dpkg -r brine-minion brine-master"
dpkg_ -r brine-minion brine-master || fail "dpkg -r failed"
for pkg in brine-master brine-minion; do
    [ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg")" = "rc " ] ||
        fail "$pkg is not in state config-files after dpkg -r"
done
for bin in brine-master brine brine-run brine-key brine-minion brine-call; do
    [ ! -e "/usr/bin/$bin" ] || fail "$bin is still there after dpkg -r"
done
for unit in brine-master.service brine-minion.service; do
    [ ! -e "/usr/lib/systemd/system/$unit" ] || fail "$unit is still there after dpkg -r"
done
for side in master minion; do
    cmp -s "config/$side.toml" "/etc/brine/$side.toml" ||
        fail "dpkg -r did not keep /etc/brine/$side.toml"
    [ -d "/var/lib/brine/$side/pki" ] || fail "dpkg -r did not keep the $side's state"
done
say "dpkg -r kept /etc/brine and /var/lib/brine"

# ---------------------------------------------------------------------------------------------
# Purged: nothing left but the user

say "dpkg -P brine-minion brine-master"
dpkg_ -P brine-minion brine-master || fail "dpkg -P failed"
for pkg in brine-master brine-minion; do
    ! known "$pkg" || fail "dpkg still knows $pkg after dpkg -P"
done
left=$(stray)
[ -z "$left" ] || fail "left behind after dpkg -P:
$left"
getent passwd brine >/dev/null || fail "dpkg -P removed the user brine (Debian keeps system users)"
say "dpkg -P left nothing named brine (the user brine stays, as Debian packages keep theirs)"
