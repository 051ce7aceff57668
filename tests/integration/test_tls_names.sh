#!/usr/bin/env bash
# test_tls_names.sh - TLS host names and cluster tokens, across addresses of a
# network namespace this test creates (A1, A2 on its loopback), with a
# throw-away CA made here by openssl:
#   - a certificate for 127.0.0.1 dialled at A1 is refused, with the reason,
#     by `ringleader status` and by a node (in seconds);
#   - certificates whose SANs name the dialled addresses carry a 2-node job;
#   - a node whose certificate does not name its ring address is refused by
#     its ring neighbour, with the reason;
#   - security.tls.verify_hostname: false connects, and validate warns;
#   - `token new` makes a 0600 token both sides accept and will not overwrite
#     it; a 0644 token file is warned about.
# Needs root (ip netns); skipped with a message otherwise.
# usage: test_tls_names.sh RINGLEADER RINGLEADER_NODE
RL=$1 NODE=$2
. "$(dirname "$0")/lib.sh"
if [ "$(id -u)" -ne 0 ] || ! ip netns add "rltls-probe-$$" 2>/dev/null; then
  echo "test_tls_names: skipped (needs root and ip netns)"; exit 0
fi
ip netns del "rltls-probe-$$"
NS=rltls$$
A1=10.200.$(( $$ % 200 )).1 A2=10.200.$(( $$ % 200 )).2
trap 'ip netns del "$NS" 2>/dev/null || true; cleanup' EXIT
ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" addr add "$A1/32" dev lo
ip -n "$NS" addr add "$A2/32" dev lo
inns() { ip netns exec "$NS" "$@"; }

# A throw-away CA and three certificates, by their subjectAltNames.
D=$RL_TMP/pki; mkdir -p "$D"
( cd "$D"
  openssl ecparam -name prime256v1 -genkey -noout -out ca.key
  openssl req -x509 -new -key ca.key -sha256 -days 2 -subj "/CN=rltest-ca" -out ca.pem
  cert() { # NAME SANS
    openssl ecparam -name prime256v1 -genkey -noout -out "$1.key"
    openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr"
    printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$2" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
      -sha256 -extfile "$1.ext" -out "$1.pem"
  }
  cert lo "IP:127.0.0.1,DNS:127.0.0.1"
  cert both "IP:$A1,DNS:$A1,IP:$A2,DNS:$A2"
  cert one "IP:$A1,DNS:$A1" ) >/dev/null 2>&1 || fail "openssl could not make the test CA"
tls() { echo "--tls-cert $D/$1.pem --tls-key $D/$1.key --tls-ca $D/ca.pem"; }

# Tokens: 0600, accepted by both sides below, never overwritten unasked.
"$RL" token new "$RL_TMP/t.token" >/dev/null || fail "token new"
[ "$(stat -c %a "$RL_TMP/t.token")" = 600 ] || fail "token file mode $(stat -c %a "$RL_TMP/t.token")"
grep -Eqx '[0-9a-f]{64}' "$RL_TMP/t.token" || fail "token file: $(cat "$RL_TMP/t.token")"
before=$(cat "$RL_TMP/t.token")
if "$RL" token new "$RL_TMP/t.token" 2>"$RL_TMP/tok.err"; then fail "token new overwrote a file"; fi
grep -q "exists; pass --force" "$RL_TMP/tok.err" || fail "token new: $(cat "$RL_TMP/tok.err")"
[ "$(cat "$RL_TMP/t.token")" = "$before" ] || fail "the refused token new changed the file"

# spec FILE CERT VERIFY LAUNCH: coordinator at A1:$P, n1 at A1:$((P+1)), n2 at A2:$((P+2)).
# Each case takes fresh ports (P): a closed listener's port may linger.
spec() {
  cat > "$1" <<YAML
cluster:
  coordinator: tls+tcp://$A1:$P
  launch: $4
  min_nodes: 2
  join_timeout_ms: 20000
  nodes:
    - { id: n1, listen: tls+tcp://$A1:$((P + 1)) }
    - { id: n2, listen: tls+tcp://$A2:$((P + 2)) }
security:
  token_file: $RL_TMP/t.token
  tls: { cert: $D/$2.pem, key: $D/$2.key, ca: $D/ca.pem, verify_hostname: $3 }
data: { source: synthetic, rows: 4000, features: 8, block_rows: 500 }
training: { steps: 5 }
output: { dir: $RL_TMP/out }
YAML
}
# start_coord SPEC: the coordinator in the namespace, listening (bounded wait).
start_coord() {
  inns "$RL" run "$1" >"$RL_TMP/c.out" 2>"$RL_TMP/c.err" &
  CPID=$!; RL_PIDS+=("$CPID")
  for _ in $(seq 1 100); do
    grep -q "listening on" "$RL_TMP/c.err" && return 0
    kill -0 "$CPID" 2>/dev/null || fail "coordinator exited: $(cat "$RL_TMP/c.err")"
    sleep 0.1
  done
  fail "coordinator not listening within 10 s"
}
# wait_exit PID SECONDS WHAT: its exit code in rc, or fail if still running.
wait_exit() {
  timeout "$2" tail --pid="$1" -f /dev/null || fail "$3 still running after $2 s"
  rc=0; wait "$1" || rc=$?
}

# 1. A certificate for 127.0.0.1 served at A1: refused, named, in seconds.
P=7700; spec "$RL_TMP/lo.yaml" lo true manual
start_coord "$RL_TMP/lo.yaml"
want="TLS: the certificate of tls+tcp://$A1:$P is not for $A1 (it names 127.0.0.1)"
rc=0; inns "$RL" status "tls+tcp://$A1:$P" --token-file "$RL_TMP/t.token" $(tls lo) \
  >/dev/null 2>"$RL_TMP/st.err" || rc=$?
[ "$rc" -eq 1 ] || fail "status with a certificate for 127.0.0.1 at $A1 exited $rc"
grep -qF "$want" "$RL_TMP/st.err" || fail "status said: $(cat "$RL_TMP/st.err")"
inns "$NODE" --coordinator "tls+tcp://$A1:$P" --id n1 --listen "tls+tcp://$A1:$((P + 1))" \
  --token-file "$RL_TMP/t.token" $(tls lo) 2>"$RL_TMP/n1.err" &
NPID=$!; RL_PIDS+=("$NPID")
wait_exit "$NPID" 10 "a node facing a certificate not for its coordinator's host"
[ "$rc" -ne 0 ] || fail "the node exited 0"
grep -qF "$want" "$RL_TMP/n1.err" || fail "the node said: $(cat "$RL_TMP/n1.err")"
kill "$CPID"; wait_exit "$CPID" 10 coordinator

# 2. SANs naming both addresses: a 2-node job over TLS RPC and ring links,
#    with the token from `token new`.
P=7710; spec "$RL_TMP/both.yaml" both true manual
start_coord "$RL_TMP/both.yaml"
for n in 1 2; do
  a=$A1; [ $n = 2 ] && a=$A2
  inns "$NODE" --coordinator "tls+tcp://$A1:$P" --id "n$n" --listen "tls+tcp://$a:$((P + n))" \
    --token-file "$RL_TMP/t.token" $(tls both) 2>"$RL_TMP/n$n.err" &
  RL_PIDS+=("$!")
done
wait_exit "$CPID" 60 "the job with certificates for both addresses"
[ "$rc" -eq 0 ] || fail "the job with matching certificates exited $rc: $(tail -5 "$RL_TMP/c.err")"

# 3. n2's certificate names A1 only, and n2 listens at A2: n1's ring link to
#    it is refused, with the reason (the coordinator at A1 accepts n2).
P=7720; spec "$RL_TMP/both.yaml" both true manual
start_coord "$RL_TMP/both.yaml"
inns "$NODE" --coordinator "tls+tcp://$A1:$P" --id n1 --listen "tls+tcp://$A1:$((P + 1))" \
  --token-file "$RL_TMP/t.token" $(tls both) 2>"$RL_TMP/n1.err" &
RL_PIDS+=("$!")
inns "$NODE" --coordinator "tls+tcp://$A1:$P" --id n2 --listen "tls+tcp://$A2:$((P + 2))" \
  --token-file "$RL_TMP/t.token" $(tls one) 2>"$RL_TMP/n2.err" &
RL_PIDS+=("$!")
want="TLS: the certificate of tls+tcp://$A2:$((P + 2)) is not for $A2 (it names $A1)"
for _ in $(seq 1 300); do
  grep -qF "$want" "$RL_TMP/n1.err" "$RL_TMP/c.err" && break
  sleep 0.1
done
grep -qF "$want" "$RL_TMP/n1.err" "$RL_TMP/c.err" ||
  fail "no refusal of n2's certificate within 30 s: $(tail -3 "$RL_TMP/n1.err")"
kill "$CPID"; wait_exit "$CPID" 15 coordinator

# 4. verify_hostname: false connects with the 127.0.0.1 certificate (launch:
#    local passes it to the nodes); validate warns. The token file is 0644
#    now: warned about, still accepted.
chmod 644 "$RL_TMP/t.token"
P=7730; spec "$RL_TMP/off.yaml" lo false local
"$RL" validate "$RL_TMP/off.yaml" >/dev/null 2>"$RL_TMP/v.err" || fail "validate: $(cat "$RL_TMP/v.err")"
grep -q "warning: security.tls.verify_hostname is false" "$RL_TMP/v.err" ||
  fail "validate did not warn: $(cat "$RL_TMP/v.err")"
"$RL" validate "$RL_TMP/both.yaml" >/dev/null 2>"$RL_TMP/v.err"
! grep -q "verify_hostname" "$RL_TMP/v.err" || fail "validate warned with the check on"
start_coord "$RL_TMP/off.yaml"
wait_exit "$CPID" 60 "the job with verify_hostname: false"
[ "$rc" -eq 0 ] || fail "the job with verify_hostname false exited $rc: $(tail -5 "$RL_TMP/c.err")"
grep -qF "token file $RL_TMP/t.token is readable by every user (mode 0644)" "$RL_TMP/c.err" ||
  fail "no warning about the 0644 token file: $(head -5 "$RL_TMP/c.err")"
echo "test_tls_names: ok"
