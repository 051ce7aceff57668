#!/usr/bin/env bash
# test_faults.sh - fault tolerance with real processes on loopback:
#  1. a fault-free reference run;
#  2. SIGKILL one node inside an all-reduce, and (2b) one during compute:
#     the run completes, the failure and its recovery are in run.json, 0
#     coverage violations, and the model equals the fault-free reference
#     within 1e-9 relative;
#  3. SIGKILL two nodes at once: the same;
#  4. SIGSTOP a node past the failure timeout, then SIGCONT: it is failed,
#     fenced, rejoins, and the run completes with the reference model;
#  5. SIGKILL until below min_nodes: status "failed", the reason, the model
#     of the last consistent step saved;
#  5b/5c. SIGKILL a node while blocks move to it; a move to a node short of
#     CPU (3% of one) costs no failed step;
#  6. a node throttled to 10% of a CPU (cgroup v1 cpu.cfs_quota_us) is marked
#     a straggler and loses blocks; lifted, it gets blocks back.
# usage: test_faults.sh RINGLEADER RINGLEADER_NODE
RL=$1 NODE=$2
. "$(dirname "$0")/lib.sh"
export RINGLEADER_NODE_BIN=$NODE
# A failure also shows the end of the current run's log.
fail() {
  if [ -n "${SPEC:-}" ] && [ -f "$SPEC.err" ]; then echo "--- $SPEC.err (end)" >&2; tail -25 "$SPEC.err" >&2; fi
  echo "FAIL: $*" >&2; exit 1
}
new_token "$RL_TMP/t.token"
export RINGLEADER_TOKEN=$(cat "$RL_TMP/t.token")
# cg_throttle and cg_lift: lib.sh.

# kill_during compute|allreduce PID: SIGSTOP the node, look where its main
# thread (which runs the steps) stopped, and SIGKILL it there if that is the
# phase wanted: "compute" = user code inside the gradient kernel (the PC
# resolved against the binary's symbols), "allreduce" = blocked in poll(2),
# which that thread calls only inside a collective. Otherwise SIGCONT and
# sample again, at most 500 times or 20 s. The symbol tables are read once,
# here, before any job runs (NM_CACHE): nm on a sanitizer build's library,
# cold, took 1.5 s, long enough for a short job to end before the first sample.
NM_CACHE=$RL_TMP/nm
mkdir -p "$NM_CACHE"
for f in "$NODE" $(ldd "$NODE" | awk '/libringleader/ { print $3 }'); do
  f=$(realpath "$f")
  nm --defined-only "$f" > "$NM_CACHE/$(tr / _ <<<"$f")" || fail "nm $f"
done
kill_during() {
  /usr/bin/python3 - "$1" "$2" "$NODE" "$NM_CACHE" <<'PY'
import bisect, os, random, signal, subprocess, sys, time
phase, pid, exe = sys.argv[1], int(sys.argv[2]), os.path.realpath(sys.argv[3])
nm_cache = sys.argv[4]
# The program's code and the library's (the kernels live in libringleader.so):
# for each mapped file, its symbols and its load base.
def symbols(path):
    out = []
    cached = os.path.join(nm_cache, path.replace("/", "_"))
    if os.path.exists(cached):
        text = open(cached).read()
    else:
        text = subprocess.run(["nm", "--defined-only", path], capture_output=True, text=True,
                              check=True).stdout
    for line in text.splitlines():
        f = line.split()
        if len(f) == 3 and f[1] in "tTwW":
            out.append((int(f[0], 16), f[2]))
    out.sort()
    return out
def state():
    return open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0]
try:
    maps = [l.split() for l in open("/proc/%d/maps" % pid)]
except (FileNotFoundError, ProcessLookupError):
    sys.exit("node %d exited before it could be sampled" % pid)
objs = {}  # path -> [base, lo, hi, syms, addrs]
for m in maps:
    path = m[-1] if len(m) >= 6 else ""
    if path == exe or "libringleader" in path:
        lo, hi = (int(x, 16) for x in m[0].split("-"))
        o = objs.setdefault(path, [lo, lo, hi, None, None])
        o[0], o[1], o[2] = min(o[0], lo), min(o[1], lo), max(o[2], hi)
for path, o in objs.items():
    o[3] = symbols(path)
    o[4] = [a for a, _ in o[3]]
def symbol_at(pc):
    for o in objs.values():
        if o[1] <= pc < o[2]:
            i = bisect.bisect_right(o[4], pc - o[0]) - 1
            return o[3][i][1] if i >= 0 else "?"
    return "?"
end = time.monotonic() + 20
for tries in range(1, 501):
    if time.monotonic() > end:
        break
    os.kill(pid, signal.SIGSTOP)
    t = time.monotonic() + 1
    while state() != "T" and time.monotonic() < t:
        time.sleep(0.0005)
    f = open("/proc/%d/syscall" % pid).read().split()
    hit = None
    if phase == "allreduce" and f[0] in ("7", "271"):
        hit = "in poll(2)"
    elif phase == "compute" and f[0] == "-1":
        name = symbol_at(int(f[-1], 16))
        if name.startswith(("model_grad", "rl_model_grad", "model_linear")):
            hit = "at " + name
    if hit:
        os.kill(pid, signal.SIGKILL)
        print("killed node %d %s (%s), sample %d" % (pid, hit, phase, tries))
        sys.exit(0)
    os.kill(pid, signal.SIGCONT)
    time.sleep(random.uniform(0.001, 0.01))
sys.exit(1)
PY
}

# spec FILE NAME STEPS ROWS FEATURES MIN_NODES
spec() {
  {
    echo "cluster:"
    echo "  name: $2"
    echo "  coordinator: tcp://127.0.0.1:$(free_port)"
    echo "  launch: local"
    echo "  min_nodes: $6"
    echo "  join_timeout_ms: 10000"
    echo "  nodes:"
    for i in 1 2 3 4; do echo "    - { id: n$i, listen: tcp://127.0.0.1:$(free_port) }"; done
    echo "data: { source: synthetic, rows: $4, features: $5, noise: 0.1, seed: 11, block_rows: 1000 }"
    echo "model: { type: linear }"
    echo "training: { steps: $3, learning_rate: 0.05, l2: 0.001 }"
    echo "fault_tolerance: { heartbeat_ms: 100, failure_timeout_ms: ${FAILURE_TIMEOUT_MS:-500} }"
    echo "output: { dir: $RL_TMP/$2 }"
  } > "$1"
}

# start SPEC: runs the coordinator in the background; sets CPID, CURL.
start() {
  "$RL" run "$1" >"$1.out" 2>"$1.err" &
  CPID=$!; RL_PIDS+=("$CPID")
  CURL=$(sed -n 's/^  coordinator: //p' "$1")
}
# node_pid SPEC ID: the PID of that spec's node ID (its command line names the port).
node_pid() {
  local port pid; port=$(grep "id: $2," "$1" | sed 's/.*:\([0-9]*\) }/\1/')
  pid=$(pgrep -f "ringleader-node.*--id $2 --listen tcp://127.0.0.1:$port" || true)
  [ -n "$pid" ] || fail "no running process for node $2 of $1"
  echo "${pid%%$'\n'*}"
}
# status: the running job's `ringleader status` (1 s deadline), or nothing if
# that call failed; polling loops treat nothing as "not yet".
status() { "$RL" status "$CURL" --timeout-ms 1000 2>/dev/null || true; }
doing() { # doing: "ID BLOCKS PHASE" for every node in the coordinator's status
  status | awk '$1 ~ /^n[0-9]$/ { print $1, $3, $NF }'
}
# wait_step N: until the running job reports step >= N (bounded: 30 s).
wait_step() {
  local i s
  for i in $(seq 1 300); do
    s=$(status | sed -n 's/.*step \([0-9]*\)\/.*/\1/p' | head -1)
    [ -n "$s" ] && [ "$s" -ge "$1" ] && return 0
    kill -0 "$CPID" 2>/dev/null || fail "coordinator exited before step $1"
    sleep 0.1
  done
  fail "step $1 not reached in 30 s"
}
finish() { # finish WANT_RC
  local rc=0
  timeout 120 tail --pid="$CPID" -f /dev/null || fail "coordinator still running after 120 s"
  wait "$CPID" || rc=$?
  [ "$rc" -eq "$1" ] || fail "$SPEC: exit $rc, want $1"
}
check() { /usr/bin/python3 - "$@" <<'PY'
import json, sys
ref = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2])); want = sys.argv[3:]
assert r["status"] == "ok", r.get("error")
assert r["coverage"]["violations"] == 0, r["coverage"]
assert r["steps_completed"] == ref["steps_completed"]
a = ref["model"]["weights"] + [ref["model"]["bias"]]
b = r["model"]["weights"] + [r["model"]["bias"]]
rel = max(abs(x - y) for x, y in zip(a, b)) / max(abs(x) for x in a)
kinds = [e["kind"] for e in r["events"]]
for k in want: assert k in kinds, (k, kinds)
rec = [e["recovery_ms"] for e in r["events"] if e["kind"] == "failed"]
print("model vs reference: %.2e relative; events %s; recovery_ms %s" % (rel, sorted(set(kinds)), rec))
assert rel < 1e-9, rel
assert all(x is not None for x in rec), rec
PY
}

# begin_case NAME: prints how long the case before took (the suite's time budget).
CASE= CASE_T=$SECONDS
begin_case() { [ -z "$CASE" ] || echo "case $CASE: $((SECONDS - CASE_T)) s"; CASE=$1 CASE_T=$SECONDS; }
# Long enough that a node is still stepping a second after step 300 (the
# sanitizer build, whose steps are slower, sets RL_FAULT_STEPS lower).
STEPS=${RL_FAULT_STEPS:-12000} ROWS=40000 FEAT=16
begin_case "1"
# 1. Reference.
SPEC=$RL_TMP/ref.yaml; spec "$SPEC" ref $STEPS $ROWS $FEAT 2
start "$SPEC"; finish 0

begin_case "2"
# 2. One SIGKILL inside an all-reduce (the node's main thread, which runs the
#    steps, stopped in poll(2) within the collective).
SPEC=$RL_TMP/kill1.yaml; spec "$SPEC" kill1 $STEPS $ROWS $FEAT 2
start "$SPEC"; wait_step 300
kill_during allreduce "$(node_pid "$SPEC" n3)" || fail "n3 was never caught inside an all-reduce"
finish 0
check "$RL_TMP/ref/run.json" "$RL_TMP/kill1/run.json" failed reassign || fail "kill in an all-reduce"

begin_case "2b"
# 2b. One SIGKILL during compute (the main thread stopped inside the gradient
#     kernel), on a job whose step is mostly compute: 200k rows x 64 features.
#     Its fault-free reference also serves case 5b.
SPEC=$RL_TMP/mref.yaml; spec "$SPEC" mref 1000 200000 64 2
start "$SPEC"; finish 0
SPEC=$RL_TMP/comp.yaml; spec "$SPEC" comp 1000 200000 64 2
start "$SPEC"; wait_step 10
kill_during compute "$(node_pid "$SPEC" n3)" || fail "n3 was never caught in the gradient kernel"
finish 0
check "$RL_TMP/mref/run.json" "$RL_TMP/comp/run.json" failed reassign || fail "kill during compute"

begin_case "3"
# 3. Two at once.
SPEC=$RL_TMP/kill2.yaml; spec "$SPEC" kill2 $STEPS $ROWS $FEAT 2
start "$SPEC"; wait_step 300
kill -KILL "$(node_pid "$SPEC" n2)" "$(node_pid "$SPEC" n4)"
finish 0
check "$RL_TMP/ref/run.json" "$RL_TMP/kill2/run.json" failed reassign || fail "two kills"

begin_case "4"
# 4. SIGSTOP past the failure timeout, then SIGCONT: fenced, then rejoins.
SPEC=$RL_TMP/stop.yaml; spec "$SPEC" stop $STEPS $ROWS $FEAT 2
start "$SPEC"; wait_step 300
P=$(node_pid "$SPEC" n2); kill -STOP "$P"
s0=
for i in $(seq 1 50); do
  s0=$(status | sed -n 's/.*step \([0-9]*\)\/.*/\1/p' | head -1)
  [ -z "$s0" ] || break
done
[ -n "$s0" ] || fail "no status while n2 is stopped"
wait_step $((s0 + 100))          # the others go on without it
kill -CONT "$P"
finish 0
check "$RL_TMP/ref/run.json" "$RL_TMP/stop/run.json" failed rejoin || fail "stop/cont"

begin_case "5"
# 5. Below min_nodes.
SPEC=$RL_TMP/min.yaml; spec "$SPEC" min $STEPS $ROWS $FEAT 3
start "$SPEC"; wait_step 300
kill -KILL "$(node_pid "$SPEC" n1)" "$(node_pid "$SPEC" n2)"
finish 1
/usr/bin/python3 - "$RL_TMP/min/run.json" <<'PY' || fail "below min_nodes"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "failed" and "min_nodes" in r["error"], r.get("error")
assert r["steps_completed"] >= 300 and len(r["model"]["weights"]) == 16
assert r["coverage"]["violations"] == 0
print("below min_nodes:", r["error"])
PY

begin_case "5b"
# 5b. SIGKILL a node while blocks are moving to it: kill n1 so that its
#     blocks move to the survivors, and at once hold each survivor to 5% of
#     a CPU (cgroup v1) so that making new blocks takes a while; wait
#     (bounded) until the coordinator's status shows a survivor holding more
#     blocks than before n1 died and reporting "making-blocks" (one must gain:
#     n1's blocks go somewhere), kill that one then, and lift the throttle.
#     The run goes on with two nodes and ends with the fault-free model.
#     (Unthrottled, a move can finish between two heartbeats, unseen.)
if [ ! -w /sys/fs/cgroup/cpu ]; then
  echo "test_faults: no writable cgroup v1 cpu controller; kill-during-a-move case skipped" >&2
else
  SPEC=$RL_TMP/move.yaml; spec "$SPEC" move 1000 200000 64 2
  start "$SPEC"; wait_step 10
  before=$(doing)
  [ -n "$before" ] || fail "no status"
  kill -KILL "$(node_pid "$SPEC" n1)"
  for id in n2 n3 n4; do cg_throttle "$(node_pid "$SPEC" $id)" 5000; done
  caught= seen=
  for i in $(seq 1 300); do
    now=$(doing); seen="$seen;$(echo $now)"
    caught=$(printf '%s\n--\n%s\n' "$before" "$now" | awk '
      $0 == "--" { after = 1; next }
      !after { b0[$1] = $2; next }
      $1 != "n1" && ($1 in b0) && $2 > b0[$1] && $3 == "making-blocks" { print $1, b0[$1], $2; exit }')
    [ -z "$caught" ] || break
    kill -0 "$CPID" 2>/dev/null || break
    sleep 0.02
  done
  [ -n "$caught" ] || fail "no survivor was seen making new blocks after n1 died; before: $(echo $before); then:$(echo "$seen" | tr ';' '\n' | uniq | tr '\n' ';')"
  set -- $caught
  kill -KILL "$(node_pid "$SPEC" "$1")"
  cg_lift
  echo "$1 killed while making blocks: $2 blocks before n1 died, $3 then"
  finish 0
  check "$RL_TMP/mref/run.json" "$RL_TMP/move/run.json" failed reassign || fail "kill during a block move"
fi

begin_case "5c"
# 5c. A move to a node short of CPU costs no failed step: kill n1 and at once
#     hold n2 to 3% of a CPU, so that n2 makes its share of n1's blocks about
#     thirty times slower than the coordinator's estimate while n3 and n4
#     are done at once. Forming a ring waits only for the lower ranks' dials
#     (endpoints accept on their own), not for every member's blocks, so n3
#     and n4 must wait for n2 before the first step's collective starts its
#     clock (before they did, that collective timed out and the step was
#     redone under a new epoch: in at least 3 of 7 runs here at 3%, and 3 of
#     4 at 2%). Once the three step
#     again the throttle is lifted. The run completes with 0 coverage
#     violations and no "retry after a failed step". (n2 itself may still be
#     failed by its heartbeats, at 3% of a CPU, and rejoin: not a retry.)
if [ -n "${RL_SKIP_THROTTLE:-}" ]; then
  echo "test_faults: slow-move case skipped: $RL_SKIP_THROTTLE" >&2
elif [ -w /sys/fs/cgroup/cpu ]; then
  # A collective's deadline is failure_timeout_ms plus the plan's estimate
  # of block making at full speed; at 3% of a CPU n2's first step over its
  # 216 blocks took longer than 500 ms once (a step redone, 2026-12-03), so
  # this case allows 2 s: still far under the ~6 s n2 needs to make n1's
  # blocks, which the barrier must wait out.
  SPEC=$RL_TMP/slowmove.yaml; FAILURE_TIMEOUT_MS=2000 spec "$SPEC" slowmove 400 600000 64 2
  start "$SPEC"; wait_step 10
  k=$(status | sed -n 's/.*step \([0-9]*\)\/.*/\1/p' | head -1)
  [ -n "$k" ] || fail "no status before the kill"
  kill -KILL "$(node_pid "$SPEC" n1)"
  cg_throttle "$(node_pid "$SPEC" n2)" 3000
  wait_step $((k + 20))
  cg_lift
  finish 0
  /usr/bin/python3 - "$RL_TMP/slowmove/run.json" <<'PY' || fail "a step failed after the move to a slow node"
import json, sys
r = json.load(open(sys.argv[1])); ev = r["events"]
for e in ev:
    if e["kind"] != "join": print("  event", e["t_ms"], e["step"], e["kind"], e["node"], e["detail"])
assert r["status"] == "ok" and r["coverage"]["violations"] == 0, (r["status"], r.get("error"), r["coverage"])
assert [e for e in ev if e["kind"] == "failed" and e["node"] == "n1"], "n1's failure not recorded"
assert not [e for e in ev if "retry after a failed step" in e["detail"]], "a step was redone"
PY
else
  echo "test_faults: no writable cgroup v1 cpu controller; slow-move case skipped" >&2
fi

begin_case "6"
# 6. Throttle one node to 10% of a CPU until the coordinator has moved most of
#    its blocks away (under half: issue 18 wants a 10% node at 0.4x the
#    others' mean; lifted at the first move, it may hold so nearly its share
#    that moving blocks back gains under PLACEMENT_MIN_GAIN_SHARE of a step,
#    and rightly none move), then lift it until blocks come back.
blocks_of() { # blocks_of ID: that node's block count in the coordinator's status
  doing | awk -v id="$1" '$1 == id { print $2 }' | head -1
}
wait_blocks() { # wait_blocks ID lt|gt N SECONDS: until its block count is below / above N
  local i b
  for i in $(seq 1 $(($4 * 10))); do
    b=$(blocks_of "$1")
    if [ -n "$b" ]; then
      if [ "$2" = lt ] && [ "$b" -lt "$3" ]; then echo "$b"; return 0; fi
      if [ "$2" = gt ] && [ "$b" -gt "$3" ]; then echo "$b"; return 0; fi
    fi
    kill -0 "$CPID" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
if [ -n "${RL_SKIP_THROTTLE:-}" ]; then
  echo "test_faults: throttle case skipped: $RL_SKIP_THROTTLE" >&2
elif [ -w /sys/fs/cgroup/cpu ]; then
  SPEC=$RL_TMP/thr.yaml; spec "$SPEC" thr 3000 1000000 64 2
  start "$SPEC"; wait_step 30
  P=$(node_pid "$SPEC" n2); b0=$(blocks_of n2)
  [ -n "$b0" ] || fail "no status for n2"
  cg_throttle "$P" 10000
  low=$(wait_blocks n2 lt $((b0 / 2)) 30) ||
    { status; fail "the throttled node held over half its $b0 blocks for 30 s"; }
  cg_lift
  back=$(wait_blocks n2 gt "$low" 30) ||
    { status; fail "no blocks came back to n2 (holding $low) within 30 s of lifting the throttle"; }
  echo "throttled n2: $b0 blocks -> $low while throttled -> $back after"
  kill -TERM "$CPID"   # enough: stop the run (Ctrl-C path); run.json is still written
  finish 1
  /usr/bin/python3 - "$RL_TMP/thr/run.json" <<'PY' || fail "throttle"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["coverage"]["violations"] == 0 and r["status"] == "interrupted", r.get("error")
for e in r["events"]:
    if e["kind"] != "join": print("  event", e["t_ms"], e["kind"], e["node"], e["detail"])
PY
else
  echo "test_faults: no writable cgroup v1 cpu controller; throttle case skipped" >&2
fi
begin_case end
if pgrep -f "$RL_TMP" >/dev/null; then fail "processes left running: $(pgrep -af "$RL_TMP")"; fi
echo "test_faults: ok"
