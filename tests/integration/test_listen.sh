#!/usr/bin/env bash
# test_listen.sh - ring endpoints across two machines (two network namespaces
# joined by a veth pair: the coordinator and node a in ns1 at 10.200.0.1,
# node b in ns2 at 10.200.0.2):
#  1. node b started with --listen on loopback while the spec says 10.200.0.2
#     is refused at join, naming both addresses, within seconds; b started
#     without --listen then takes the spec's URL and the job completes;
#  2. a ring that cannot form (b listens at the spec's 10.201.0.2, on a second
#     network where every packet from ns1 is dropped, as by a firewall, while
#     b heartbeats over 10.200.0.2) fails the job within 15 s, naming the
#     member and the address.
# Needs root (ip netns); skipped with a message otherwise.
# usage: test_listen.sh RINGLEADER RINGLEADER_NODE
RL=$1 NODE=$2
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" -ne 0 ] || ! ip netns add "rlj-probe-$$" 2>/dev/null; then
  echo "test_listen: skipped (needs root and ip netns)"; exit 0
fi
ip netns del "rlj-probe-$$"
P=rlj$$ # namespace and interface prefix, unique per run
netns_cleanup() { ip netns del "$P-1" 2>/dev/null || true; ip netns del "$P-2" 2>/dev/null || true; }
trap 'netns_cleanup; cleanup' EXIT  # cleanup exits with the test's status
ip netns add "$P-1"
ip netns add "$P-2"
ip link add "${P}a" type veth peer name "${P}b"
ip link set "${P}a" netns "$P-1"
ip link set "${P}b" netns "$P-2"
ip -n "$P-1" addr add 10.200.0.1/24 dev "${P}a"
ip -n "$P-2" addr add 10.200.0.2/24 dev "${P}b"
for n in 1 2; do ip -n "$P-$n" link set lo up; done
ip -n "$P-1" link set "${P}a" up
ip -n "$P-2" link set "${P}b" up
# A second network between the two, 10.201.0.0/24, where every packet from
# ns1 is dropped: a token bucket (tc tbf) smaller than any packet.
ip link add "${P}c" type veth peer name "${P}d"
ip link set "${P}c" netns "$P-1"
ip link set "${P}d" netns "$P-2"
ip -n "$P-1" addr add 10.201.0.1/24 dev "${P}c"
ip -n "$P-2" addr add 10.201.0.2/24 dev "${P}d"
ip -n "$P-1" link set "${P}c" up
ip -n "$P-2" link set "${P}d" up
ip netns exec "$P-1" tc qdisc add dev "${P}c" root tbf rate 8bit burst 16 latency 1ms

new_token "$RL_TMP/t.token"
# spec FILE PORT B_LISTEN: the coordinator at PORT, node a at PORT+1.
spec() {
  cat > "$1" <<YAML
cluster:
  name: listen
  coordinator: tcp://10.200.0.1:$2
  launch: manual
  min_nodes: 2
  join_timeout_ms: 30000
  nodes:
    - { id: a, listen: tcp://10.200.0.1:$(($2 + 1)) }
    - { id: b, listen: $3 }
security: { token_file: $RL_TMP/t.token }
data: { source: synthetic, rows: 20000, features: 16, seed: 3, block_rows: 1000 }
model: { type: linear }
training: { steps: 30, learning_rate: 0.1 }
fault_tolerance: { heartbeat_ms: 100, failure_timeout_ms: 500 }
output: { dir: $RL_TMP/out-$(basename "$1" .yaml) }
YAML
}
# node NS ID LOG [--listen URL]: starts a node of the job at $COORD in
# namespace NS; sets NPID.
node() {
  local ns=$1 id=$2 log=$3; shift 3
  ip netns exec "$P-$ns" "$NODE" --coordinator "$COORD" --id "$id" \
    --token-file "$RL_TMP/t.token" --join-timeout-ms 10000 "$@" 2>"$log" &
  NPID=$!; RL_PIDS+=("$NPID")
}
# wait_exit PID SECONDS: until PID exits (bounded); its exit code in WRC.
wait_exit() {
  timeout "$2" tail --pid="$1" -f /dev/null ||
    { tail -n 15 "$RL_TMP"/*.err >&2; fail "process $1 still running after $2 s"; }
  WRC=0; wait "$1" || WRC=$?
}

# 1. Loopback advertised: refused; no --listen: the spec's URL; the job completes.
spec "$RL_TMP/ok.yaml" 7700 tcp://10.200.0.2:7702
COORD=tcp://10.200.0.1:7700
ip netns exec "$P-1" "$RL" run "$RL_TMP/ok.yaml" >"$RL_TMP/ok.out" 2>"$RL_TMP/ok.err" &
CPID=$!; RL_PIDS+=("$CPID")
node 1 a "$RL_TMP/a.err" --listen tcp://10.200.0.1:7701
APID=$NPID
node 2 b "$RL_TMP/bad.err" --listen tcp://127.0.0.1:7702
wait_exit "$NPID" 15
[ "$WRC" -ne 0 ] || fail "node b advertising loopback was admitted"
grep -q "node b listens on tcp://127.0.0.1:7702 but the spec says tcp://10.200.0.2:7702" \
  "$RL_TMP/bad.err" || fail "the refusal does not name both addresses: $(cat "$RL_TMP/bad.err")"
grep -q "INVALID_ARGUMENT" "$RL_TMP/bad.err" || fail "not INVALID_ARGUMENT: $(cat "$RL_TMP/bad.err")"
node 2 b "$RL_TMP/b.err"
BPID=$NPID
wait_exit "$CPID" 60
[ "$WRC" -eq 0 ] || { tail -20 "$RL_TMP/ok.err" >&2; fail "the run exited $WRC"; }
for p in "$APID" "$BPID"; do
  wait_exit "$p" 10; [ "$WRC" -eq 0 ] || { tail -n 3 "$RL_TMP"/[ab].err >&2; fail "a node exited $WRC"; }
done
grep -q "node b joined (pid [0-9]*, ring endpoint tcp://10.200.0.2:7702)" "$RL_TMP/ok.err" ||
  fail "node b did not join at the spec's URL: $(grep 'node b' "$RL_TMP/ok.err")"
echo "loopback refused ($(sed -n 's/.*INVALID_ARGUMENT: //p' "$RL_TMP/bad.err" | cut -c1-60));" \
  "without --listen b took tcp://10.200.0.2:7702 and the job completed"

# 2. A ring that cannot form fails within 15 s, naming b and its address.
spec "$RL_TMP/drop.yaml" 7710 tcp://10.201.0.2:7712
COORD=tcp://10.200.0.1:7710
ip netns exec "$P-1" "$RL" run "$RL_TMP/drop.yaml" >"$RL_TMP/drop.out" 2>"$RL_TMP/drop.err" &
CPID=$!; RL_PIDS+=("$CPID")
node 1 a "$RL_TMP/da.err" --listen tcp://10.200.0.1:7711
node 2 b "$RL_TMP/db.err"
for _ in $(seq 1 200); do # the job starts once both joined (bounded: 20 s)
  grep -q "2 of 2 nodes joined" "$RL_TMP/drop.out" 2>/dev/null && break
  kill -0 "$CPID" 2>/dev/null || break
  sleep 0.1
done
grep -q "2 of 2 nodes joined" "$RL_TMP/drop.out" || fail "the nodes did not join: $(tail -5 "$RL_TMP/drop.err")"
t0=$(date +%s%N)
wait_exit "$CPID" 30
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ "$WRC" -eq 1 ] || fail "a ring that cannot form: exit $WRC, want 1"
[ "$ms" -lt 15000 ] || fail "the job took $ms ms to fail, want < 15 s"
grep -q "the ring cannot form: member b at tcp://10.201.0.2:7712 did not answer a" "$RL_TMP/drop.err" ||
  fail "the error does not name b and its address: $(tail -3 "$RL_TMP/drop.err")"
printf 'ring that cannot form failed in %d ms: %s\n' "$ms" \
  "$(grep -o 'the ring cannot form: [^?]*' "$RL_TMP/drop.err" | head -1)"
echo "test_listen: ok"
