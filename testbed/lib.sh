# shellcheck shell=bash
# Shared settings and helpers of the test-cluster scripts. Sourced, never run.
#
# Every path, port and address can be overridden from the environment. Nothing here touches
# anything outside JACKAL_CACHE_DIR, JACKAL_TESTBED_DIR and the network objects named below.

TESTBED_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$TESTBED_ROOT/versions.env"

# Builds, keyed by version, survive across runs and checkouts.
JACKAL_CACHE_DIR=${JACKAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/jackal}
# Runtime state of one running cluster: certificates, kubeconfigs, data, logs, PIDs.
JACKAL_TESTBED_DIR=${JACKAL_TESTBED_DIR:-/tmp/jackal-testbed}

# Control plane.
ETCD_PORT=${JACKAL_ETCD_PORT:-23790}
ETCD_PEER_PORT=${JACKAL_ETCD_PEER_PORT:-23800}
APISERVER_PORT=${JACKAL_APISERVER_PORT:-16443}
CONTROLLER_MANAGER_PORT=${JACKAL_CONTROLLER_MANAGER_PORT:-20257}
SCHEDULER_PORT=${JACKAL_SCHEDULER_PORT:-20259}
SERVICE_CIDR=${JACKAL_SERVICE_CIDR:-10.96.0.0/16}
SERVICE_IP=${JACKAL_SERVICE_IP:-10.96.0.1}
POD_CIDR=${JACKAL_POD_CIDR:-10.244.0.0/16}

# The node. Its IP is the pod bridge's gateway: local to this machine, reachable from pods, and
# the address the API server advertises (so in-cluster clients reach it through the `kubernetes`
# Service) and binds.
NODE_NAME=${JACKAL_NODE_NAME:-jackal-node}
POD_SUBNET=${JACKAL_POD_SUBNET:-10.244.0.0/24}
NODE_IP=${JACKAL_NODE_IP:-10.244.0.1}
BRIDGE=${JACKAL_BRIDGE:-jackal0}
KUBELET_PORT=${JACKAL_KUBELET_PORT:-20250}
KUBELET_HEALTHZ_PORT=${JACKAL_KUBELET_HEALTHZ_PORT:-20248}
KUBE_PROXY_HEALTHZ_PORT=${JACKAL_KUBE_PROXY_HEALTHZ_PORT:-20256}
KUBE_PROXY_METRICS_PORT=${JACKAL_KUBE_PROXY_METRICS_PORT:-20249}
# The connected side ("the internet"): a plain registry the node must NOT be able to pull from.
CONNECTED_REGISTRY=${JACKAL_CONNECTED_REGISTRY:-127.0.0.1:5000}

PKI_DIR=$JACKAL_TESTBED_DIR/pki
LOG_DIR=$JACKAL_TESTBED_DIR/logs
PID_DIR=$JACKAL_TESTBED_DIR/pids
BIN_DIR=$JACKAL_TESTBED_DIR/bin
CONTAINERD_DIR=$JACKAL_TESTBED_DIR/containerd
CONTAINERD_SOCKET=$CONTAINERD_DIR/containerd.sock
KUBELET_DIR=$JACKAL_TESTBED_DIR/kubelet
CNI_DIR=$JACKAL_TESTBED_DIR/cni
API_SERVER_URL=https://$NODE_IP:$APISERVER_PORT

say() { printf '\033[1m[testbed]\033[0m %s\n' "$*" >&2; }
fail() {
    printf '\033[31m[testbed] error:\033[0m %s\n' "$*" >&2
    exit 1
}

# Hash of files and the Go version: the cache key of a build (callers pass the versions that
# matter to it, so bumping an unrelated version rebuilds nothing).
build_key() {
    (cat "$@"; go version) | sha256sum | cut -c1-12
}

# The cache directory of the control-plane build (etcd and the Kubernetes multi-call binary).
kube_build_dir() {
    echo "$JACKAL_CACHE_DIR/testbed/kube-$KUBERNETES_VERSION-etcd-$ETCD_VERSION-$(build_key \
        <(echo "$KUBERNETES_VERSION $ETCD_VERSION") "$TESTBED_ROOT"/kube/go.mod "$TESTBED_ROOT"/kube/go.sum \
        "$TESTBED_ROOT"/kube/cmd/*/*.go)"
}

# The cache directory of the node tools and images build.
tools_build_dir() {
    echo "$JACKAL_CACHE_DIR/testbed/tools-$(build_key \
        <(echo "$DISTRIBUTION_VERSION $CRI_TOOLS_VERSION $GO_CONTAINERREGISTRY_VERSION") \
        "$TESTBED_ROOT"/tools/go.mod "$TESTBED_ROOT"/tools/go.sum "$TESTBED_ROOT"/tools/*.go \
        "$TESTBED_ROOT"/tools/cmd/*/*.go)"
}

# The cache directory of the Flux and Argo CD CRDs.
crds_build_dir() {
    echo "$JACKAL_CACHE_DIR/testbed/crds-flux-$FLUX_SOURCE_CONTROLLER_VERSION-argocd-$ARGOCD_VERSION"
}

pid_file() { echo "$PID_DIR/$1.pid"; }

# The kernel's start time of a live process (field 22 of /proc/PID/stat; nothing for a zombie):
# with the PID it identifies the process uniquely, so a recycled PID is never mistaken for ours.
start_time() { awk '$3 != "Z" {print $22}' "/proc/$1/stat" 2>/dev/null; }

# True when the process recorded for component $1 is alive and is still the one we started.
is_running() {
    local file pid started
    file=$(pid_file "$1")
    [ -f "$file" ] || return 1
    read -r pid started <"$file"
    [ -n "$pid" ] && [ "$(start_time "$pid")" = "$started" ]
}

# start_process NAME COMMAND... : runs COMMAND in its own session, logging to logs/NAME.log.
start_process() {
    local name=$1 pid
    shift
    if is_running "$name"; then
        say "$name already running (pid $(cut -d' ' -f1 "$(pid_file "$name")"))"
        return 0
    fi
    mkdir -p "$LOG_DIR" "$PID_DIR"
    say "starting $name (log: $LOG_DIR/$name.log)"
    setsid "$@" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid $(start_time "$pid")" >"$(pid_file "$name")"
}

# stop_process NAME : SIGTERM, then SIGKILL after 15 s; only ever the process we recorded.
stop_process() {
    local name=$1 file pid
    file=$(pid_file "$name")
    [ -f "$file" ] || return 0
    pid=$(cut -d' ' -f1 "$file")
    if is_running "$name"; then
        say "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 150); do
            is_running "$name" || break
            sleep 0.1
        done
        if is_running "$name"; then
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

# Where scripts/operator-image writes the operator image (layout/, archives/, images.txt): beside
# the Rust build it comes from, since it depends on our sources and not on pinned versions.
operator_image_dir() {
    local target=${CARGO_TARGET_DIR:-$(dirname "$TESTBED_ROOT")/target}
    case "$target" in /*) ;; *) target=$(dirname "$TESTBED_ROOT")/$target ;; esac
    echo "$target/operator-image"
}
