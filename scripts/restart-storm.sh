#!/usr/bin/env bash
# Issue 4's "no storm" measurement: N swarm minions connected, the master killed with SIGKILL
# and started again; how long until all N are back, and how fast the master answers its CLI
# meanwhile (every 100 ms, `brine-run manage.up`).
#
#   CARGO_TARGET_DIR=/tmp/bench-target cargo build --release --workspace --bins
#   scripts/restart-storm.sh /tmp/bench-target/release 1000
set -euo pipefail
bin=${1:?usage: restart-storm.sh BIN_DIR [N]}
n=${2:-1000}
dir=$(mktemp -d /tmp/brine-storm.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$dir"' EXIT
# Below the ephemeral range (32768+), where the swarm's own connections take their ports.
port=$((20000 + RANDOM % 12000))
cat > "$dir/master.toml" <<TOML
interface = "127.0.0.1"
publish_port = $port
ret_port = $((port + 1))
socket = "$dir/master.sock"
socket_group = ""
state_dir = "$dir/master"
auto_accept = true
log_level = "warn"
TOML
cat > "$dir/swarm.toml" <<TOML
id = "s"
master = "127.0.0.1"
publish_port = $port
ret_port = $((port + 1))
state_dir = "$dir/swarm"
trust_first_master = true
log_level = "error"
TOML
"$bin/brine-master" --config "$dir/master.toml" >/dev/null 2>"$dir/master.log" &
master=$!
"$bin/brine-swarm" --config "$dir/swarm.toml" --minions "$n" >/dev/null 2>"$dir/swarm.log" &
python3 - "$bin" "$dir/master.sock" "$n" "$master" "$dir" <<'PY'
import json, os, signal, socket, subprocess, sys, time
bin, sock, n, master, d = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]

def up():
    t = time.monotonic()
    r = subprocess.run([f"{bin}/brine-run", "--socket", sock, "--out", "json", "manage.up"],
                       capture_output=True, text=True, timeout=30)
    try:
        count = len(json.loads(r.stdout))
    except ValueError:
        count = -1
    return count, (time.monotonic() - t) * 1000

def wait_all(limit):
    start, latencies = time.monotonic(), []
    while time.monotonic() - start < limit:
        count, ms = up()
        latencies.append(ms)
        if count == n:
            return time.monotonic() - start, latencies
        time.sleep(0.1)
    sys.exit(f"not all {n} minions came back within {limit} s (logs: {d})")

wait_all(120)
os.kill(master, signal.SIGKILL)
# A killed process with thousands of sockets takes a moment to die (its main thread shows as
# a zombie before the others have closed its files): wait until its ports can be bound.
port = int(open(f"{d}/master.toml").read().split("publish_port = ")[1].split()[0])
for p in (port, port + 1):
    while True:
        probe = socket.socket()
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", p))
            break
        except OSError:
            time.sleep(0.01)
        finally:
            probe.close()
restarted = subprocess.Popen([f"{bin}/brine-master", "--config", f"{d}/master.toml"],
                             stderr=open(f"{d}/master2.log", "w"))
try:
    back, latencies = wait_all(120)
    latencies.sort()
    print(f"{n} minions back {back:.2f} s after the master restarted; "
          f"manage.up answered in median {latencies[len(latencies) // 2]:.1f} ms, "
          f"max {latencies[-1]:.1f} ms over {len(latencies)} calls meanwhile")
finally:
    restarted.terminate()
    restarted.wait(timeout=30)
PY
