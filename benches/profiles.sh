#!/usr/bin/env bash
# Issue 8, item 8 ("no slower"): the build before the profile engine (df4174a)
# and the current tree side by side in one run, with the same load tool
# (benches/load.rs) and the same shapes, the two alternated round by round so
# that the machine's noise hits both; then the omegle profile on the current
# build. See BENCHMARKS.md, "Profiles (issue 8): before/after".
#
#   bash benches/profiles.sh           # N = 10,000, 5 rounds each (about 10 minutes)
#   bash benches/profiles.sh --quick   # N = 2,000, 2 rounds each (about 3 minutes)
#
# Each round, for each build: a fresh server on a fresh database; N waiters
# (RSS per idle waiter, idle SQL/s), fan-out rounds (one send to the N waiters;
# omegle: one sendMsg.php to each waiter, all fired at once), then 64 senders.
# BASE=<commit> picks another baseline. The baseline is built once in a
# temporary git worktree under target/bench/ (removed afterwards) and its
# binary kept as target/bench/cometa-<commit>.
#
# Everything listens on 127.0.0.1 (port 0: the kernel picks a free one); every
# server started here is stopped on exit. Results: target/bench/profiles.tsv,
# then the tables (`load --report-profiles`) on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=0
[[ "${1:-}" == --quick ]] && quick=1
if ((quick)); then
  N=2000; ROUNDS=2; FAN_ROUNDS=3; SEND_SECS=2; IDLE_SECS=2
else
  N=10000; ROUNDS=5; FAN_ROUNDS=5; SEND_SECS=5; IDLE_SECS=3
fi
SENDERS=64
HOLD=25
BASE=${BASE:-df4174a}

# Each server and the load tool hold N connections and more.
ulimit -n "$(ulimit -Hn)"

mkdir -p target/bench
tmp=$(mktemp -d /tmp/cometa-profiles.XXXXXX)
pids=()
base_wt=$root/target/bench/base

cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  if [[ -d $base_wt ]]; then git worktree remove --force "$base_wt" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- the two binaries -----------------------------------------------------------
nice cargo build --release --quiet
nice cargo bench --no-run --quiet --bench load 2>/dev/null
load=$(ls -t target/release/deps/load-* | grep -v '\.d$' | head -1)
new_rev=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml Cargo.lock profiles || echo "+dirty")
new_bin=$tmp/cometa-new
cp target/release/cometa "$new_bin"

base_rev=$(git rev-parse --short "$BASE")
base_bin=$root/target/bench/cometa-$base_rev
if [[ ! -x $base_bin ]]; then
  echo "== building the baseline $base_rev in $base_wt"
  [[ -d $base_wt ]] && git worktree remove --force "$base_wt"
  git worktree add --quiet --detach "$base_wt" "$base_rev"
  CARGO_TARGET_DIR=$root/target/bench/base-target nice cargo build --release --quiet \
    --manifest-path "$base_wt/Cargo.toml"
  cp target/bench/base-target/release/cometa "$base_bin"
  git worktree remove --force "$base_wt"
fi

# start BIN NAME [flags...]: a server on a fresh database; sets $pid, $addr, $db.
start() {
  local bin=$1 name=$2; shift 2
  db=$tmp/$name.sqlite
  rm -f "$db" "$db"-*
  RUST_LOG=error "$bin" --listen 127.0.0.1:0 --db "$db" --max-connections 19990 \
    --hold "$HOLD" "$@" > "$tmp/$name.out" 2> "$tmp/$name.err" &
  pid=$!; pids+=("$pid")
  addr=
  for _ in $(seq 200); do
    addr=$(sed -n 's#^cometa listening on http://##p' "$tmp/$name.out")
    [[ -n $addr ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  [[ -n $addr ]] || { echo "$name did not start:" >&2; cat "$tmp/$name.err" >&2; exit 1; }
}

# stop PID: SIGTERM, wait (bounded), SIGKILL.
stop() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

omegle_static=legacy_php/omegle/public
[[ -d $omegle_static ]] || omegle_static=legacy_php/public

# failed NAME ROUND: the load tool failed in a round; its figures up to the failure
# count, and the server's log is kept beside the results.
failed() {
  echo "== $1@$2: the load tool failed; server log in target/bench/$1@$2.err" >&2
  cp "$tmp/$1.err" "target/bench/$1@$2.err" 2>/dev/null || true
  printf '%s\tnote\t0\tthe load tool failed in this round\n' "$1@$2" >> "$results"
}

unlimited=(--public-stats --max-connections-per-client 0 --client-send-rate 0 --user-send-rate 0)
results=$root/target/bench/profiles.tsv
: > "$results"
shape=(--n "$N" --rounds "$FAN_ROUNDS" --hold "$HOLD" --idle-secs "$IDLE_SECS"
       --senders "$SENDERS" --send-secs "$SEND_SECS" --modes mem,fanout,sends --out "$results")

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(uname -r); open files $(ulimit -n); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== baseline $base_rev, profile engine $new_rev; N = $N, $ROUNDS rounds, $FAN_ROUNDS fan-out rounds each, $SENDERS senders for $SEND_SECS s"

for r in $(seq "$ROUNDS"); do
  # Alternate which build goes first.
  if ((r % 2)); then order=(base new); else order=(new base); fi
  for b in "${order[@]}"; do
    if [[ $b == base ]]; then
      start "$base_bin" base
    else
      # The loopback load is one client address far over any human's rate:
      # the per-client limits (issue 9) are off, as in benches/run.sh.
      start "$new_bin" new "${unlimited[@]}"
    fi
    "$load" --target cometa --label "$b@$r" --addr "$addr" --pid "$pid" "${shape[@]}" ||
      failed "$b" "$r"
    stop "$pid"
  done
  start "$new_bin" omegle --profile omegle --static-dir "$omegle_static" "${unlimited[@]}"
  "$load" --target omegle --label "omegle@$r" --addr "$addr" --pid "$pid" --db "$db" \
    --fire-conns "$SENDERS" "${shape[@]}" || failed omegle "$r"
  stop "$pid"
done

echo
"$load" --report-profiles "$results"
