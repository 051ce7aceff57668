#!/bin/bash
# validate.sh RINGLEADER SOURCE_DIR - runs the real `ringleader validate` on
# every example spec (exit 0, a summary) and on a bad spec (exit 2, every
# problem as SPEC:LINE:COL: message with the source line and a caret).
set -u
bin=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}

# Runs the command; sets rc, and out/err to the files with its output.
run() {
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

# Every example spec is valid.
for spec in "$src"/configs/*.yaml; do
    run "$bin" validate "$spec"
    [ "$rc" -eq 0 ] || fail "$spec: exit $rc, want 0: $(cat "$tmp/err")"
    grep -q '^cluster ' "$tmp/out" || fail "$spec: no summary"
    [ -s "$tmp/err" ] && fail "$spec: unexpected stderr: $(cat "$tmp/err")"
done
run "$bin" validate "$src/configs/local.yaml"
grep -qE '^cluster +name demo, coordinator tcp://127.0.0.1:7700' "$tmp/out" ||
    fail "local.yaml summary: $(cat "$tmp/out")"
grep -qE '^ +n4 +tcp://127.0.0.1:7704 +1$' "$tmp/out" || fail "local.yaml: no node table"

# A bad spec: exit 2 and both problems, in order, with line, column, caret.
cat >"$tmp/bad.yaml" <<'YAML'
cluster:
  coordinator: tcp://127.0.0.1:7700
  nodes:
    - { id: n1, listen: tcp://127.0.0.1:7700 }
training:
  steps: ten
YAML
run "$bin" validate "$tmp/bad.yaml"
[ "$rc" -eq 2 ] || fail "bad.yaml: exit $rc, want 2"
[ -s "$tmp/out" ] && fail "bad.yaml: a summary was printed"
grep -qxF "$tmp/bad.yaml:4:25: cluster.nodes[0].listen: 127.0.0.1:7700 is also the coordinator's address (line 2)" "$tmp/err" ||
    fail "bad.yaml: no duplicate-address problem: $(cat "$tmp/err")"
grep -qxF "$tmp/bad.yaml:6:10: training.steps: expected an integer, got 'ten'" "$tmp/err" ||
    fail "bad.yaml: no type problem: $(cat "$tmp/err")"
[ "$(grep -c "^$tmp/bad.yaml:[0-9]*:[0-9]*: " "$tmp/err")" -eq 2 ] ||
    fail "bad.yaml: want exactly 2 problems: $(cat "$tmp/err")"
[ "$(head -1 "$tmp/err" | cut -d: -f2)" = 4 ] || fail "bad.yaml: problems not sorted by line"
grep -qxF '           ^' "$tmp/err" || fail "bad.yaml: no caret under column 10"
grep -qxF '    steps: ten' "$tmp/err" || fail "bad.yaml: no source line"

# allreduce.tcp_congestion: local nodes run on this host, whose kernel must
# offer a named algorithm; auto and system always pass.
cp "$src/configs/demo.token" "$tmp/"
sed 's/^  tcp_congestion: .*/  tcp_congestion: nosuchcc/' "$src/configs/local.yaml" >"$tmp/cc.yaml"
grep -q 'tcp_congestion: nosuchcc' "$tmp/cc.yaml" || fail "cc.yaml: local.yaml has no tcp_congestion line"
run "$bin" validate "$tmp/cc.yaml"
[ "$rc" -eq 2 ] || fail "cc.yaml: exit $rc, want 2"
grep -q "^$tmp/cc.yaml:[0-9]*:[0-9]*: allreduce.tcp_congestion: 'nosuchcc' is not a TCP congestion control this host's kernel offers" "$tmp/err" ||
    fail "cc.yaml: $(cat "$tmp/err")"
for cc in auto system; do
    sed "s/nosuchcc/$cc/" "$tmp/cc.yaml" >"$tmp/cc-ok.yaml"
    run "$bin" validate "$tmp/cc-ok.yaml"
    [ "$rc" -eq 0 ] || fail "tcp_congestion: $cc: exit $rc: $(cat "$tmp/err")"
done

# A YAML syntax error: libyaml's 0-based mark printed 1-based.
printf 'cluster:\n  name: x\n   coordinator: y\n' >"$tmp/syntax.yaml"
run "$bin" validate "$tmp/syntax.yaml"
[ "$rc" -eq 2 ] || fail "syntax.yaml: exit $rc, want 2"
grep -q "^$tmp/syntax.yaml:3:15: syntax error: " "$tmp/err" || fail "syntax.yaml: $(cat "$tmp/err")"

# Usage.
run "$bin" validate --help
[ "$rc" -eq 0 ] || fail "validate --help: exit $rc, want 0"
grep -q '^usage: ringleader validate SPEC' "$tmp/out" || fail "validate --help: not on stdout"
run "$bin" validate
[ "$rc" -eq 2 ] || fail "validate without SPEC: exit $rc, want 2"
grep -q '^usage:' "$tmp/err" || fail "validate without SPEC: no usage on stderr"
run "$bin" validate "$tmp/none.yaml"
[ "$rc" -eq 2 ] || fail "missing spec: exit $rc, want 2"
grep -q "none.yaml: cannot open: No such file or directory" "$tmp/err" || fail "missing spec: $(cat "$tmp/err")"
run "$bin" validate --keys
[ "$rc" -eq 0 ] || fail "validate --keys: exit $rc"
grep -q '^  heartbeat_ms ' "$tmp/out" || fail "validate --keys: no heartbeat_ms"
run "$bin" --help
grep -q '^  validate ' "$tmp/out" || fail "ringleader --help does not list validate"

if [ "$failures" -ne 0 ]; then
    echo "$failures failures"
    exit 1
fi
echo "validate: all checks passed"
