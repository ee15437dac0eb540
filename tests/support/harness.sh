# Shared by the shell test suites (tests/delivery.sh, tests/roundtrip.sh); sourced, not run.
# A scratch directory and background servers removed on exit, PASS/FAIL counting, and ports on
# 127.0.0.1. A suite calls `check NAME COMMAND...` per assertion and ends with
# `[ "$failed" -eq 0 ]`.
work=$(mktemp -d)
pids=()
passed=0
failed=0
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

pass() { echo "PASS [${SECONDS}s]: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL [${SECONDS}s]: $*"; failed=$((failed + 1)); }
check() { # check NAME COMMAND...
  local name=$1; shift
  if "$@" >"$work/last.log" 2>&1; then pass "$name"; else fail "$name"; sed 's/^/    /' "$work/last.log" | tail -25; fi
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }
