#!/usr/bin/env bash
# The Debian package, end to end: build it with `cargo deb`, install it with
# dpkg, check what postinst made (user, data folder), start the installed
# binary as the packaged user with the packaged settings, answer a send and a
# poll with curl, stop it, remove the package.
#
# Needs root (dpkg) and cargo-deb. Under CI=true a missing cargo-deb is
# installed (`cargo install cargo-deb --locked`) and anything else missing is a
# failure; elsewhere the script says it is skipped and exits 0.
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
  if [ "${CI:-}" = true ]; then
    echo "tests/deb.sh: $1; CI=true, so this is a failure" >&2
    exit 1
  fi
  echo "tests/deb.sh: skipped ($1)" >&2
  exit 0
}

if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  exec sudo -E env PATH="$PATH" bash "$0" "$@"
fi
[ "$(id -u)" = 0 ] || skip "not root: dpkg -i needs root"
command -v dpkg >/dev/null || skip "no dpkg"
command -v curl >/dev/null || skip "no curl"
if ! cargo deb --version >/dev/null 2>&1; then
  [ "${CI:-}" = true ] || skip "cargo-deb not installed (cargo install cargo-deb)"
  # A debug build of the tool: it packages one file, and compiles in half the time.
  cargo install cargo-deb --locked --debug
fi

# One run at a time on this machine: it installs a system package.
exec 9>/tmp/cometa-deb-test.lock
flock 9

work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  dpkg -r cometa >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The package of the debug build that `cargo test` made just before (the same
# files, units and scripts; an operator's `cargo deb` builds the release
# binary): a release build from scratch would be a third of the suite's time.
# DEB_PROFILE=release packages what an operator gets.
cargo deb --locked --strip --profile "${DEB_PROFILE:-dev}" --output "$work/"
deb=$(ls "$work"/cometa_*.deb)
echo "tests/deb.sh: built $(basename "$deb")"
dpkg-deb -c "$deb" | awk '{print $6}' | sort > "$work/contents"
for f in ./usr/bin/cometa ./etc/default/cometa ./usr/lib/systemd/system/cometa.service \
         ./usr/lib/systemd/system/cometa.socket ./usr/share/cometa/public/index.html \
         ./usr/share/doc/cometa/copyright; do
  grep -qx "$f" "$work/contents" || { echo "package lacks $f" >&2; cat "$work/contents" >&2; exit 1; }
done
if grep -q '\.php$' "$work/contents"; then
  echo "the package ships PHP files" >&2; exit 1
fi

DEBIAN_FRONTEND=noninteractive dpkg -i "$deb"

# The binary is stripped, and says what it is.
if readelf -S /usr/bin/cometa | grep -q '\.debug_info'; then
  echo "/usr/bin/cometa is not stripped" >&2; exit 1
fi
/usr/bin/cometa --version
# postinst: the user, in group www-data; the data folder cometa:www-data 2770.
[ "$(id -gn cometa)" = www-data ] || { echo "cometa's group: $(id -gn cometa)" >&2; exit 1; }
[ "$(stat -c '%U:%G %a' /var/lib/chat)" = "cometa:www-data 2770" ] || {
  echo "/var/lib/chat: $(stat -c '%U:%G %a' /var/lib/chat)" >&2; exit 1; }

# Start the installed binary as the packaged user with the packaged settings
# (systemd does not run here: the socket and notify parts are tested by
# tests/socket_activation.rs and tests/ops.rs); a fresh database in the
# packaged folder, ports on loopback.
db=/var/lib/chat/deb-test-$$.sqlite
# setpriv execs (runuser would stay as a parent): $pid is cometa itself.
setpriv --reuid=cometa --regid=www-data --init-groups -- sh -c "
  umask 0007
  set -a; . /etc/default/cometa; set +a
  export CHAT_DB=$db COMETA_STATIC_DIR=/usr/share/cometa/public
  exec /usr/bin/cometa --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0
" > "$work/out" 2> "$work/err" &
pid=$!
for _ in $(seq 100); do
  grep -q '^cometa admin on ' "$work/out" 2>/dev/null && break
  sleep 0.1
done
grep -q '^cometa admin on ' "$work/out" || { cat "$work/out" "$work/err" >&2; exit 1; }
public=$(sed -n 's/^cometa listening on //p' "$work/out")
admin=$(sed -n 's/^cometa admin on //p' "$work/out")

sent=$(curl -sf -d 'user=deb&message=hello from the package' "$public/sendMessage.php")
echo "send: $sent"
[[ "$sent" == '{"status":"ok","id":'* ]]
poll=$(curl -sf "$public/listenToRecive.php?lastId=0")
echo "poll: $poll"
[[ "$poll" == *'"message":"hello from the package"'* ]]
# Whole answers first: `curl | grep -q` fails under pipefail when grep stops early.
page=$(curl -sf "$public/")
[[ "$page" == *'<script src="jquery-1.12.4.min.js">'* ]]
[ "$(curl -sf "$admin/readyz")" = ready ]
metrics=$(curl -sf "$admin/metrics")
grep -q '^cometa_build_info{' <<<"$metrics"
# The database php-fpm will share: group www-data, group-writable.
[ "$(stat -c '%G %a' "$db")" = "www-data 660" ] || { echo "$db: $(stat -c '%G %a' "$db")" >&2; exit 1; }

kill -TERM "$pid"
wait "$pid" || { echo "cometa's exit status after SIGTERM: $?" >&2; cat "$work/err" >&2; exit 1; }
pid=
rm -f "$db" "$db-wal" "$db-shm"

dpkg -r cometa
[ ! -e /usr/bin/cometa ] || { echo "/usr/bin/cometa left after dpkg -r" >&2; exit 1; }
echo "tests/deb.sh: ok"
