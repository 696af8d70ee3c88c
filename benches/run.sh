#!/usr/bin/env bash
# Reproduces every table of BENCHMARKS.md in one run on this machine: cometa, nchan
# (Debian's nginx + libnginx-mod-nchan) and the legacy PHP app (php-fpm behind
# nginx) side by side, the same load tool and load shape against each.
#
#   bash benches/run.sh           # full run (about 10 minutes)
#   bash benches/run.sh --quick   # smaller N, fewer rounds (about 4 minutes)
#
# Everything listens on 127.0.0.1 (ephemeral-range ports that are free); every
# server started here is stopped on exit. Results: target/bench/results.tsv, then
# the tables (`load --report`) on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=0
[[ "${1:-}" == --quick ]] && quick=1
if ((quick)); then
  NS=1000,5000; ROUNDS=3; SEND_SECS=2; FOREIGN=50; POLL_FOREIGN=15; PHP_NS=(24 1000)
else
  NS=1000,10000,19000; ROUNDS=10; SEND_SECS=5; FOREIGN=200; POLL_FOREIGN=40; PHP_NS=(24 1000 10000)
fi
SENDERS=64
CHILDREN=32   # php-fpm pm.max_children (pm = static)
HOLD=25       # the long-poll hold of all three, as the legacy contract says

# Each server and the load tool may open up to the hard limit (20,000 here).
ulimit -n "$(ulimit -Hn)"

cargo build --release --quiet
cargo bench --no-run --quiet --bench load 2>/dev/null
load=$(ls -t target/release/deps/load-* | grep -v '\.d$' | head -1)
mkdir -p target/bench
results=$root/target/bench/results.tsv
: > "$results"
tmp=$(mktemp -d /tmp/cometa-bench.XXXXXX)
pids=()

cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
  done
  echo "no free port" >&2; exit 1
}

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on $1" >&2; exit 1
}

# stop PID: SIGTERM, wait (bounded), SIGKILL.
stop() {
  kill -TERM "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# start_cometa DB [flags...]: sets $pid and $addr.
start_cometa() {
  local db=$1; shift
  RUST_LOG=error ./target/release/cometa --listen 127.0.0.1:0 --public-stats --db "$db" \
    --max-connections 19990 --hold "$HOLD" \
    --max-connections-per-client 0 --client-send-rate 0 --user-send-rate 0 "$@" > "$tmp/cometa.out" 2> "$tmp/cometa.err" &
  pid=$!; pids+=("$pid")
  for _ in $(seq 100); do grep -q listening "$tmp/cometa.out" && break; sleep 0.05; done
  addr=$(sed -n 's#^cometa listening on http://##p' "$tmp/cometa.out")
  [[ -n $addr ]] || { cat "$tmp/cometa.err" >&2; exit 1; }
}

# render TEMPLATE OUT key=value...: fills @KEY@ placeholders.
render() {
  local in=$1 out=$2; shift 2
  cp "$in" "$out"
  for kv in "$@"; do sed -i "s#@${kv%%=*}@#${kv#*=}#g" "$out"; done
}

# start_php DIR: php-fpm (pm = static) and nginx on a fresh database; sets
# $pid (nginx), $fpm_pid, $addr, $db.
start_php() {
  local d=$1
  rm -rf "$d"; mkdir -p "$d"/{body,proxy,fastcgi,uwsgi,scgi}
  db=$d/chat.sqlite
  ./target/release/cometa migrate --db "$db" > /dev/null
  local port fpm
  port=$(free_port); fpm=$(free_port)
  render benches/php/fpm.conf.in "$d/fpm.conf" TMP="$d" FPM="$fpm" CHILDREN="$CHILDREN"
  render benches/nginx/php.conf.in "$d/nginx.conf" TMP="$d" PORT="$port" FPM="$fpm" \
    ROOT="$root/legacy_php/public" DB="$db" HOLD="$HOLD"
  /usr/sbin/php-fpm8.2 -F -R -y "$d/fpm.conf" -p "$d" 2> "$d/fpm.err" &
  fpm_pid=$!; pids+=("$fpm_pid")
  /usr/sbin/nginx -p "$d" -c "$d/nginx.conf" 2> "$d/nginx.err" &
  pid=$!; pids+=("$pid")
  wait_port "$fpm"; wait_port "$port"
  addr=127.0.0.1:$port
}

echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $(uname -r); open files $(ulimit -n)"
echo "== $(rustc --version); $(/usr/sbin/nginx -v 2>&1); php-fpm $(/usr/sbin/php-fpm8.2 -v | head -1 | cut -d' ' -f2); nchan $(dpkg-query -W -f='${Version}' libnginx-mod-nchan 2>/dev/null)"

# --- cometa (notify watcher, durability full: the defaults) -----------------
start_cometa "$tmp/cometa.sqlite"
"$load" --target cometa --label cometa --addr "$addr" --pid "$pid" --out "$results" \
  --n "$NS" --rounds "$ROUNDS" --hold "$HOLD" --senders "$SENDERS" --send-secs "$SEND_SECS" \
  --modes mem,fanout,sends,foreign --db "$tmp/cometa.sqlite" \
  --php-insert benches/php/insert.php --foreign-rounds "$FOREIGN"
stop "$pid"

# --- cometa --threads 2: the multi-threaded runtime, same memory and fan-out --
start_cometa "$tmp/cometa-mt.sqlite" --threads 2
"$load" --target cometa --label cometa-mt --addr "$addr" --pid "$pid" --out "$results" \
  --n "$NS" --rounds "$ROUNDS" --hold "$HOLD" --modes mem,fanout
stop "$pid"

# --- cometa --watch poll: the fallback bound of foreign writes ----------------
start_cometa "$tmp/cometa-poll.sqlite" --watch poll
"$load" --target cometa --label "cometa-poll" --addr "$addr" --pid "$pid" --out "$results" \
  --modes foreign --db "$tmp/cometa-poll.sqlite" --php-insert benches/php/insert.php \
  --foreign-rounds "$POLL_FOREIGN" --foreign-spread-ms 1000
stop "$pid"

# --- nchan -------------------------------------------------------------------
d=$tmp/nchan; mkdir -p "$d"/{body,proxy,fastcgi,uwsgi,scgi}
port=$(free_port)
render benches/nginx/nchan.conf.in "$d/nginx.conf" TMP="$d" PORT="$port"
/usr/sbin/nginx -p "$d" -c "$d/nginx.conf" 2> "$d/nginx.err" &
pid=$!; pids+=("$pid")
wait_port "$port"
"$load" --target nchan --label nchan --addr "127.0.0.1:$port" --pid "$pid" --out "$results" \
  --n "$NS" --rounds "$ROUNDS" --hold "$HOLD" --senders "$SENDERS" --send-secs "$SEND_SECS" \
  --modes mem,fanout,sends
stop "$pid"

# --- legacy PHP under php-fpm behind nginx ---------------------------------------
# A fresh pool for each step: polls left over from a step keep children busy
# (PHP only notices a gone client when it writes).
start_php "$tmp/php"
"$load" --target php --label php-fpm --addr "$addr" --pid "$pid" --pid "$fpm_pid" \
  --out "$results" --senders "$SENDERS" --send-secs "$SEND_SECS" --modes sends,foreign \
  --db "$db" --php-insert benches/php/insert.php --foreign-rounds 50
stop "$pid"; stop "$fpm_pid"
for n in "${PHP_NS[@]}"; do
  start_php "$tmp/php"
  rounds=$((n <= CHILDREN ? ROUNDS : 1))
  "$load" --target php --label php-fpm --addr "$addr" --pid "$pid" --pid "$fpm_pid" \
    --out "$results" --n "$n" --rounds "$rounds" --hold "$HOLD" --modes mem,fanout \
    --php-children "$CHILDREN"
  stop "$pid"; stop "$fpm_pid"
done

echo
"$load" --report "$results"
