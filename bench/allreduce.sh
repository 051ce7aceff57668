#!/usr/bin/env bash
# allreduce.sh - issue 3's comparison, interleaved: for each node count, the
# peers (../shared/bench/run-baselines.sh) and then `ringleader bench
# allreduce` right after, REPS times over, so that each Ringleader figure
# sits next to its peers' in time (this shared 2-core box changes speed by
# up to 2x within minutes). Prints every result line, then one ratio table
# per repetition (../shared/bench/summarize.sh ratio).
#
#   bench/allreduce.sh                      # N = 2 4 8, 4 B .. 16 MiB, 3 reps
#   REPS=1 NODES="4" SIZES="4 1M" bench/allreduce.sh
#   HOST_CC=cubic NODES=2 bench/allreduce.sh # everyone on cubic (root)
#
# HOST_CC=NAME runs it all in a network namespace of its own (removed at
# the end) whose default TCP congestion control is NAME, so that the peers,
# which use the host's default, and Ringleader (`--congestion auto` keeps a
# host default other than bbr) send with the same algorithm.
#
# Env: RINGLEADER (default build/coordinator/ringleader), NODES ("2 4 8"),
# SIZES ("4 64K 1M 16M"), PEERS ("openmpi-tcp gloo-ringchunked"), REPS (3),
# BASELINES (../shared/bench). The iperf3 loopback ceiling and memory
# bandwidth (run-baselines.sh LIMITS=1 with no peers: its start and end
# measurements, back to back) are taken before the first repetition, not
# between a peer's run and Ringleader's (15 s of iperf3 there slowed the
# Ringleader run that followed). Exits non-zero if any launch failed.
set -u -o pipefail
cd "$(dirname "$0")/.."
if [ -n "${HOST_CC:-}" ] && [ -z "${RL_BENCH_NETNS:-}" ]; then
    ns=rl-bench-$$
    ip netns add "$ns" || exit 2
    trap 'ip netns del "$ns"' EXIT
    ip -n "$ns" link set lo up &&
        ip netns exec "$ns" sysctl -q -w net.ipv4.tcp_congestion_control="$HOST_CC" || exit 2
    echo "# in network namespace $ns, default congestion control $HOST_CC"
    ip netns exec "$ns" env RL_BENCH_NETNS=1 "$PWD/bench/allreduce.sh" "$@"
    exit $?
fi
RINGLEADER=${RINGLEADER:-$PWD/build/coordinator/ringleader}
NODES=${NODES:-"2 4 8"}
SIZES=${SIZES:-"4 64K 1M 16M"}
PEERS=${PEERS:-"openmpi-tcp gloo-ringchunked"}
REPS=${REPS:-3}
BASELINES=${BASELINES:-../shared/bench}
if [ ! -x "$RINGLEADER" ] || [ ! -x "$BASELINES/run-baselines.sh" ]; then
    echo "allreduce.sh: need $RINGLEADER and $BASELINES/run-baselines.sh" >&2
    exit 2
fi
T=$(mktemp -d)  # removed on exit
trap 'rm -rf "$T"' EXIT
rc=0
echo "# limits $(date -u +%H:%M:%S)"
(cd "$BASELINES" && PEERS=" " LIMITS=1 ./run-baselines.sh 2>/dev/null) | grep -E '^limit=' || rc=1
for rep in $(seq 1 "$REPS"); do
    for n in $NODES; do
        echo "# rep $rep nodes $n $(date -u +%H:%M:%S) $(uptime | sed 's/.*load/load/')"
        (cd "$BASELINES" && NODES=$n SIZES="$SIZES" PEERS="$PEERS" LIMITS=0 \
            ./run-baselines.sh 2>/dev/null) | tee -a "$T/peers-$rep.txt" | grep -E '^peer=' ||
            rc=1
        "$RINGLEADER" bench allreduce --nodes "$n" --bytes "$(echo "$SIZES" | tr ' ' ',')" \
            --rounds 3 | tee -a "$T/ours-$rep.txt" || rc=1
    done
done
for rep in $(seq 1 "$REPS"); do
    echo "## rep $rep: time(ringleader) / time(peer)"
    "$BASELINES/summarize.sh" ratio ringleader "$T/peers-$rep.txt" "$T/ours-$rep.txt"
done
exit $rc
