# lib.sh - helpers the shell benchmarks share: `. bench/lib.sh SCRATCH_DIR`
# (sourced, not run; SCRATCH_DIR is the bench's own, removed on its exit).
#
# free_port: a loopback port free now and not handed out before by this
# script. The kernel may offer a port again once the probing socket closes,
# and a spec whose coordinator and a node share a port is refused.
RL_BENCH_PORTS=${1:?bench/lib.sh needs the scratch directory}/.ports
: >"$RL_BENCH_PORTS"
free_port() {
  local p i
  for i in $(seq 1 50); do
    p=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()')
    if ! grep -qx "$p" "$RL_BENCH_PORTS"; then
      echo "$p" >>"$RL_BENCH_PORTS"; echo "$p"; return 0
    fi
  done
  echo "free_port: no port not handed out before in 50 tries" >&2; return 1
}
