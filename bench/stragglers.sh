#!/usr/bin/env bash
# stragglers.sh - issue 18's goals, on this machine, with real processes
# (docs/performance.md, "Stragglers"): 4 local nodes, 400k x 32 linear.
#   start: n4 held to 10% of a CPU (cgroup v1 cpu.cfs_quota_us) from its
#     start, 600 steps, beside the same run with rebalance false: n4's final
#     rows / the others' mean, mean step time over the last 30% of steps
#     (and its ratio to the rebalance-off run's), the first move (steps and
#     ms after the first step).
#   mid: the same with the throttle from step 300 (first move: steps and ms
#     after the step at which the throttle was applied).
#   stop: n3 SIGSTOPped 300 ms every 2 s; hog: n2 pinned to CPU 0 beside a
#     busy loop pinned there; 3000 steps: flagged (a straggler event, or a
#     rebalance naming it the slowest) and
#     relieved (fewer rows at the end than at the start).
#   calm: no fault, 600 steps: moves after step 20.
# Every run is printed, then the count meeting each goal.
# usage: bench/stragglers.sh [RINGLEADER]; run as root. RUNS=10 runs per case;
#   PARTS="start mid stop hog calm" selects cases.
set -euo pipefail
cd "$(dirname "$0")/.."
RL=${1:-build/coordinator/ringleader}
export RINGLEADER_NODE_BIN=${RINGLEADER_NODE_BIN:-build/node/ringleader-node}
RUNS=${RUNS:-10} PARTS=${PARTS:-"start mid stop hog calm"}
[ -w /sys/fs/cgroup/cpu ] || { echo "stragglers.sh: needs a writable cgroup v1 cpu controller" >&2; exit 1; }
exec /usr/bin/python3 - "$RL" "$RUNS" "$PARTS" <<'PY'
import json, os, re, signal, socket, subprocess, sys, tempfile, time
RL, RUNS, PARTS = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
T = tempfile.mkdtemp(prefix="rl-strag-")
TOK = os.urandom(32).hex()
ENV = dict(os.environ, RINGLEADER_TOKEN=TOK)
CG = "/sys/fs/cgroup/cpu/rl-bench-%d" % os.getpid()

GIVEN = set()

def port():
    # A port free now and not handed out before: the kernel may offer a
    # closed port again, and a spec with one port twice is refused.
    for _ in range(50):
        s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close()
        if p not in GIVEN:
            GIVEN.add(p); return p
    raise RuntimeError("no port not handed out before in 50 tries")

def spec(name, steps, rebalance):
    ports = [port() for _ in range(4)]
    f = "%s/%s.yaml" % (T, name)
    with open(f, "w") as o:
        o.write("cluster:\n  name: %s\n  coordinator: tcp://127.0.0.1:%d\n  launch: local\n"
                "  min_nodes: 4\n  join_timeout_ms: 10000\n  nodes:\n" % (name, port()))
        for i, p in enumerate(ports):
            o.write("    - { id: n%d, listen: tcp://127.0.0.1:%d }\n" % (i + 1, p))
        o.write("data: { source: synthetic, rows: 400000, features: 32, seed: 5, block_rows: 4096 }\n"
                "model: { type: linear }\ntraining: { steps: %d, learning_rate: 0.05 }\n"
                "fault_tolerance: { heartbeat_ms: 100, failure_timeout_ms: 1500, rebalance: %s }\n"
                "output: { dir: %s/%s }\n" % (steps, "true" if rebalance else "false", T, name))
    return f, ports

def node_pid(ports, i, deadline):
    pat = "ringleader-node.*--id n%d --listen tcp://127.0.0.1:%d" % (i, ports[i - 1])
    while time.time() < deadline:
        r = subprocess.run(["pgrep", "-f", pat], capture_output=True, text=True)
        if r.stdout.strip(): return int(r.stdout.split()[0])
        time.sleep(0.005)
    raise SystemExit("node n%d did not start" % i)

def throttle(pid, quota):
    g = "%s-%d" % (CG, pid); os.makedirs(g, exist_ok=True)
    open(g + "/cpu.cfs_period_us", "w").write("100000")
    open(g + "/cpu.cfs_quota_us", "w").write(str(quota))
    for t in os.listdir("/proc/%d/task" % pid):
        try: open(g + "/tasks", "w").write(t)
        except OSError: pass

def lift():
    for d in os.listdir("/sys/fs/cgroup/cpu"):
        g = "/sys/fs/cgroup/cpu/" + d
        if not g.startswith(CG): continue
        open(g + "/cpu.cfs_quota_us", "w").write("-1")
        for _ in range(20):
            for t in open(g + "/tasks").read().split():
                try: open("/sys/fs/cgroup/cpu/tasks", "w").write(t)
                except OSError: pass
            try: os.rmdir(g); break
            except OSError: time.sleep(0.1)

def step_now(coord):
    r = subprocess.run([RL, "status", coord, "--timeout-ms", "1000"], capture_output=True,
                       text=True, env=ENV)
    m = re.search(r"step (\d+)/", r.stdout)
    return int(m.group(1)) if m else -1

def run(name, steps, rebalance, fault=None):
    f, ports = spec(name, steps, rebalance)
    coord = re.search(r"coordinator: (\S+)", open(f).read()).group(1)
    p = subprocess.Popen([RL, "run", f], stdout=subprocess.DEVNULL,
                         stderr=open(f + ".err", "w"), env=ENV)
    extra = {}
    try:
        if fault: extra = fault(ports, coord, p) or {}
        p.wait(timeout=300)
    finally:
        if p.poll() is None: p.kill(); p.wait()
        lift()
    return json.load(open("%s/%s/run.json" % (T, name))), extra

def rows_of(r, nid):
    return next(n["rows"] for n in r["nodes"] if n["id"] == nid)

def tail_ms(r):
    s = sorted(r["steps"], key=lambda x: x["step"]); k = int(len(s) * 0.7)
    return sum(x["ms"] for x in s[k:]) / max(1, len(s) - k)

def moves(r):
    return [e for e in r["events"] if e["kind"] == "reassign" and "(start)" not in e["detail"]]

def share(r, nid):
    others = [n["rows"] for n in r["nodes"] if n["id"] != nid]
    return rows_of(r, nid) / (sum(others) / len(others))

def throttle_start(ports, coord, p):
    throttle(node_pid(ports, 4, time.time() + 10), 10000)

def throttle_mid(ports, coord, p):
    dl = time.time() + 60
    while time.time() < dl and p.poll() is None:
        s = step_now(coord)
        if s >= 300:
            throttle(node_pid(ports, 4, time.time() + 1), 10000); return {"at": s}
        time.sleep(0.05)
    return {"at": -1}

def first_move(r, at_step):
    mv = [e for e in moves(r) if e["step"] >= at_step]
    if not mv: return None, None
    st = {x["step"]: x["t_ms"] for x in r["steps"]}
    t0 = st.get(at_step, st.get(min(st)) if st else 0)
    return mv[0]["step"] - at_step, mv[0]["t_ms"] - t0

def case_throttle(kind):
    met = [0, 0, 0]
    for i in range(RUNS):
        fault = throttle_start if kind == "start" else throttle_mid
        on, x = run("%s-on-%d" % (kind, i), 600, True, fault)
        off, y = run("%s-off-%d" % (kind, i), 600, False, fault)
        at = 0 if kind == "start" else x.get("at", 300)
        sh, ratio = share(on, "n4"), tail_ms(on) / tail_ms(off)
        fs, fms = first_move(on, at)
        ok = [sh <= 0.4, ratio <= 0.35, fs is not None and (fs <= 10 or fms <= 1000)]
        met = [m + int(o) for m, o in zip(met, ok)]
        print("%s run %d: status %s/%s, n4 share %.3f, tail step %.3f ms vs off %.3f ms = %.3f, "
              "first move %s steps / %s ms after the throttle (step %d), moves %d"
              % (kind, i + 1, on["status"], off["status"], sh, tail_ms(on), tail_ms(off), ratio,
                 fs, "%.0f" % fms if fms is not None else None, at, len(moves(on))), flush=True)
    print("%s: share <= 0.4x in %d/%d, tail <= 0.35x in %d/%d, first move in time in %d/%d"
          % (kind, met[0], RUNS, met[1], RUNS, met[2], RUNS), flush=True)

def pulse(ports, coord, p):
    pid = node_pid(ports, 3, time.time() + 10)
    while p.poll() is None:
        time.sleep(1.7)
        try: os.kill(pid, signal.SIGSTOP); time.sleep(0.3); os.kill(pid, signal.SIGCONT)
        except ProcessLookupError: return

def hog(ports, coord, p):
    pid = node_pid(ports, 2, time.time() + 10)
    subprocess.run(["taskset", "-a", "-c", "-p", "0", str(pid)], capture_output=True)
    h = subprocess.Popen(["taskset", "-c", "0", "bash", "-c", "while :; do :; done"])
    p.wait(timeout=300); h.kill(); h.wait()

def case_flag(kind, nid, fault):
    met = 0
    for i in range(RUNS):
        r, _ = run("%s-%d" % (kind, i), 3000, True, fault)
        flagged = any((e["kind"] == "straggler" and e["node"] == nid) or
                      (e["kind"] == "reassign" and "slowest %s " % nid in e["detail"])
                      for e in r["events"])
        start_rows = 400000 / 4
        relieved = rows_of(r, nid) < start_rows * 0.9
        failed = sum(e["kind"] == "failed" for e in r["events"])
        met += int(flagged and relieved)
        print("%s run %d: status %s, %s flagged %s, rows %d (start ~%d), share %.3f, moves %d, "
              "failed events %d" % (kind, i + 1, r["status"], nid, flagged, rows_of(r, nid),
                                     start_rows, share(r, nid), len(moves(r)), failed), flush=True)
    print("%s: flagged and relieved in %d/%d" % (kind, met, RUNS), flush=True)

def case_calm():
    met = 0
    for i in range(RUNS):
        r, _ = run("calm-%d" % i, 600, True)
        late = [e for e in moves(r) if e["step"] > 20]
        met += int(not late)
        print("calm run %d: status %s, moves after step 20: %d, stragglers flagged %d, "
              "step p50 %.3f ms" % (i + 1, r["status"], len(late),
                                    sum(e["kind"] == "straggler" for e in r["events"]),
                                    r["step_ms"]["p50"]), flush=True)
    print("calm: 0 moves after step 20 in %d/%d" % (met, RUNS), flush=True)

print("# stragglers.sh %s, %d runs per case, %s, %d CPUs" % (time.strftime("%Y-%m-%d %H:%M"),
      RUNS, os.uname().release, os.cpu_count()), flush=True)
try:
    for part in PARTS:
        t = time.time()
        if part in ("start", "mid"): case_throttle(part)
        elif part == "stop": case_flag("stop", "n3", pulse)
        elif part == "hog": case_flag("hog", "n2", hog)
        elif part == "calm": case_calm()
        print("# %s: %.0f s" % (part, time.time() - t), flush=True)
finally:
    lift()
    if not os.environ.get("KEEP"): subprocess.run(["rm", "-rf", T])
    else: print("# kept " + T)
PY
