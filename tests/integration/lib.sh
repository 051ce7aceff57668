# lib.sh - helpers for the integration tests: free ports, temporary specs,
# bounded waits, and cleanup of every process a test starts (by PID).
set -euo pipefail
RL_PIDS=()
# RL_TMP_PARENT: where the test's temporary directory goes (default /tmp).
RL_TMP=$(mktemp -d -p "${RL_TMP_PARENT:-/tmp}" --suffix=.rl-it)
# report_runs: `ringleader report` ($RL, when the test set it) on every
# run.json the test's runs wrote under $RL_TMP: it must write the report, with
# the step-time chart when the run completed a step. Non-zero if one failed.
report_runs() {
  [ -n "${RL:-}" ] && [ -x "$RL" ] || return 0
  local f bad=0
  while IFS= read -r f; do
    if ! timeout 60 "$RL" report "$f" -o "$f.html" >/dev/null 2>"$f.report.err"; then
      echo "FAIL: ringleader report $f: $(cat "$f.report.err")" >&2; bad=1
    elif grep -q '"steps_completed": [1-9]' "$f" && ! grep -q 'id="steptime"' "$f.html"; then
      echo "FAIL: ringleader report $f: no step-time chart for a run with steps" >&2; bad=1
    fi
  done < <(find "$RL_TMP" -name run.json -type f 2>/dev/null)
  return "$bad"
}
# RL_COORD_URLS: coordinators a test kills: the nodes a killed coordinator
# started keep running (they re-dial it, coordinator_grace_ms), not the
# test's children; cleanup finds them by their --coordinator and kills them
# by PID.
RL_COORD_URLS=()
cleanup() {
  local rc=$?
  for p in "${RL_PIDS[@]:-}"; do [ -n "$p" ] && kill -KILL "$p" 2>/dev/null || true; done
  for p in "${RL_PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  for u in "${RL_COORD_URLS[@]:-}"; do
    [ -n "$u" ] || continue
    for p in $(pgrep -f "ringleader-node --coordinator $u( |\$)" || true); do kill -KILL "$p" 2>/dev/null || true; done
  done
  cg_lift
  netns_down
  report_runs || rc=1
  rm -rf "$RL_TMP"
  [ "$rc" -eq 0 ] || exit "$rc"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# new_token FILE: a fresh random token (64 hex digits), readable by us only.
new_token() {
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$1"
  chmod 600 "$1"
}

# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds; returns
# 1 if it did not within SECONDS.
wait_for() {
  local n=$(($1 * 10)); shift
  for _ in $(seq 1 "$n"); do "$@" && return 0; sleep 0.1; done
  return 1
}

# kill_program_at PARENT ID LOG PATTERN SECONDS: once the program of node ID
# (a child of PARENT, found by RINGLEADER_NODE_ID in its environment) runs
# and LOG shows PATTERN (within SECONDS), SIGKILLs that program.
kill_program_at() {
  local parent=$1 id=$2 log=$3 pat=$4 secs=$5 victim="" c i
  for i in $(seq 1 300); do   # 30 s: the program started
    for c in $(pgrep -P "$parent" || true); do
      tr '\0' '\n' < /proc/$c/environ 2>/dev/null | grep -qx "RINGLEADER_NODE_ID=$id" && victim=$c
    done
    [ -n "$victim" ] && break
    sleep 0.1
  done
  [ -n "$victim" ] || fail "no program of $id"
  for i in $(seq 1 $((secs * 50))); do
    grep -q "$pat" "$log" && break
    sleep 0.02
  done
  grep -q "$pat" "$log" || fail "the programs did not reach \"$pat\" in $secs s"
  kill -0 "$victim" 2>/dev/null || fail "$id's program ended before it could be killed"
  kill -KILL "$victim"
}

# free_port: a loopback port free now and not handed out before in this test
# (the kernel may offer a closed port again, and a spec whose coordinator and
# node share a port is refused).
free_port() {
  local p i
  for i in $(seq 1 50); do
    p=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()')
    if ! grep -qx "$p" "$RL_TMP/.ports" 2>/dev/null; then
      echo "$p" >>"$RL_TMP/.ports"; echo "$p"; return 0
    fi
  done
  fail "free_port: no port not handed out before in 50 tries"
}

# write_spec FILE NODES TOKENFILE [launch]: a spec on free loopback ports.
write_spec() {
  local f=$1 n=$2 tok=$3 launch=${4:-local}
  {
    echo "cluster:"
    echo "  name: it"
    echo "  coordinator: tcp://127.0.0.1:$(free_port)"
    echo "  launch: $launch"
    echo "  min_nodes: 1"
    echo "  join_timeout_ms: 10000"
    echo "  nodes:"
    for i in $(seq 1 "$n"); do
      echo "    - { id: n$i, listen: tcp://127.0.0.1:$(free_port) }"
    done
    echo "security:"
    echo "  token_file: $tok"
    echo "data: { source: synthetic, rows: 10000, features: 8, block_rows: 1000 }"
    echo "model: { type: linear }"
    echo "training: { steps: 5, learning_rate: 0.1 }"
    echo "fault_tolerance: { failure_timeout_ms: 5000 }"  # not a fault test
    echo "output: { dir: $RL_TMP/out }"
  } > "$f"
}

# ---- CPU throttling (cgroup v1) --------------------------------------------
# cg_throttle PID QUOTA_US: every thread of PID into its own group
# $RL_CG-PID, QUOTA_US of CPU per 100 ms (threads it starts later inherit the
# group). cg_lift: every such group's quota lifted, its threads back in the
# root group, the group removed (also at exit).
RL_CG=/sys/fs/cgroup/cpu/rl-it-$$
cg_throttle() {
  local g=$RL_CG-$1 t
  mkdir -p "$g"; echo 100000 > "$g/cpu.cfs_period_us"; echo "$2" > "$g/cpu.cfs_quota_us"
  for t in /proc/"$1"/task/*; do echo "${t##*/}" > "$g/tasks" 2>/dev/null || true; done
}
cg_lift() {
  local g t i
  for g in "$RL_CG"-*; do
    [ -d "$g" ] || continue
    echo -1 > "$g/cpu.cfs_quota_us"
    for i in 1 2 3 4 5 6 7 8 9 10; do
      for t in $(cat "$g/tasks"); do echo "$t" > /sys/fs/cgroup/cpu/tasks 2>/dev/null || true; done
      rmdir "$g" 2>/dev/null && break
      sleep 0.1
    done
    [ ! -d "$g" ] || echo "$(basename "$0"): could not remove $g" >&2
  done
}

# ---- Hosts in network namespaces -------------------------------------------
# netns_usable: root and `ip netns` work here (else the caller skips).
netns_usable() {
  [ "$(id -u)" -eq 0 ] && ip netns add "rl-probe-$$" 2>/dev/null && ip netns del "rl-probe-$$"
}
# netns_up HOST...: a namespace $RL_NS-HOST per host, each joined by a veth
# pair to a bridge in $RL_NS-hub, with the address IP[HOST] (c: .1, nK: .1K
# of a /24 unique to this run). netns_down removes them (also at exit).
RL_NS=rln$$ RL_NS_HOSTS=""
declare -A IP=()
netns_up() {
  local h net=10.77.$(( $$ % 200 ))
  RL_NS_HOSTS="$*"
  ip netns add "$RL_NS-hub"
  ip -n "$RL_NS-hub" link add br0 type bridge
  ip -n "$RL_NS-hub" link set br0 up
  for h in "$@"; do
    if [ "$h" = c ]; then IP[$h]=$net.1; else IP[$h]=$net.1${h#n}; fi
    ip netns add "$RL_NS-$h"
    ip link add "v$RL_NS$h" type veth peer name "b$RL_NS$h"
    ip link set "v$RL_NS$h" netns "$RL_NS-$h"
    ip link set "b$RL_NS$h" netns "$RL_NS-hub"
    ip -n "$RL_NS-hub" link set "b$RL_NS$h" master br0
    ip -n "$RL_NS-hub" link set "b$RL_NS$h" up
    ip -n "$RL_NS-$h" addr add "${IP[$h]}/24" dev "v$RL_NS$h"
    ip -n "$RL_NS-$h" link set "v$RL_NS$h" up
    ip -n "$RL_NS-$h" link set lo up
  done
}
# netns_tbf HOST RATE: HOST's link limited to RATE (tc tbf) both ways.
netns_tbf() {
  ip netns exec "$RL_NS-$1" tc qdisc add dev "v$RL_NS$1" root tbf rate "$2" burst 16kb latency 100ms
  ip netns exec "$RL_NS-hub" tc qdisc add dev "b$RL_NS$1" root tbf rate "$2" burst 16kb latency 100ms
}
# in_host HOST CMD...: runs CMD in HOST's namespace.
in_host() { local h=$1; shift; ip netns exec "$RL_NS-$h" "$@"; }
netns_down() {
  local h
  [ -n "$RL_NS_HOSTS" ] || return 0
  for h in $RL_NS_HOSTS hub; do ip netns del "$RL_NS-$h" 2>/dev/null || true; done
}
