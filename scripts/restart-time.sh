#!/usr/bin/env bash
# Restart time of a node with a large state (issue 17): a 3-node cluster
# (default flags: disk backend) is filled with about --mb megabytes of
# 64 KiB values, then follower node 2 is killed with SIGKILL and started
# again. Prints how long until it served again: from the start of the
# process to "serving" in its log, and until its status shows it has
# applied everything the leader had committed at the kill.
#
#   scripts/restart-time.sh [--mb 1000] [--runtime tokio|threads]
#                           [--backend disk|memory] [--port 7700]
#
# Needs: cargo build --release -p cli (uses target/release/kv).
set -euo pipefail
cd "$(dirname "$0")/.."
mb=1000; runtime=tokio; backend=disk; port=7700
while [ $# -gt 0 ]; do
  case "$1" in
    --mb) mb=$2; shift 2 ;;
    --runtime) runtime=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
KV=target/release/kv
[ -x "$KV" ] || { echo "build first: cargo build --release -p cli" >&2; exit 2; }
dir=$(mktemp -d /tmp/restart-time.XXXXXX)
declare -A pids
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
a=(127.0.0.1:$((port+1)) 127.0.0.1:$((port+2)) 127.0.0.1:$((port+3)))
peers="1=${a[0]},2=${a[1]},3=${a[2]}"
cluster="${a[0]},${a[1]},${a[2]}"
start() {
  $KV serve --id "$1" --peers "$peers" --runtime "$runtime" --backend "$backend" \
    --data-dir "$dir/n$1" 2>>"$dir/log$1" &
  pids[$1]=$!
}
for i in 1 2 3; do start $i; done
sleep 2
# 64 KiB values over as many keys as make --mb megabytes: every write adds
# a new key until the state has the size asked for.
keys=$(( mb * 16 ))
echo "filling: $mb MB as $keys keys of 64 KiB ..."
while :; do
  $KV bench --cluster "$cluster" --clients 8 --value-size 65536 --keys "$keys" --duration 10 2>&1 | tail -1
  held=$(du -sm "$dir/n2" | cut -f1)
  echo "node 2 holds $held MB"
  [ "$held" -ge "$mb" ] && break
done
commit=$($KV status --cluster "${a[0]}" 2>/dev/null | sed -n 's/.*log: commit \([0-9]*\).*/\1/p' | head -1)
kill -9 "${pids[2]}"; wait "${pids[2]}" 2>/dev/null || true
echo "killed node 2 (SIGKILL) with the leader's commit at $commit; restarting it"
: > "$dir/log2.restart"
t0=$(date +%s.%N)
$KV serve --id 2 --peers "$peers" --runtime "$runtime" --backend "$backend" \
  --data-dir "$dir/n2" 2>"$dir/log2.restart" &
pids[2]=$!
until grep -q "serving" "$dir/log2.restart"; do sleep 0.01; done
t1=$(date +%s.%N)
until applied=$($KV status --cluster "${a[1]}" --timeout-s 1 2>/dev/null | sed -n 's/.*applied \([0-9]*\),.*/\1/p' | head -1) \
      && [ -n "$applied" ] && [ "$applied" -ge "$commit" ]; do sleep 0.05; done
t2=$(date +%s.%N)
echo "serving after $(awk "BEGIN{print $t1 - $t0}") s; caught up (applied $applied >= $commit) after $(awk "BEGIN{print $t2 - $t0}") s"
grep -E "state on disk|recovered" "$dir/log2.restart" | sed 's/\x1b\[[0-9;]*m//g' | cut -c1-200
