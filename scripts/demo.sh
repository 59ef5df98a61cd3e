#!/usr/bin/env bash
# A tour of brine on this machine: builds the binaries, starts a master and three minions
# (demo-web1, demo-web2, demo-db1) on loopback with everything in a temporary directory,
# pins the master's key in the minions and accepts theirs with brine-key, runs the everyday
# commands, shows how a minion that is down is reported, then stops everything
# and removes the directory. Needs a Rust toolchain; takes seconds after the build.
#
# Exits 0 when every command behaved as expected (the failing case included), 1 otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

MINIONS=(demo-web1 demo-web2 demo-db1)
PIDS=()      # every daemon this script started, the master first
WORK=""      # the temporary directory
started=$SECONDS

# ---------------------------------------------------------------------------------------------
# Helpers

say() { printf '\n# %s\n' "$*"; }

die() {
    printf '\ndemo.sh: %s\n' "$*" >&2
    show_logs
    exit 1
}

show_logs() {
    [[ -n "$WORK" && -d "$WORK" ]] || return 0
    local log
    for log in "$WORK"/*.log; do
        [[ -e "$log" ]] || continue
        printf '\n----- %s (last 30 lines) -----\n' "$(basename "$log")" >&2
        tail -n 30 "$log" >&2
    done
}

# stop PID...: SIGTERM to each, waits for them all, SIGKILL for any still running after 15 s.
stop() {
    local pid alive
    kill -TERM "$@" 2>/dev/null || true
    for _ in $(seq 150); do
        alive=0
        for pid in "$@"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "$@"; do
        if kill -0 "$pid" 2>/dev/null; then
            echo "demo.sh: process $pid did not stop on SIGTERM; killing it" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
        wait "$pid" 2>/dev/null || true
    done
}

# Stops the minions, then the master (so that the minions' goodbyes find it), and removes the
# temporary directory.
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if ((${#PIDS[@]})); then
        ((status == 0)) || echo "demo.sh: stopping the master and the minions ..." >&2
        if ((${#PIDS[@]} > 1)); then
            stop "${PIDS[@]:1}"
        fi
        stop "${PIDS[0]}"
    fi
    if [[ -n "$WORK" ]]; then
        rm -rf "$WORK"
        ((status != 0)) || echo "Stopped the minions and the master; removed $WORK."
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Drops a reaped process from PIDS, so that its (reusable) pid is never signalled again.
forget_pid() {
    local pid kept=()
    for pid in "${PIDS[@]}"; do
        [[ "$pid" == "$1" ]] || kept+=("$pid")
    done
    PIDS=("${kept[@]}")
}

# Prints a command line the way one would type it: words quoted only where the shell needs it.
show_command() {
    local line="$" word
    for word in "$@"; do
        if [[ "$word" =~ ^[A-Za-z0-9_./:,=@%+-]+$ ]]; then
            line+=" $word"
        else
            line+=" '${word//\'/\'\\\'\'}'"
        fi
    done
    printf '\n%s\n' "$line"
}

# run EXPECTED_CODE COMMAND...: shows the command, runs it, fails the demo on another exit code.
run() {
    local expected=$1 code=0
    shift
    show_command "$@"
    "$@" || code=$?
    if ((code != expected)); then
        die "'$*' exited with $code, expected $expected"
    fi
}

# Whether a TCP port on 127.0.0.1 is free to bind.
port_free() {
    if command -v python3 >/dev/null; then
        python3 - "$1" <<'EOF' 2>/dev/null
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
EOF
    else
        # Without python: free enough if nothing answers there.
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
            return 1
        fi
    fi
}

# Sets PUBLISH_PORT and RET_PORT to two free neighbouring ports from 45050 on, after $1.
pick_ports() {
    local port
    for ((port = ${1:-45048} + 2; port < 46000; port += 2)); do
        if port_free "$port" && port_free "$((port + 1))"; then
            PUBLISH_PORT=$port
            RET_PORT=$((port + 1))
            return 0
        fi
    done
    die "no two free ports between 45050 and 46000"
}

# ---------------------------------------------------------------------------------------------
# Build

echo "Building brine (cargo build --workspace --bins) ..."
cargo build --workspace --bins || die "the build failed"
target_dir=${CARGO_TARGET_DIR:-$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')}
BIN="$target_dir/debug"
for exe in brine brine-run brine-key brine-call brine-master brine-minion; do
    [[ -x "$BIN/$exe" ]] || die "$BIN/$exe was not built"
done
export PATH="$BIN:$PATH"
build_done=$SECONDS

# ---------------------------------------------------------------------------------------------
# Start a master and three minions

WORK=$(mktemp -d "${TMPDIR:-/tmp}/brine-demo.XXXXXX")
export BRINE_SOCKET="$WORK/master.sock"
unset RUST_LOG BRINE_MASTER_CONFIG BRINE_MINION_CONFIG

write_master_config() {
    cat >"$WORK/master.toml" <<EOF
interface = "127.0.0.1"
publish_port = $PUBLISH_PORT
ret_port = $RET_PORT
socket = "$WORK/master.sock"
state_dir = "$WORK/master"
tick_interval = "1s"
keepalive_interval = "1s"
EOF
}

# Starts the master; retries on other ports if someone took ours in the meantime.
start_master() {
    local attempt pid
    PUBLISH_PORT=45048
    for attempt in 1 2 3; do
        ((attempt == 1)) || echo "a port was taken meanwhile; trying the next ones"
        pick_ports "$PUBLISH_PORT"
        write_master_config
        brine-master --config "$WORK/master.toml" >"$WORK/master.log" 2>&1 &
        pid=$!
        for _ in $(seq 100); do
            if ! kill -0 "$pid" 2>/dev/null; then
                wait "$pid" 2>/dev/null || true
                grep -q 'in use' "$WORK/master.log" && continue 2
                die "brine-master exited at start"
            fi
            if [[ -S "$BRINE_SOCKET" ]]; then
                PIDS+=("$pid")
                return 0
            fi
            sleep 0.1
        done
        PIDS+=("$pid")
        die "brine-master did not open its control socket within 10 s"
    done
    die "brine-master could not bind its ports (3 attempts)"
}

say "Starting brine-master on 127.0.0.1 (work directory $WORK)"
start_master
echo "brine-master: publish port $PUBLISH_PORT, return port $RET_PORT, pid ${PIDS[0]}"

say "The master's key fingerprint: each minion pins it (master_fingerprint in its config)"
show_command brine-key master-finger
FINGERPRINT=$(brine-key master-finger) || die "brine-key master-finger failed"
echo "$FINGERPRINT"

say "Starting three minions; each makes its key on first start"

declare -A MINION_PID
for id in "${MINIONS[@]}"; do
    cat >"$WORK/$id.toml" <<EOF
id = "$id"
master = "127.0.0.1"
publish_port = $PUBLISH_PORT
ret_port = $RET_PORT
state_dir = "$WORK/$id"
master_fingerprint = "$FINGERPRINT"
retry_max = "1s"
grains = { role = "${id#demo-}" }
EOF
    brine-minion --config "$WORK/$id.toml" >"$WORK/$id.log" 2>&1 &
    PIDS+=("$!")
    MINION_PID[$id]=$!
    echo "brine-minion $id: pid $!"
done

# Whether the master holds a key for every demo minion (pending until accepted).
all_keys_known() {
    local keys
    keys=$(brine-key --out json list 2>/dev/null) || return 1
    for id in "${MINIONS[@]}"; do
        grep -q "\"$id\"" <<<"$keys" || return 1
    done
}

printf 'Waiting for their keys to reach the master'
for _ in $(seq 80); do
    all_keys_known && break
    printf '.'
    sleep 0.25
done
echo
all_keys_known || die "the minions' keys did not all reach the master within 20 s"

say "Accept each minion's key by its fingerprint, as brine-minion --print-fingerprint shows it on its host"
run 0 brine-key list
for id in "${MINIONS[@]}"; do
    show_command brine-minion --config "$WORK/$id.toml" --print-fingerprint
    finger=$(brine-minion --config "$WORK/$id.toml" --print-fingerprint) ||
        die "brine-minion --print-fingerprint failed for $id"
    echo "$finger"
    run 0 brine-key accept "$id" --fingerprint "$finger" --yes
done

# Whether manage.status lists every demo minion as up (and none down).
all_up() {
    local status
    status=$(brine-run --out json manage.status 2>/dev/null) || return 1
    grep -q '"down": \[\]' <<<"$status" || return 1
    for id in "${MINIONS[@]}"; do
        grep -q "\"$id\"" <<<"$status" || return 1
    done
}

printf 'Waiting for the minions to connect'
for _ in $(seq 80); do
    all_up && break
    printf '.'
    sleep 0.25
done
echo
all_up || die "the minions did not all connect within 20 s"

# ---------------------------------------------------------------------------------------------
# The tour

say "Is everyone there?"
run 0 brine '*' test.ping

say "Run a command everywhere (through /bin/sh, as in Salt; shell=false runs it as argv)"
run 0 brine '*' cmd.run 'uname -s | tr A-Z a-z'

say "Target a list of minions and read a grain"
run 0 brine -L demo-web1,demo-db1 grains.get os

say "Machine-readable output"
run 0 brine '*' --out json test.echo hello

say "Target by grain (each minion's role comes from its configuration) and by a compound expression"
run 0 brine -G 'role:web*' test.ping
run 0 brine -C 'G@role:web1 or (L@demo-db1 and not E@.*web)' --out txt cmd.run 'uname -n'

say "Set a grain on a minion: the master hears of it at once"
run 0 brine demo-web2 grains.setval tier front
for _ in $(seq 50); do
    brine --out json -t 2 -G 'tier:front' test.ping >/dev/null 2>&1 && break
    sleep 0.1
done
run 0 brine -G 'tier:front' test.ping

say "Run a function on this host as demo-web2, without a master (like salt-call): the grain set above is its own"
run 0 brine-call --local --config "$WORK/demo-web2.toml" grains.item role tier

say "Publish without waiting, then follow the job by its jid"
show_command brine --async '*' test.sleep 1
published=$(brine --async '*' test.sleep 1) || die "brine --async failed"
echo "$published"
jid=$(grep -oE '[0-9]{20}' <<<"$published" | head -n 1) || die "no jid in: $published"
run 0 brine-run jobs.lookup "$jid" --wait

say "The master's job history and its view of the minions"
run 0 brine-run jobs.list
run 0 brine-run manage.status

say "A minion goes away: stop demo-db1 (SIGTERM) and ping again"
show_command kill -TERM "${MINION_PID[demo-db1]}"
kill -TERM "${MINION_PID[demo-db1]}"
wait "${MINION_PID[demo-db1]}" || die "demo-db1 did not stop cleanly"
forget_pid "${MINION_PID[demo-db1]}"
for _ in $(seq 100); do
    brine-run --out json manage.down 2>/dev/null | grep -q '"demo-db1"' && break
    sleep 0.1
done
run 3 brine '*' test.ping -t 2
echo "exit code: 3 (some targeted minion did not return; demo-db1 is not connected)"

say "Done in $((SECONDS - build_done)) s after the build ($((SECONDS - started)) s in all); stopping everything"
