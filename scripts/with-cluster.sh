#!/usr/bin/env bash
# with-cluster.sh CMD...: run CMD with a private, throw-away 3-master Redis
# Cluster.
#
# Starts three redis-server processes from PATH (scripts/with-redis.sh
# installs it when missing) with --cluster-enabled yes on free loopback ports,
# each in its own temporary directory with no persistence, joins them with
# `redis-cli --cluster create`, waits for cluster_state:ok, exports
# TEST_REDIS_CLUSTER_URL (redis-cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3)
# for the tests, runs CMD and stops the nodes whatever CMD returns. Exit
# status is CMD's.
set -euo pipefail

command -v redis-server >/dev/null 2>&1 || { echo "with-cluster: redis-server is not on PATH (run through scripts/with-redis.sh, which installs it)" >&2; exit 1; }
command -v redis-cli >/dev/null 2>&1 || { echo "with-cluster: redis-cli is not on PATH" >&2; exit 1; }

# free_port prints a loopback port P with P and P+10000 (the cluster bus)
# both free, and P <= 45000 (a cluster node's port must be <= 55535).
free_port() {
  python3 - <<'PY'
import random, socket
for _ in range(200):
    p = random.randint(20000, 45000)
    ok = True
    for q in (p, p + 10000):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", q))
        except OSError:
            ok = False
        finally:
            s.close()
    if ok:
        print(p)
        break
PY
}

top=$(mktemp -d)
ports=()
cleanup() {
  for p in "${ports[@]}"; do
    redis-cli -p "$p" shutdown nosave >/dev/null 2>&1 || true
  done
  for f in "$top"/*/redis.pid; do
    [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
  done
  rm -rf "$top"
}
trap cleanup EXIT

for i in 1 2 3; do
  p=$(free_port)
  while printf '%s\n' "${ports[@]:-}" | grep -qx "$p"; do p=$(free_port); done
  d="$top/n$i"
  mkdir -p "$d"
  redis-server --port "$p" --bind 127.0.0.1 --save "" --appendonly no \
    --cluster-enabled yes --cluster-config-file "$d/nodes.conf" --cluster-node-timeout 5000 \
    --dir "$d" --daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log" >/dev/null
  ports+=("$p")
done
addrs=()
for p in "${ports[@]}"; do
  for _ in $(seq 1 100); do
    redis-cli -p "$p" ping >/dev/null 2>&1 && break
    sleep 0.05
  done
  redis-cli -p "$p" ping >/dev/null || { echo "with-cluster: redis-server on $p did not start" >&2; cat "$top"/*/redis.log >&2; exit 1; }
  addrs+=("127.0.0.1:$p")
done
redis-cli --cluster create "${addrs[@]}" --cluster-yes >"$top/create.log" 2>&1 || {
  echo "with-cluster: redis-cli --cluster create failed" >&2; cat "$top/create.log" >&2; exit 1; }
for p in "${ports[@]}"; do
  ok=
  for _ in $(seq 1 200); do
    if redis-cli -p "$p" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then ok=1; break; fi
    sleep 0.05
  done
  [ -n "$ok" ] || { echo "with-cluster: node $p never reached cluster_state:ok" >&2; exit 1; }
done

export TEST_REDIS_CLUSTER_URL="redis-cluster://$(IFS=,; echo "${addrs[*]}")"
echo "with-cluster: 3-master cluster on $TEST_REDIS_CLUSTER_URL" >&2
"$@"
