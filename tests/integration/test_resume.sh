#!/usr/bin/env bash
# test_resume.sh - checkpoints, `ringleader run --resume` and the nodes'
# coordinator_grace_ms (docs/operations.md):
#  1. an uninterrupted 4-node run: the reference model;
#  2. launch: local, three runs: the coordinator SIGKILLed at a random step
#     (after a checkpoint exists); its nodes stay, re-dialing it; then
#     --resume: the same node processes are re-admitted (no new one is
#     started) keeping blocks, the job completes, run.json's model is the
#     reference's bytes, every step is in the history once, and a resume
#     event says from where;
#  3. launch: manual, two runs: the coordinator and n4 SIGKILLed; the
#     resumed coordinator re-admits n1-n3, and `ringleader status` says it is
#     resuming with 3 nodes re-admitted until a new n4 joins; the model is
#     the reference's bytes;
#  4. the newest checkpoint bit-flipped after a kill: --resume refuses it
#     naming the file and the checksum, falls back to the previous one and
#     still gives the reference's bytes;
#  5. --resume with no checkpoint, and with a checkpoint of another spec:
#     refused, naming the directory or the file, exit 1, in seconds;
#  6. no coordinator comes back: the nodes leave, exit 1, once
#     coordinator_grace_ms (1500 ms) has passed, saying so.
# usage: test_resume.sh RINGLEADER RINGLEADER_NODE
RL=$1 NODE=$2
# The runs' output directories go on tmpfs where there is one. On a disk
# shared with other tests a checkpoint's fsyncs took 1.3 s, and a 1.4 s job
# could end before its second checkpoint existed, so before the kill; the
# write path on a disk is test_checkpoint's, and bench/checkpoint.sh's cost.
[ -d /dev/shm ] && [ -w /dev/shm ] && RL_TMP_PARENT=/dev/shm
. "$(dirname "$0")/lib.sh"
export RINGLEADER_NODE_BIN=$NODE
new_token "$RL_TMP/t.token"
export RINGLEADER_TOKEN=$(cat "$RL_TMP/t.token")
STEPS=${RL_RESUME_STEPS:-3000}

# spec FILE NAME LAUNCH: 4 nodes, exact sums, a checkpoint every 100 ms; a
# generous failure timeout, and min_nodes 1: the CPUs are shared (and slow
# under ASan), and a node failed for a late heartbeat must cost a recovery,
# not the job (exact sums keep the model's bytes either way).
spec() {
  local grace=${4:-60000}
  {
    echo "cluster:"
    echo "  name: $2"
    echo "  coordinator: tcp://127.0.0.1:$(free_port)"
    echo "  launch: $3"
    echo "  min_nodes: 1"
    echo "  join_timeout_ms: 20000"
    echo "  nodes:"
    for i in 1 2 3 4; do echo "    - { id: n$i, listen: tcp://127.0.0.1:$(free_port) }"; done
    echo "data: { source: synthetic, rows: 40000, features: 16, noise: 0.1, seed: 11, block_rows: 1000 }"
    echo "model: { type: linear }"
    echo "training: { steps: $STEPS, learning_rate: 0.05, l2: 0.001, exact_sum: true }"
    echo "fault_tolerance: { heartbeat_ms: 100, failure_timeout_ms: 5000, coordinator_grace_ms: $grace }"
    echo "output: { dir: $RL_TMP/$2, checkpoint_every_ms: 100 }"
  } > "$1"
}
start() { # start SPEC [ARGS...]: the coordinator in the background; sets CPID, CURL
  local s=$1; shift
  "$RL" run "$s" "$@" >>"$s.out" 2>>"$s.err" &
  CPID=$!; RL_PIDS+=("$CPID")
  CURL=$(sed -n 's/^  coordinator: //p' "$s")
  RL_COORD_URLS+=("$CURL")
}
finish() { # finish SPEC: waits (bounded) for exit 0
  local rc=0
  timeout 300 tail --pid="$CPID" -f /dev/null || fail "$1: coordinator still running after 300 s"
  wait "$CPID" || rc=$?
  [ "$rc" -eq 0 ] || { tail -20 "$1.err" >&2; fail "$1: exit $rc"; }
}
node_pids() { # node_pids SPEC: the PIDs of its live nodes (manual: those the test started)
  local p
  for p in "${MANUAL_PIDS[@]:-}"; do [ -n "$p" ] && kill -0 "$p" 2>/dev/null && echo "$p"; done
  for p in $(sed -n 's/.*listen: tcp:\/\/127.0.0.1:\([0-9]*\) }/\1/p' "$1"); do
    pgrep -f "ringleader-node.*--listen tcp://127.0.0.1:$p( |\$)" || true
  done
}
MANUAL_PIDS=()
start_manual_nodes() { # start_manual_nodes SPEC: n1..n4 joining CURL
  local i
  for i in 1 2 3 4; do
    "$NODE" --coordinator "$CURL" --id "n$i" --join-timeout-ms 20000 >>"$1.n$i" 2>&1 &
    RL_PIDS+=("$!"); MANUAL_PIDS+=("$!")
  done
}
# wait_step SPEC N [FILE]: until the job reports step N or more and its output
# directory holds FILE (default checkpoint.rlc) (bounded: 60 s)
wait_step() {
  local i s="" f="$RL_TMP/$(basename "$1" .yaml)/${3:-checkpoint.rlc}"
  for i in $(seq 1 600); do
    s=$("$RL" status "$CURL" --timeout-ms 1000 2>/dev/null | sed -n 's/.*step \([0-9]*\)\/.*/\1/p' | head -1 || true)
    if [ -n "$s" ] && [ "$s" -ge "$2" ] && [ -f "$f" ]; then
      STEP_SEEN=$s; return 0
    fi
    kill -0 "$CPID" 2>/dev/null || { grep -v '^step' "$1.err" | tail -8 >&2; fail "$1: coordinator exited before step $2"; }
    sleep 0.1
  done
  fail "$1: step $2 not reached in 60 s (last seen: ${s:-none})"
}
# node_logs SPEC: where its nodes log (local: the coordinator's stderr)
node_logs() { ls "$1".err "$1".n[1-4] 2>/dev/null; }
# kill_coordinator SPEC [N]: SIGKILL, then until N (default 4) of its nodes
# say they keep their blocks and re-dial it (bounded: 30 s); the nodes'
# PIDs then are in BEFORE (sorted), and each must still run.
kill_coordinator() {
  local want=${2:-4} i n
  kill -KILL "$CPID"; wait "$CPID" 2>/dev/null || true
  for i in $(seq 1 300); do
    n=$(cat $(node_logs "$1") | grep "keeping this node's blocks and re-dialing" | grep -o ' n[0-9]* warn\]' | sort -u | wc -l || true)
    [ "$n" -ge "$want" ] && break
    [ "$i" -lt 300 ] || fail "$1: $n of $want nodes said they re-dial within 30 s of the kill"
    sleep 0.1
  done
  BEFORE=$(node_pids "$1" | sort -n | tr '\n' ' ')
  [ "$(wc -w <<<"$BEFORE")" -eq "$want" ] || fail "$1: nodes running after the kill: $BEFORE"
  cat $(node_logs "$1") | grep -q "leaving" && fail "$1: a node left: $(cat $(node_logs "$1") | grep leaving)"
  return 0
}
# check_readmitted SPEC NAME PIDS: the resumed job's join events name each of
# PIDS as re-admitted from the earlier coordinator, and each said it kept blocks
check_readmitted() {
  /usr/bin/python3 - "$RL_TMP/$2/run.json" $3 <<'PY' || { cat $(node_logs "$1") | grep -v '^step' | tail -40 >&2; fail "$2: re-admission not in run.json"; }
import json, sys
r = json.load(open(sys.argv[1]))
re_pids = sorted(int(e["detail"].split()[1].rstrip(",")) for e in r["events"]
                 if e["kind"] == "join" and "re-admitted from an earlier coordinator" in e["detail"])
want = sorted(int(p) for p in sys.argv[2:])
assert re_pids == want, "re-admitted pids %s, the nodes that ran on: %s; events since the resume: %s" % (
    re_pids, want, [e["node"] + ": " + e["detail"] for e in r["events"][-12:]])
PY
  local k
  k=$(cat $(node_logs "$1") | grep -c "after re-admission: [0-9]* blocks, [1-9][0-9]* of the [0-9]* held kept" || true)
  [ "$k" -ge "$(wc -w <<<"$3")" ] || fail "$2: $k nodes said they kept blocks after re-admission"
}
# model_text RUN_JSON: steps completed and the model's doubles as repr(), one
# line; checks status, coverage, and that every step is in the history once.
model_text() { /usr/bin/python3 - "$1" "$STEPS" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
steps = int(sys.argv[2])
assert r["status"] == "ok", r.get("error")
assert r["coverage"]["violations"] == 0, r["coverage"]
seen = [s["step"] for s in r["steps"]]
assert seen == list(range(steps)), "step history: %d entries, first gaps or repeats at %s" % (
    len(seen), [k for k, s in enumerate(seen) if s != k][:3])
b = r["model"]["bias"]
print(r["steps_completed"], [repr(x) for x in r["model"]["weights"] + (b if isinstance(b, list) else [b])])
PY
}
# check_resumed NAME: run.json of NAME has the reference's model and a resume event
check_resumed() {
  model_text "$RL_TMP/$1/run.json" > "$RL_TMP/$1.model" || fail "$1: bad run.json"
  if ! cmp -s "$RL_TMP/ref.model" "$RL_TMP/$1.model"; then
    diff <(tr ',' '\n' < "$RL_TMP/ref.model") <(tr ',' '\n' < "$RL_TMP/$1.model") | head -6 >&2
    fail "$1: the resumed job's model differs from the uninterrupted run's"
  fi
  /usr/bin/python3 -c 'import json,sys; assert "resume" in [e["kind"] for e in json.load(open(sys.argv[1]))["events"]]' \
    "$RL_TMP/$1/run.json" || fail "$1: no resume event in run.json"
}
random_step() { echo $(( 200 + RANDOM % (STEPS * 2 / 3) )); }

# 1. The reference.
spec "$RL_TMP/ref.yaml" ref local; start "$RL_TMP/ref.yaml"; finish "$RL_TMP/ref.yaml"
model_text "$RL_TMP/ref/run.json" > "$RL_TMP/ref.model" || fail "ref: bad run.json"
[ -f "$RL_TMP/ref/checkpoint.rlc" ] || fail "ref: no checkpoint at the end"
echo "reference: $STEPS steps, checkpoint at the end"

# 2. launch: local, killed at a random step.
for r in 1 2 3; do
  S=$RL_TMP/local$r.yaml; spec "$S" "local$r" local; start "$S"
  wait_step "$S" "$(random_step)"; kill_coordinator "$S"
  echo "local $r: coordinator killed after step $STEP_SEEN"
  start "$S" --resume; finish "$S"
  grep -q "resuming job 'local$r' from $RL_TMP/local$r/checkpoint.rlc at step" "$S.out" \
    || fail "local $r: --resume did not say where from: $(cat "$S.out")"
  grep -q "4 nodes of the earlier coordinator still running" "$S.err" \
    || fail "local $r: the resumed coordinator did not find the running nodes"
  check_resumed "local$r"
  check_readmitted "$S" "local$r" "$BEFORE"
  echo "local $r: resumed ($(grep -o 'at step [0-9]*' "$S.out")), the 4 running nodes re-admitted, model identical"
done

# 3. launch: manual; n4 is killed with the coordinator.
for r in 1 2; do
  S=$RL_TMP/manual$r.yaml; spec "$S" "manual$r" manual; start "$S"; MANUAL_PIDS=(); start_manual_nodes "$S"
  wait_step "$S" "$(random_step)"
  n4=$(pgrep -f "ringleader-node --coordinator $CURL --id n4( |\$)") || fail "manual $r: no n4"
  kill -KILL "$n4"; kill_coordinator "$S" 3
  echo "manual $r: coordinator and n4 killed after step $STEP_SEEN; n1-n3 re-dial"
  start "$S" --resume
  # until n1-n3 are back and n4 is not, status says the coordinator is resuming (bounded: 20 s)
  for i in $(seq 1 200); do
    st=$("$RL" status "$CURL" --timeout-ms 1000 2>/dev/null || true)
    grep -q "^resuming from its checkpoint at step [0-9]*; 3 nodes re-admitted with their blocks" <<<"$st" && break
    kill -0 "$CPID" 2>/dev/null || fail "manual $r: the resumed coordinator exited"
    [ "$i" -lt 200 ] || fail "manual $r: status never said resuming with 3 nodes re-admitted: $st"
    sleep 0.1
  done
  grep -q "waiting for nodes" <<<"$st" || fail "manual $r: status: $st"
  "$NODE" --coordinator "$CURL" --id n4 --join-timeout-ms 20000 >>"$S.n4" 2>&1 &
  RL_PIDS+=("$!"); MANUAL_PIDS+=("$!")
  finish "$S"
  check_resumed "manual$r"
  check_readmitted "$S" "manual$r" "$BEFORE"
  # the job's end reaches every node: n1-n3 and the new n4 exit 0, promptly (bounded: 15 s)
  for p in $BEFORE "${MANUAL_PIDS[-1]}"; do
    timeout 15 tail --pid="$p" -f /dev/null || fail "manual $r: node pid $p still running 15 s after the job's end"
    rc=0; wait "$p" || rc=$?; [ "$rc" -eq 0 ] || fail "manual $r: node pid $p exited $rc after the job's end"
  done
  echo "manual $r: resumed ($(grep -o 'at step [0-9]*' "$S.out")), n1-n3 re-admitted, a new n4, model identical"
done

# 4. A bit-flipped newest checkpoint: the previous one is used.
S=$RL_TMP/flip.yaml; spec "$S" flip local; start "$S"
wait_step "$S" "$(random_step)" checkpoint.prev.rlc; kill_coordinator "$S"
size=$(stat -c %s "$RL_TMP/flip/checkpoint.rlc")
/usr/bin/python3 - "$RL_TMP/flip/checkpoint.rlc" "$size" <<'PY'
import sys
p, n = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read()); b[n // 2] ^= 0x04; open(p, "wb").write(b)
PY
start "$S" --resume; finish "$S"
grep -q "refused checkpoint $RL_TMP/flip/checkpoint.rlc: checksum mismatch" "$S.err" \
  || fail "flip: the corrupt checkpoint was not refused by name: $(grep -i checkpoint "$S.err")"
grep -q "falling back to the previous checkpoint $RL_TMP/flip/checkpoint.prev.rlc" "$S.err" \
  || fail "flip: no fallback said"
check_resumed flip
echo "flip: the corrupt newest checkpoint refused, resumed from the previous one, model identical"

# 5. Nothing to resume, and another spec's checkpoint.
spec "$RL_TMP/none.yaml" none local
rc=0; timeout 20 "$RL" run "$RL_TMP/none.yaml" --resume >"$RL_TMP/none.out" 2>"$RL_TMP/none.err" || rc=$?
[ "$rc" -eq 1 ] || fail "none: exit $rc, wanted 1"
grep -q "no checkpoint in $RL_TMP/none" "$RL_TMP/none.err" || fail "none: $(cat "$RL_TMP/none.err")"
sed -i "s/steps: $STEPS,/steps: $((STEPS + 1)),/" "$RL_TMP/ref.yaml"
rc=0; timeout 20 "$RL" run "$RL_TMP/ref.yaml" --resume >"$RL_TMP/other.out" 2>"$RL_TMP/other.err" || rc=$?
[ "$rc" -eq 1 ] || fail "other spec: exit $rc, wanted 1"
grep -q "checkpoint $RL_TMP/ref/checkpoint.rlc: written for another spec" "$RL_TMP/other.err" \
  || fail "other spec: $(cat "$RL_TMP/other.err")"
echo "no checkpoint and another spec's: refused with the directory or file named"
# The same job with a comment and its lines in another order: the same spec.
sed -i "s/steps: $((STEPS + 1)),/steps: $STEPS,/" "$RL_TMP/ref.yaml"
{ echo "# the same job, edited"; grep -v '^cluster:\|^  ' "$RL_TMP/ref.yaml"; \
  sed -n '/^cluster:/,/^[^ ]/{/^cluster:/p;/^  /p}' "$RL_TMP/ref.yaml"; } > "$RL_TMP/ref2.yaml"
cmp -s "$RL_TMP/ref.yaml" "$RL_TMP/ref2.yaml" && fail "the edited spec is byte-identical"
mv "$RL_TMP/ref2.yaml" "$RL_TMP/ref.yaml"
rc=0; timeout 20 "$RL" run "$RL_TMP/ref.yaml" --resume >"$RL_TMP/same.out" 2>"$RL_TMP/same.err" || rc=$?
[ "$rc" -eq 0 ] || fail "a comment and a new order refused the checkpoint: exit $rc: $(cat "$RL_TMP/same.err")"
grep -q "nothing to run" "$RL_TMP/same.err" "$RL_TMP/same.out" || fail "same spec: $(cat "$RL_TMP/same.err")"
echo "a comment and the sections reordered: the same spec, its checkpoint taken"

# 6. No coordinator comes back: the nodes leave once the grace has passed.
S=$RL_TMP/gone.yaml; spec "$S" gone manual 1500; start "$S"; MANUAL_PIDS=(); start_manual_nodes "$S"
wait_step "$S" 100; kill_coordinator "$S"
t0=$(date +%s%N)
for p in $BEFORE; do
  timeout 30 tail --pid="$p" -f /dev/null || fail "gone: node pid $p still running 30 s after the kill"
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
# each node began its grace at most ~0.5 s before t0 (the log poll), and ends it within a second
[ "$ms" -ge 1000 ] && [ "$ms" -le 6000 ] || fail "gone: the nodes left ${ms} ms after re-dialing began, grace 1500 ms"
for p in "${MANUAL_PIDS[@]}"; do rc=0; wait "$p" || rc=$?; [ "$rc" -eq 1 ] || fail "gone: a node exited $rc, want 1"; done
n=$(cat "$S".n[1-4] | grep -c "no coordinator admitted this node within 1500 ms" || true)
[ "$n" -eq 4 ] || fail "gone: $n of 4 nodes said why they left: $(tail -2 "$S".n1)"
echo "gone: the 4 nodes left ${ms} ms after re-dialing began (grace 1500 ms), exit 1, saying why"
echo "PASS"
