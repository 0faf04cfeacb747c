# shellcheck shell=bash
# Shared settings and helpers of the test-cluster scripts. Sourced, never run.
#
# Every path and port can be overridden from the environment, so two checkouts can run side by
# side. Nothing here touches anything outside JACKAL_CACHE_DIR and JACKAL_TESTBED_DIR.

TESTBED_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$TESTBED_ROOT/versions.env"

# Builds, keyed by version, survive across runs and checkouts.
JACKAL_CACHE_DIR=${JACKAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/jackal}
# Runtime state of one running cluster: certificates, kubeconfigs, etcd data, logs, PIDs.
JACKAL_TESTBED_DIR=${JACKAL_TESTBED_DIR:-/tmp/jackal-testbed}

ETCD_PORT=${JACKAL_ETCD_PORT:-23790}
ETCD_PEER_PORT=${JACKAL_ETCD_PEER_PORT:-23800}
APISERVER_PORT=${JACKAL_APISERVER_PORT:-16443}
CONTROLLER_MANAGER_PORT=${JACKAL_CONTROLLER_MANAGER_PORT:-20257}
SCHEDULER_PORT=${JACKAL_SCHEDULER_PORT:-20259}
SERVICE_CIDR=${JACKAL_SERVICE_CIDR:-10.96.0.0/16}
SERVICE_IP=${JACKAL_SERVICE_IP:-10.96.0.1}
POD_CIDR=${JACKAL_POD_CIDR:-10.244.0.0/16}

PKI_DIR=$JACKAL_TESTBED_DIR/pki
LOG_DIR=$JACKAL_TESTBED_DIR/logs
PID_DIR=$JACKAL_TESTBED_DIR/pids
BIN_LINK=$JACKAL_TESTBED_DIR/bin

say() { printf '\033[1m[testbed]\033[0m %s\n' "$*" >&2; }
fail() {
    printf '\033[31m[testbed] error:\033[0m %s\n' "$*" >&2
    exit 1
}

# The cache directory holding the binaries of the pinned versions. The key covers everything that
# changes the output: the versions, the Go module files, our Go sources and the Go toolchain.
kube_build_dir() {
    local key
    key=$( (cat "$TESTBED_ROOT/versions.env" "$TESTBED_ROOT"/kube/go.mod "$TESTBED_ROOT"/kube/go.sum \
        "$TESTBED_ROOT"/kube/cmd/*/*.go; go version) | sha256sum | cut -c1-12)
    echo "$JACKAL_CACHE_DIR/testbed/kube-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-$key"
}

pid_file() { echo "$PID_DIR/$1.pid"; }

# True when the process recorded for component $1 is alive and still the one we started.
is_running() {
    local file pid
    file=$(pid_file "$1")
    [ -f "$file" ] || return 1
    pid=$(cat "$file")
    [ -d "/proc/$pid" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$1"
}

# start NAME COMMAND... : runs COMMAND in its own session, logging to logs/NAME.log.
start_process() {
    local name=$1
    shift
    if is_running "$name"; then
        say "$name already running (pid $(cat "$(pid_file "$name")"))"
        return 0
    fi
    mkdir -p "$LOG_DIR" "$PID_DIR"
    say "starting $name (log: $LOG_DIR/$name.log)"
    setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
    echo $! >"$(pid_file "$name")"
}

# stop_process NAME : SIGTERM, then SIGKILL after 15 s; only ever the PID we recorded.
stop_process() {
    local name=$1 file pid
    file=$(pid_file "$name")
    [ -f "$file" ] || return 0
    pid=$(cat "$file")
    if is_running "$name"; then
        say "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 150); do
            [ -d "/proc/$pid" ] || break
            sleep 0.1
        done
        if [ -d "/proc/$pid" ]; then
            say "$name did not stop in 15 s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
    fi
    rm -f "$file"
}

# wait_for DESCRIPTION SECONDS COMMAND... : polls COMMAND until it succeeds.
wait_for() {
    local what=$1 seconds=$2 deadline
    shift 2
    deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            return 1
        fi
        sleep 0.25
    done
    say "$what is ready"
}
