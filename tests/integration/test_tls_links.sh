#!/usr/bin/env bash
# test_tls_links.sh - TLS across two network namespaces (issue 15, item 2):
#   1. a bounded part of bench/tls_stress.sh: 5 two-node TLS jobs, no hang
#      and no node exiting non-zero from a completed job;
#   2. a node blocked mid-collective on a TLS link (its peer SIGSTOPped)
#      exits within 1 s of SIGTERM.
# Needs root (ip netns); skipped with a message otherwise.
# usage: test_tls_links.sh RINGLEADER RINGLEADER_NODE SOURCE_DIR
RL=$1 NODE=$2 SRC=$3
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" -ne 0 ] || ! ip netns add "rlt-probe-$$" 2>/dev/null; then
  echo "test_tls_links: skipped (needs root and ip netns)"; exit 0
fi
ip netns del "rlt-probe-$$"

# 1. The stress benchmark, bounded.
RUNS=5 JOB_TIMEOUT=60 bash "$SRC/bench/tls_stress.sh" "$RL" "$NODE" | tee "$RL_TMP/stress.txt" \
  || fail "tls_stress: $(tail -1 "$RL_TMP/stress.txt")"
grep -q '^tls_stress runs=5 hangs=0 spurious_exits=0 ' "$RL_TMP/stress.txt" || fail "tls_stress summary"

# 2. SIGTERM a node blocked in a collective.
P=rltl$$ NET=10.201.$(($$ % 250))
IP1=$NET.1 IP2=$NET.2
trap 'ip netns del "$P-1" 2>/dev/null || true; ip netns del "$P-2" 2>/dev/null || true; cleanup' EXIT
ip netns add "$P-1"
ip netns add "$P-2"
ip link add "$P-v1" type veth peer name "$P-v2"
ip link set "$P-v1" netns "$P-1"
ip link set "$P-v2" netns "$P-2"
ip -n "$P-1" addr add "$IP1/24" dev "$P-v1"
ip -n "$P-2" addr add "$IP2/24" dev "$P-v2"
for i in 1 2; do ip -n "$P-$i" link set "$P-v$i" up; ip -n "$P-$i" link set lo up; done
(
  cd "$RL_TMP"
  openssl ecparam -name prime256v1 -genkey -noout -out ca-key.pem
  openssl req -x509 -new -key ca-key.pem -sha256 -days 2 -subj "/CN=test CA" -out ca.pem
  openssl ecparam -name prime256v1 -genkey -noout -out key.pem
  openssl req -new -key key.pem -subj "/CN=$IP1" -out cert.csr
  printf 'subjectAltName=IP:%s,DNS:%s,IP:%s,DNS:%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$IP1" "$IP1" "$IP2" "$IP2" > ext.cnf
  openssl x509 -req -in cert.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 2 \
    -sha256 -extfile ext.cnf -out cert.pem
) >/dev/null 2>&1 || fail "openssl could not make the test certificates"
new_token "$RL_TMP/tok"
cat > "$RL_TMP/long.yaml" <<YAML
cluster:
  name: tls-sigterm
  coordinator: tls+tcp://$IP1:7700
  launch: manual
  min_nodes: 2
  join_timeout_ms: 20000
  nodes:
    - { id: a, listen: tls+tcp://$IP1:7701 }
    - { id: b, listen: tls+tcp://$IP2:7702 }
security:
  token_file: $RL_TMP/tok
  tls: { cert: $RL_TMP/cert.pem, key: $RL_TMP/key.pem, ca: $RL_TMP/ca.pem }
data: { source: synthetic, rows: 20000, features: 16 }
training: { steps: 1000000 }
fault_tolerance: { heartbeat_ms: 100, failure_timeout_ms: 20000 }
output: { dir: $RL_TMP/out }
YAML
TLS=(--tls-cert "$RL_TMP/cert.pem" --tls-key "$RL_TMP/key.pem" --tls-ca "$RL_TMP/ca.pem")
ip netns exec "$P-1" "$RL" run "$RL_TMP/long.yaml" >"$RL_TMP/c.out" 2>"$RL_TMP/c.err" &
RL_PIDS+=("$!")
ip netns exec "$P-1" "$NODE" --coordinator "tls+tcp://$IP1:7700" --id a \
  --listen "tls+tcp://$IP1:7701" --token-file "$RL_TMP/tok" "${TLS[@]}" 2>"$RL_TMP/a.err" &
A=$!; RL_PIDS+=("$A")
ip netns exec "$P-2" "$NODE" --coordinator "tls+tcp://$IP1:7700" --id b \
  --listen "tls+tcp://$IP2:7702" --token-file "$RL_TMP/tok" "${TLS[@]}" 2>"$RL_TMP/b.err" &
B=$!; RL_PIDS+=("$B")
end=$((SECONDS + 30))
until grep -qE '^step [1-9][0-9]*/' "$RL_TMP/c.out" "$RL_TMP/c.err" 2>/dev/null; do
  [ "$SECONDS" -lt "$end" ] || fail "the job made no step within 30 s: $(tail -3 "$RL_TMP/c.err")"
  sleep 0.1
done
kill -STOP "$B"
# a is blocked once its CPU time stops moving (it waits for b's frame).
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
end=$((SECONDS + 10)) prev=$(cpu "$A")
while :; do
  sleep 0.3
  now=$(cpu "$A")
  [ "$now" = "$prev" ] && break
  prev=$now
  [ "$SECONDS" -lt "$end" ] || fail "node a kept running with b stopped"
done
t0=$(date +%s%N)
kill -TERM "$A"
while kill -0 "$A" 2>/dev/null && ! grep -q '^State:.*Z' "/proc/$A/status" 2>/dev/null; do
  [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 5000 ] || break
  sleep 0.02
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
rc=0; wait "$A" || rc=$?
kill -CONT "$B"
[ "$ms" -le 1000 ] || fail "node a took $ms ms to exit after SIGTERM (blocked in a TLS collective); log: $(tail -3 "$RL_TMP/a.err")"
grep -q 'SIGTERM: stopping' "$RL_TMP/a.err" || fail "node a did not log the signal"
echo "node a exited $rc, $ms ms after SIGTERM (blocked mid-collective, peer stopped)"
echo "test_tls_links: ok"
