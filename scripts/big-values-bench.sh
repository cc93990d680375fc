#!/usr/bin/env bash
# Issue 17's workload: a 3-node cluster with default flags, then three
# 15-second runs of `kv bench --clients 8 --value-size 65536 --keys 3000` in
# a row on the growing state (about 250 MB by the end), printing each run's
# throughput and latency percentiles and the leader's data size.
#
#   scripts/big-values-bench.sh [--runtime tokio|threads] [--backend disk|memory] [--port 7600]
#
# Needs: cargo build --release -p cli (uses target/release/kv).
set -euo pipefail
cd "$(dirname "$0")/.."
runtime=tokio; backend=disk; port=7600
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) runtime=$2; shift 2 ;;
    --backend) backend=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
KV=target/release/kv
[ -x "$KV" ] || { echo "build first: cargo build --release -p cli" >&2; exit 2; }
dir=$(mktemp -d /tmp/big-values.XXXXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
a=(127.0.0.1:$((port+1)) 127.0.0.1:$((port+2)) 127.0.0.1:$((port+3)))
peers="1=${a[0]},2=${a[1]},3=${a[2]}"
for i in 1 2 3; do
  $KV serve --id $i --peers "$peers" --runtime "$runtime" --backend "$backend" \
    --data-dir "$dir/n$i" 2>"$dir/log$i" &
  pids+=($!)
done
sleep 2
for run in 1 2 3; do
  $KV bench --cluster "${a[0]},${a[1]},${a[2]}" --clients 8 --value-size 65536 --keys 3000 \
    --duration 15 2>&1 | tail -1
done
echo "node 1 holds $(du -sh "$dir/n1" | cut -f1)"
