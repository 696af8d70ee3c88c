#!/usr/bin/env bash
# Reproduces the figures of BENCHMARKS.md: builds release binaries, starts cometa
# on a fresh temporary database for each configuration (loopback, ephemeral
# port), runs the load tool against each in turn, and stops it.
# Usage: bash benches/run.sh [load-tool flags, e.g. --rounds 300 --sends 5000]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
cargo bench --no-run --quiet --bench load 2>/dev/null
load=$(ls -t target/release/deps/load-* | grep -v '\.d$' | head -1)
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

for durability in full normal; do
  db="$tmp/$durability.sqlite"
  ./target/release/cometa --listen 127.0.0.1:0 --db "$db" --durability "$durability" \
    > "$tmp/out" 2> "$tmp/err" &
  pid=$!
  for _ in $(seq 100); do grep -q listening "$tmp/out" && break; sleep 0.05; done
  addr=$(sed -n 's#^cometa listening on http://##p' "$tmp/out")
  echo "== cometa --durability $durability ($addr)"
  "$load" --addr "$addr" "$@"
  kill -TERM "$pid"; wait "$pid" || true
  : > "$tmp/out"
done
