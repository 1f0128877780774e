#!/usr/bin/env bash
# redis-instructions.sh [REDIS_SERVER]: instructions Redis executes per
# message, by step of its life, counted by valgrind's callgrind.
#
# For each of internal/store's BenchmarkRedisInstructionsLife (enqueue, form,
# claim, record), callbacks' BenchmarkRedisInstructionsReceipt (a delivery
# receipt stored) and internal/store's BenchmarkRedisInstructionsFloor (the
# same life's data written by plain pipelined commands: the floor), starts REDIS_SERVER (default: redis-server from PATH; no
# debug symbols are needed for the counts) under callgrind on a free loopback
# port, with the settings of `roxd bench whole` (no persistence,
# hash-max-listpack-value 256), runs the benchmark once against it and stops
# it. Installs valgrind with apt-get when it is missing and we are root.
#
# The counts do not move with the machine's load: two runs of one build agree
# to ~0.1%, where CPU time per message moves by 10-20% on a shared machine.
# Use them to compare a change to a Lua script with its parent (run this in
# both trees); they count instructions, not cache misses, so a change in
# keys touched still needs `roxd bench whole` (docs/BENCHMARKS.md).
set -euo pipefail

server=${1:-redis-server}
if ! command -v valgrind >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "redis-instructions: installing valgrind with apt-get" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null
  else
    echo "redis-instructions: valgrind is not on PATH; install it (Debian: apt-get install valgrind)" >&2
    exit 1
  fi
fi
command -v "$server" >/dev/null 2>&1 || { echo "redis-instructions: $server not found" >&2; exit 1; }

dir=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi
  rm -rf "$dir"
}
trap cleanup EXIT

for bench in ./internal/store/:BenchmarkRedisInstructionsLife ./callbacks/:BenchmarkRedisInstructionsReceipt ./internal/store/:BenchmarkRedisInstructionsFloor; do
  pkg=${bench%%:*}
  name=${bench##*:}
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  out="$dir/$name.out"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$server" --port "$port" --bind 127.0.0.1 \
    --save "" --appendonly no --dir "$dir" --hash-max-listpack-value 256 >"$dir/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -p "$port" ping >/dev/null || { echo "redis-instructions: redis-server did not start" >&2; cat "$dir/$name.log" >&2; exit 1; }
  ROXD_CALLGRIND_PID=$pid ROXD_CALLGRIND_OUT=$out TEST_REDIS_URL="redis://127.0.0.1:$port/0" \
    go test -count=1 -run '^$' -bench "^$name\$" -benchtime 1x "$pkg" | grep -E "^(Benchmark|ok|FAIL|---)|instr"
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  wait "$pid" 2>/dev/null || true
  pid=
done
