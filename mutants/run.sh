#!/usr/bin/env bash
# Mutation check: each patch here re-introduces a classic bug into core-raft,
# core-kv, core-shard, the node shell or storage. For each, apply it, run
# the test suites of the cores, the node shell and the simulator (lab ports,
# swarms, properties) and the `sim` command, and report whether the suite
# caught it.
# Sharded-service mutants (shard-*) run the core-shard and simulator suites
# and `sim shard`. Storage mutants (storage-*) break the on-disk store and
# run its suite only (its power-loss tests); the simulator has no disk.
# The working tree is restored after every mutant, whatever happens.
# Logs and binaries go under $CARGO_TARGET_DIR (default: target).
#
#   mutants/run.sh                 # all mutants
#   mutants/run.sh vote-not-persisted
set -uo pipefail
cd "$(dirname "$0")/.."
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for p in mutants/*.patch; do names+=("$(basename "$p" .patch)"); done
fi
if ! git diff --quiet -- core-raft/src core-kv/src core-shard/src node-shell/src storage/src; then
  echo "core-raft/src, core-kv/src, core-shard/src, node-shell/src or storage/src has uncommitted changes; commit or stash them first" >&2
  exit 2
fi
target="${CARGO_TARGET_DIR:-target}"
missed=0
ran_sim=""
for name in "${names[@]}"; do
  patch="mutants/$name.patch"
  if ! git apply "$patch"; then
    echo "$name: patch no longer applies; update it" >&2
    missed=$((missed + 1))
    continue
  fi
  log="$target/mutant-$name.log"
  mkdir -p "$target"
  caught=""
  packages=(-p core-raft -p core-kv -p node-shell -p model-tests)
  case "$name" in
    shard-*) packages=(-p core-shard -p model-tests) ;;
    storage-*) packages=(-p storage) ;;
  esac
  if ! cargo test --no-fail-fast --release "${packages[@]}" --tests >"$log" 2>&1; then
    caught="cargo test: $(grep -E '^test .* FAILED$' "$log" | sed 's/^test //; s/ \.\.\. FAILED//' | tr '\n' ' ')"
  fi
  system=raft
  case "$name" in kv-*|shell-*) system=kv ;; shard-*) system=shard ;; storage-*) system="" ;; esac
  if [ -n "$system" ]; then
    ran_sim=yes
    simlog="$target/mutant-$name.sim.log"
    cargo build --release -p model-tests --bin sim >/dev/null 2>&1
    if "$target/release/sim" "$system" --seeds 300 --fail-fast >"$simlog" 2>&1; then :; else
      caught="$caught; sim $system: $(grep -m1 -E '^seed [0-9]+: ' "$simlog" | cut -c1-160)"
    fi
  fi
  git apply -R "$patch"
  if [ -n "$caught" ]; then
    echo "$name: CAUGHT by $caught"
  else
    echo "$name: MISSED (log: $log)"
    missed=$((missed + 1))
  fi
done
# Rebuild the real code so later commands do not run a mutant's binaries.
if [ -n "$ran_sim" ]; then
  cargo build --release -p model-tests --bin sim >/dev/null 2>&1
fi
exit "$missed"
