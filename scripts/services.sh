# Helpers sourced by scripts/test: start real services in the background, remember their PIDs,
# wait for their ports, show their logs, and stop exactly the processes started here.
# Expects STATE_DIR (logs go to $STATE_DIR/<name>.log) and PYTHON to be set by the caller.

SERVICE_NAMES=()
SERVICE_PIDS=()

# Prints N distinct free loopback ports. All sockets stay bound until every port is chosen, so the
# N ports differ from one another; another program may still take one before the service binds it.
free_ports() {
    "$PYTHON" - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# start_service NAME COMMAND...: runs COMMAND in the background with its output in $STATE_DIR/NAME.log.
# setsid: a Ctrl-C meant for pytest must not kill the services while tests still clean up against
# them; stop_services ends them afterwards. setpriv --pdeathsig: should this script be killed with
# SIGKILL (no trap runs), the kernel still sends each service SIGTERM. Both exec, so $! is the service.
start_service() {
    local name=$1
    shift
    setsid setpriv --pdeathsig TERM "$@" </dev/null >"$STATE_DIR/$name.log" 2>&1 &
    SERVICE_NAMES+=("$name")
    SERVICE_PIDS+=("$!")
}

# wait_for_port NAME PID PORT [TIMEOUT_SECS]: returns once 127.0.0.1:PORT accepts a connection;
# fails early, with the log tail, if the process died or the port stays closed.
wait_for_port() {
    local name=$1 pid=$2 port=$3 timeout_secs=${4:-60}
    local deadline=$((SECONDS + timeout_secs))
    until (: <"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "services: $name (pid $pid) exited before opening port $port" >&2
            tail -n 40 "$STATE_DIR/$name.log" >&2 || true
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "services: $name did not open port $port within ${timeout_secs}s" >&2
            tail -n 40 "$STATE_DIR/$name.log" >&2 || true
            return 1
        fi
        sleep 0.1
    done
}

# A port can answer because another program took it before our service bound it; the service
# itself then exits. Called once every port is open, so even quick failures have shown by then.
check_services_alive() {
    local i
    for i in "${!SERVICE_PIDS[@]}"; do
        if ! kill -0 "${SERVICE_PIDS[$i]}" 2>/dev/null; then
            echo "services: ${SERVICE_NAMES[$i]} (pid ${SERVICE_PIDS[$i]}) has exited" >&2
            tail -n 40 "$STATE_DIR/${SERVICE_NAMES[$i]}.log" >&2 || true
            return 1
        fi
    done
}

print_service_logs() {
    local name
    for name in "${SERVICE_NAMES[@]}"; do
        echo "----- last lines of $name.log -----" >&2
        tail -n 30 "$STATE_DIR/$name.log" >&2 || true
    done
}

# SIGTERM every recorded PID, give them a few seconds to exit, then SIGKILL what is left.
stop_services() {
    local pid deadline
    [ "${#SERVICE_PIDS[@]}" -eq 0 ] && return 0
    for pid in "${SERVICE_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + 5))
    for pid in "${SERVICE_PIDS[@]}"; do
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SERVICE_PIDS=()
}
