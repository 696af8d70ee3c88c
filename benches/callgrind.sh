#!/usr/bin/env bash
# Instructions per send, by thread, under valgrind's callgrind: the baseline
# (df4174a, built by benches/profiles.sh into target/bench/) and the current
# build, each on a fresh database, first idle (start-up and 1 s of nothing),
# then under `load --modes sends` (8 senders for 4 s, one follower). Per send =
# (loaded - idle) / sends committed, for each thread. Instruction counts do not
# depend on the machine's other load, unlike times: this is the figure to
# compare builds with on a shared machine. See BENCHMARKS.md, "Instructions
# per send".
#
#   bash benches/callgrind.sh        # about 2 minutes
#
# Needs valgrind. Servers listen on 127.0.0.1 (port chosen here, checked free)
# and are stopped before the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "benches/callgrind.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }

BASE=${BASE:-df4174a}
base_bin=target/bench/cometa-$(git rev-parse --short "$BASE")
[[ -x $base_bin ]] || { echo "no $base_bin: run bash benches/profiles.sh --quick once to build it" >&2; exit 1; }
cargo build --release --quiet
cargo bench --no-run --quiet --bench load 2>/dev/null
load=$(ls -t target/release/deps/load-* | grep -v '\.d$' | head -1)
tmp=$(mktemp -d /tmp/cometa-callgrind.XXXXXX)
pid=
cleanup() {
  [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# run NAME BIN LOADED [flags...]: callgrind output per thread in $tmp/NAME.out-NN;
# prints the sends committed when LOADED=1.
run() {
  local name=$1 bin=$2 loaded=$3; shift 3
  local port db
  port=$(free_port)
  db=$tmp/$name.sqlite
  RUST_LOG=error valgrind --tool=callgrind --separate-threads=yes \
    --callgrind-out-file="$tmp/$name.out" "$bin" --db "$db" --listen "127.0.0.1:$port" \
    --static-dir "$tmp" "$@" >"$tmp/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
  done
  if ((loaded)); then
    "$load" --target cometa --addr "127.0.0.1:$port" --pid "$pid" --modes sends \
      --senders 8 --send-secs 4 --n 100 --rounds 1 2>&1 | awk '$1 == "sends_ok" {printf "%d\n", $3}'
  else
    sleep 1
  fi
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
}

# totals NAME: "thread instructions" per thread file.
totals() {
  for f in "$tmp/$1".out-*; do
    printf '%s %s\n' "${f##*-}" "$(grep -m1 '^totals:' "$f" | awk '{print $2}')"
  done
}

new_flags=(--max-connections-per-client 0 --client-send-rate 0 --user-send-rate 0)
run base-idle "$base_bin" 0
base_sends=$(run base "$base_bin" 1)
run new-idle target/release/cometa 0 "${new_flags[@]}"
new_sends=$(run new target/release/cometa 1 "${new_flags[@]}")

# Threads are numbered in creation order; name them by what they run.
name_of() {
  local f=$1
  if grep -q '(below main)' "$f"; then echo "event loop"
  elif grep -q 'writer_loop' "$f"; then echo writer
  elif grep -q 'blocking::pool' "$f"; then echo readers
  elif grep -q 'src/watcher.rs' "$f"; then echo watcher  # and its file events' thread
  else echo other; fi
}

report() {
  local name=$1 sends=$2
  declare -A idle=()
  while read -r t n; do idle[$t]=$n; done < <(totals "$name-idle")
  declare -A per=()
  for f in "$tmp/$name".out-*; do
    local t=${f##*-} n
    n=$(grep -m1 '^totals:' "$f" | awk '{print $2}')
    local who
    who=$(name_of "$f")
    per[$who]=$(( ${per[$who]:-0} + n - ${idle[$t]:-0} ))
  done
  local total=0 each
  for who in "event loop" writer watcher readers other; do
    each=$(( ${per[$who]:-0} / sends ))
    ((each > 0)) || continue
    total=$((total + each))
    printf '%s\t%s\t%d\n' "$name" "$who" "$each"
  done
  printf '%s\t%s\t%d\n' "$name" total "$total"
}

echo "sends committed: base $base_sends, new $new_sends"
printf 'build\tthread\tinstructions per send\n'
report base "$base_sends"
report new "$new_sends"
