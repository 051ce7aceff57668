#!/usr/bin/env bash
# tls_stress.sh - RUNS two-node TLS jobs across two network namespaces
# standing in for two machines: the coordinator and node a in one, node b in
# the other, joined by a veth pair; every link (RPC and ring) is tls+tcp://
# with a throw-away CA and a certificate whose SANs are both addresses.
# Each job is bounded (JOB_TIMEOUT s for the coordinator, then NODE_GRACE s
# for the nodes to exit). Prints one line per run:
#   run=I coordinator=RC a=RC b=RC seconds=S hung=0|1 nodes_exit_s=E
# (S: the coordinator's run; E: how long the nodes took to exit after it)
# and a summary line:
#   tls_stress runs=K hangs=H spurious_exits=S median_s=X
# A hang is a job or node still running past its bound (its stacks are
# printed first, if gdb is there); a spurious exit is a node exiting non-zero
# from a job the coordinator completed (exit 0). See docs/performance.md.
# usage: bench/tls_stress.sh [RINGLEADER [RINGLEADER_NODE]]; run as root.
#   RUNS=50 jobs, STEPS=50 steps each of ROWS=100000 rows, JOB_TIMEOUT=60, NODE_GRACE=10,
#   KEEP=1 keeps the temporary directory (logs of every run).
set -euo pipefail
cd "$(dirname "$0")/.."
RL=$(realpath "${1:-build/coordinator/ringleader}")
NODE=$(realpath "${2:-build/node/ringleader-node}")
RUNS=${RUNS:-50}
STEPS=${STEPS:-50}
ROWS=${ROWS:-100000}
JOB_TIMEOUT=${JOB_TIMEOUT:-60}
NODE_GRACE=${NODE_GRACE:-10}
[ "$(id -u)" -eq 0 ] || { echo "tls_stress: needs root (ip netns)" >&2; exit 2; }

T=$(mktemp -d -p /tmp --suffix=.rl-tls-stress)
P=rlts$$
NET=10.200.$(($$ % 250))
IP1=$NET.1 IP2=$NET.2
PIDS=()
stop_all() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  PIDS=()
}
finish() {
  stop_all
  ip netns del "$P-1" 2>/dev/null || true
  ip netns del "$P-2" 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "# kept $T" >&2; else rm -rf "$T"; fi
}
trap finish EXIT

ip netns add "$P-1"
ip netns add "$P-2"
ip link add "$P-v1" type veth peer name "$P-v2"
ip link set "$P-v1" netns "$P-1"
ip link set "$P-v2" netns "$P-2"
ip -n "$P-1" addr add "$IP1/24" dev "$P-v1"
ip -n "$P-2" addr add "$IP2/24" dev "$P-v2"
for i in 1 2; do
  ip -n "$P-$i" link set "$P-v$i" up
  ip -n "$P-$i" link set lo up
done

# A throw-away CA and one certificate for both addresses (both ways: server and client).
(
  cd "$T"
  openssl ecparam -name prime256v1 -genkey -noout -out ca-key.pem
  openssl req -x509 -new -key ca-key.pem -sha256 -days 2 -subj "/CN=tls_stress CA" -out ca.pem
  openssl ecparam -name prime256v1 -genkey -noout -out key.pem
  openssl req -new -key key.pem -subj "/CN=$IP1" -out cert.csr
  printf 'subjectAltName=IP:%s,DNS:%s,IP:%s,DNS:%s,IP:127.0.0.1,DNS:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' \
    "$IP1" "$IP1" "$IP2" "$IP2" > ext.cnf
  openssl x509 -req -in cert.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
    -sha256 -extfile ext.cnf -out cert.pem
) >/dev/null 2>&1
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$T/tok"
chmod 600 "$T/tok"
cat > "$T/spec.yaml" <<YAML
cluster:
  name: tls-stress
  coordinator: tls+tcp://$IP1:7700
  launch: manual
  min_nodes: 2
  join_timeout_ms: 20000
  nodes:
    - { id: a, listen: tls+tcp://$IP1:7701 }
    - { id: b, listen: tls+tcp://$IP2:7702 }
security:
  token_file: $T/tok
  tls: { cert: $T/cert.pem, key: $T/key.pem, ca: $T/ca.pem }
data: { source: synthetic, rows: $ROWS, features: 16, seed: 5 }
model: { type: logistic }
training: { steps: $STEPS, learning_rate: 0.1 }
fault_tolerance: { heartbeat_ms: 100, failure_timeout_ms: 500 }
output: { dir: $T/out }
YAML
TLS=(--tls-cert "$T/cert.pem" --tls-key "$T/key.pem" --tls-ca "$T/ca.pem")

# Is pid still running (not a zombie)?
alive() { kill -0 "$1" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
# Waits up to $2 s for pid $1 to end; false if it is still running then.
wait_gone() {
  local end=$((SECONDS + $2))
  while alive "$1"; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.1
  done
}
# The stacks of a stuck process, for the log.
stacks() {
  command -v gdb >/dev/null || return 0
  timeout 20 gdb -p "$1" -batch -ex 'thread apply all bt' 2>/dev/null | grep -E '^(Thread|#)' \
    | sed "s/^/#   $2: /" || true
}

hangs=0 spurious=0 failed=0
secs=()
for run in $(seq 1 "$RUNS"); do
  D=$T/run$run
  mkdir -p "$D"
  sed -i "s|dir: .*|dir: $D/out }|" "$T/spec.yaml"
  t0=$(date +%s.%N)
  ip netns exec "$P-1" "$RL" run "$T/spec.yaml" >"$D/c.out" 2>"$D/c.err" &
  c=$!
  ip netns exec "$P-1" "$NODE" --coordinator "tls+tcp://$IP1:7700" --id a \
    --listen "tls+tcp://$IP1:7701" --token-file "$T/tok" "${TLS[@]}" 2>"$D/a.err" &
  a=$!
  ip netns exec "$P-2" "$NODE" --coordinator "tls+tcp://$IP1:7700" --id b \
    --listen "tls+tcp://$IP2:7702" --token-file "$T/tok" "${TLS[@]}" 2>"$D/b.err" &
  b=$!
  PIDS=("$c" "$a" "$b")
  hung=0 hung_by=-
  wait_gone "$c" "$JOB_TIMEOUT" || { hung=1; hung_by=c; }
  t1=$(date +%s.%N)
  wait_gone "$a" "$NODE_GRACE" || { hung=1; hung_by=a; }
  wait_gone "$b" "$NODE_GRACE" || { hung=1; hung_by=b; }
  t2=$(date +%s.%N)
  if [ "$hung" -eq 1 ]; then
    for who in c a b; do
      pid=${!who}
      tail -3 "$D/$who.err" | sed "s/^/#   $who: /"
      if alive "$pid"; then stacks "$pid" "$who"; fi
    done
  fi
  for p in "$c" "$a" "$b"; do kill -KILL "$p" 2>/dev/null || true; done
  rc_c=0 rc_a=0 rc_b=0
  wait "$c" || rc_c=$?
  wait "$a" || rc_a=$?
  wait "$b" || rc_b=$?
  PIDS=()
  s=$(echo "$t1 - $t0" | bc)
  secs+=("$s")
  echo "run=$run coordinator=$rc_c a=$rc_a b=$rc_b seconds=$(printf '%.2f' "$s") hung=$hung" \
    "nodes_exit_s=$(printf '%.2f' "$(echo "$t2 - $t1" | bc)") hung_by=$hung_by"
  if [ "$hung" -eq 1 ]; then
    hangs=$((hangs + 1))
  elif [ "$rc_c" -ne 0 ]; then
    failed=$((failed + 1))
    tail -3 "$D/c.err" | sed 's/^/#   c: /'
  elif [ "$rc_a" -ne 0 ] || [ "$rc_b" -ne 0 ]; then
    spurious=$((spurious + 1))
    for who in a b; do tail -2 "$D/$who.err" | sed "s/^/#   $who: /"; done
  fi
done
median=$(printf '%s\n' "${secs[@]}" | sort -g | awk '{v[NR]=$1} END {
  if (NR % 2) m = v[(NR + 1) / 2]; else m = (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f", m }')
[ "$failed" -eq 0 ] || echo "# $failed jobs failed (coordinator exit non-zero)"
echo "tls_stress runs=$RUNS hangs=$hangs spurious_exits=$spurious median_s=$median"
[ "$hangs" -eq 0 ] && [ "$spurious" -eq 0 ] && [ "$failed" -eq 0 ]
