#!/usr/bin/env bash
# rpc.sh - issue 2's RPC comparison, interleaved: for each repetition, the
# peers (../shared/bench/rpc/run-rpc-baselines.sh: raw NNG req/rep and gRPC)
# over the matrix, then `ringleader bench rpc` over the same matrix right
# after, so each ratio compares figures taken within a minute of each other.
# Prints every raw line, then one summary line per case:
#   rpc_ratio payload=.. concurrency=.. metric=.. ringleader=.. nng=.. grpc=..
#             vs_nng=.. vs_grpc=..
# usage: bench/rpc.sh [RINGLEADER]
# env: REPS (3), PAYLOADS ("64 4096"), CONCS ("1 16"), BIG ("1048576", at
#      concurrency 1 only; "" for none), EXTRA (more `bench rpc` flags)
set -euo pipefail
cd "$(dirname "$0")/.."
RL=${1:-build/coordinator/ringleader}
PEERS_SH=${PEERS_SH:-../shared/bench/rpc/run-rpc-baselines.sh}
REPS=${REPS:-3}
PAYLOADS=${PAYLOADS:-64 4096}
CONCS=${CONCS:-1 16}
BIG=${BIG-1048576}
EXTRA=${EXTRA:-}
T=$(mktemp -d)  # removed on exit
trap 'rm -rf "$T"' EXIT
echo "# rpc.sh $(date -u +%FT%TZ) $(uptime | sed 's/.*load/load/')"
for r in $(seq 1 "$REPS"); do
  RPC_PAYLOADS="$PAYLOADS" RPC_CONCURRENCY="$CONCS" RPC_BIG_PAYLOADS="$BIG" \
    timeout 600 "$PEERS_SH" 2>"$T/peers.err" | grep '^peer=' | sed "s/\$/ rep=$r/" | tee -a "$T/all"
  for p in $PAYLOADS; do
    for c in $CONCS; do
      # shellcheck disable=SC2086
      timeout 120 "$RL" bench rpc --payload "$p" --concurrency "$c" $EXTRA | sed "s/\$/ rep=$r/" | tee -a "$T/all"
    done
  done
  for p in $BIG; do
    # shellcheck disable=SC2086
    timeout 120 "$RL" bench rpc --payload "$p" --concurrency 1 $EXTRA | sed "s/\$/ rep=$r/" | tee -a "$T/all"
  done
done
/usr/bin/python3 - "$T/all" <<'EOF'
import sys, statistics as st
rows = {}
for line in open(sys.argv[1]):
    kv = dict(f.split('=', 1) for f in line.split() if '=' in f)
    key = (int(kv['payload']), int(kv['concurrency']), kv['peer'])
    rows.setdefault(key, {})[kv['rep']] = kv
cases = sorted({(p, c) for p, c, _ in rows})
for p, c in cases:
    metric = 'p50_us' if c == 1 else 'calls_per_s'
    def per_rep(peer):
        return {r: float(v[metric]) for r, v in rows.get((p, c, peer), {}).items()}
    us, nng, grpc = per_rep('ringleader'), per_rep('nng-reqrep'), per_rep('grpc')
    def ratios(other):
        # time: ours / theirs (lower is better); rate: ours / theirs (higher is better)
        return [us[r] / other[r] for r in sorted(us) if r in other and other[r] > 0]
    def fmt(xs): return '/'.join('%.2f' % x for x in xs) if xs else '-'
    def med(d): return '%.1f' % st.median(d.values()) if d else '-'
    print('rpc_ratio payload=%d concurrency=%d metric=%s ringleader=%s nng=%s grpc=%s '
          'vs_nng=%s vs_grpc=%s' % (p, c, metric, med(us), med(nng), med(grpc),
                                    fmt(ratios(nng)), fmt(ratios(grpc))))
EOF
