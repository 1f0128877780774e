#!/usr/bin/env bash
# with-redis.sh CMD...: run CMD with a private, throw-away redis-server.
#
# Starts redis-server from PATH (installing Debian's redis-server with apt-get
# when it is missing and we are root) on a free loopback port, with no
# persistence, exports TEST_REDIS_URL for the tests, runs CMD and stops the
# server whatever CMD returns. Exit status is CMD's.
set -euo pipefail

if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "with-redis: installing redis-server with apt-get" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  else
    echo "with-redis: redis-server is not on PATH; install it (Debian: apt-get install redis-server)" >&2
    exit 1
  fi
fi

port=$(python3 - <<'PY' 2>/dev/null || echo $(( 20000 + RANDOM % 20000 ))
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
)
dir=$(mktemp -d)
cleanup() {
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$dir" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >/dev/null
for _ in $(seq 1 100); do
  redis-cli -p "$port" ping >/dev/null 2>&1 && break
  sleep 0.05
done
redis-cli -p "$port" ping >/dev/null || { echo "with-redis: redis-server did not start" >&2; cat "$dir/redis.log" >&2; exit 1; }

export TEST_REDIS_URL="redis://127.0.0.1:$port/0"
echo "with-redis: redis-server on $TEST_REDIS_URL" >&2
"$@"
