# Sourced by scripts/fuzz-api and scripts/client-test (not run on its own): starts the
# already-built binary's demo for a script that talks to it, and stops it on every way
# out. The caller sets FUZZ_BIN-like BIN (the binary), OUT (a directory for the demo's
# output and log) and PY (a Python 3 to poll readiness with), then calls start_demo;
# afterwards DEMO_URL and DEMO_KEY are set, and DEMO_OUT holds the banner (with the demo's
# conversation ids).
#
#   - the demo listens on a free loopback port (--listen 127.0.0.1:0), with an empty
#     environment (a developer's GENESYS_* or GENESYS_PROXY_* variables would change
#     what the scripts test); its address and demo API key (all scopes) come from the
#     banner
#   - it is ready when /readyz answers 200 (a Genesys token is held: before it, report and
#     conversation requests could get 503s that are about start-up, not the request)
#   - stop_demo (installed as the EXIT trap) sends SIGTERM, which drains in-flight requests
#     (server.shutdown_grace_secs, 20 s by default); after 30 s it is killed

# Longest wait for the demo's banner and then for its readiness (a debug build on a
# loaded 2-core machine; the tests allow the banner 90 s too).
START_PATIENCE=90

demo_pid=
stop_demo() {
  [[ -n $demo_pid ]] || return 0
  kill -TERM "$demo_pid" 2>/dev/null || true
  for _ in $(seq 300); do
    kill -0 "$demo_pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$demo_pid" 2>/dev/null || true
  wait "$demo_pid" 2>/dev/null || true
  demo_pid=
}

demo_failed() {
  say "$1; the demo's log ($OUT/demo.log) ends with:" >&2
  tail -n 30 "$OUT/demo.log" >&2 || true
  exit 1
}

start_demo() {
  if [[ ! -x $BIN ]]; then
    say "no binary at $BIN: build it first (cargo build)" >&2
    exit 2
  fi
  # Not built here (CI has just built it for the tests): say so when it looks older than
  # the sources, so nobody tests yesterday's code by accident.
  if [[ -n $(find src genesys-sim/src Cargo.toml Cargo.lock -newer "$BIN" -print -quit 2>/dev/null) ]]; then
    say "warning: $BIN is older than the sources; run cargo build first to test this tree" >&2
  fi
  trap stop_demo EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  DEMO_OUT=$OUT/demo.out
  env -i PATH="$PATH" HOME="${HOME:-/root}" \
    "$BIN" --demo --listen 127.0.0.1:0 >"$DEMO_OUT" 2>"$OUT/demo.log" &
  demo_pid=$!
  local deadline=$(($(date +%s) + START_PATIENCE))
  until grep -q 'demo API key' "$DEMO_OUT" 2>/dev/null; do
    kill -0 "$demo_pid" 2>/dev/null || demo_failed "the demo exited before its banner"
    (($(date +%s) < deadline)) || demo_failed "no banner after ${START_PATIENCE} s"
    sleep 0.2
  done
  # The banner: "genesys-proxy demo: proxy on http://127.0.0.1:PORT, simulated ..." and
  # "  demo API key (all scopes): KEY".
  DEMO_URL=$(sed -n 's/^genesys-proxy demo: proxy on \(http:[^,]*\),.*/\1/p' "$DEMO_OUT")
  DEMO_KEY=$(sed -n 's/^ *demo API key[^:]*: *\([^ ]*\).*/\1/p' "$DEMO_OUT")
  [[ -n $DEMO_URL && -n $DEMO_KEY ]] || demo_failed "cannot read the address and the key from the banner ($DEMO_OUT)"
  "$PY" - "$DEMO_URL/readyz" "$START_PATIENCE" <<'PY' || demo_failed "not ready after ${START_PATIENCE} s"
import sys, time, urllib.request, urllib.error
url, patience = sys.argv[1], float(sys.argv[2])
deadline = time.monotonic() + patience
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            if response.status == 200:
                sys.exit(0)
    except (urllib.error.URLError, OSError):
        pass
    time.sleep(0.2)
sys.exit(1)
PY
  say "demo on $DEMO_URL (pid $demo_pid, log $OUT/demo.log)"
}
