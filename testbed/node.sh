# shellcheck shell=bash
# The test cluster's node and its surroundings: pod network (a bridge with no default route for
# pods, the service CIDR routed onto it: this kernel has no dummy interfaces), containerd + runc with a registry
# configuration that lets pulls reach nothing but loopback NodePorts, kubelet, kube-proxy in
# iptables mode, and the connected-side registry on 127.0.0.1:5000 that the node must not reach.
# Sourced by testbed/cluster after lib.sh and pki.sh; everything it starts or changes, `down`
# stops, removes or restores.

# Preloaded into the node's containerd (the rest comes through Jackal).
PRELOADED_IMAGES=(registry.k8s.io/pause:3.10 docker.io/jackaldev/demo-web:1.0.0)
SANDBOX_IMAGE=registry.k8s.io/pause:3.10
# Host settings the node changes; saved on `up`, restored on `down`.
TOUCHED_SYSCTLS=(net.ipv4.ip_forward net.ipv4.conf.all.route_localnet vm.overcommit_memory kernel.panic
    kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
SYSCTL_SAVE=$JACKAL_TESTBED_DIR/sysctl.saved

ctr_node() { ctr --address "$CONTAINERD_SOCKET" --namespace k8s.io "$@"; }
crictl_node() { "$BIN_DIR/crictl" --runtime-endpoint "unix://$CONTAINERD_SOCKET" --timeout 30s "$@"; }
kubectl_admin() { "$BIN_DIR/kubectl" --kubeconfig "$JACKAL_TESTBED_DIR/kubeconfig" "$@"; }

# series PACKAGE : the major.minor of an installed Debian package ("" when missing).
series() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null | sed -E 's/^([0-9]+\.[0-9]+).*/\1/'; }

check_node_prerequisites() {
    [ "$(id -u)" -eq 0 ] || fail "the node needs root (network devices, mounts, cgroups): run as root"
    [ "$(series containerd)" = "$CONTAINERD_SERIES" ] ||
        fail "containerd $CONTAINERD_SERIES.x from Debian is needed, found '$(series containerd)' (scripts/install-deps)"
    [ "$(series runc)" = "$RUNC_SERIES" ] ||
        fail "runc $RUNC_SERIES.x from Debian is needed, found '$(series runc)' (scripts/install-deps)"
    [ "$(series containernetworking-plugins)" = "$CNI_PLUGINS_SERIES" ] ||
        fail "containernetworking-plugins $CNI_PLUGINS_SERIES.x is needed (scripts/install-deps)"
    local tool
    for tool in iptables iptables-save iptables-restore ip findmnt; do
        command -v "$tool" >/dev/null || fail "$tool is missing (scripts/install-deps)"
    done
}

# --- host settings ---------------------------------------------------------------------------

save_sysctls() {
    [ -f "$SYSCTL_SAVE" ] && return 0
    local key
    for key in "${TOUCHED_SYSCTLS[@]}"; do
        echo "$key=$(sysctl -n "$key")"
    done >"$SYSCTL_SAVE"
}

restore_sysctls() {
    [ -f "$SYSCTL_SAVE" ] || return 0
    local line
    while read -r line; do
        sysctl -q -w "$line" >/dev/null 2>&1 || say "could not restore $line"
    done <"$SYSCTL_SAVE"
    rm -f "$SYSCTL_SAVE"
}

# --- pod and service network -----------------------------------------------------------------

setup_network() {
    save_sysctls
    ip link show "$BRIDGE" >/dev/null 2>&1 || ip link add "$BRIDGE" type bridge
    ip addr replace "$NODE_IP/${POD_SUBNET#*/}" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    # Service IPs that kube-proxy has not (yet) translated must die here instead of following the
    # default route out of the machine. This kernel has no dummy interfaces, so the service CIDR is
    # routed onto the pod bridge, which has no uplink: an untranslated packet finds no neighbour
    # and is dropped. (A blackhole route would also stop the host's own ClusterIP connections,
    # which are only translated after the route lookup.)
    ip route replace "$SERVICE_CIDR" dev "$BRIDGE"
    sysctl -q -w net.ipv4.ip_forward=1 >/dev/null

    mkdir -p "$CNI_DIR/net.d" "$CNI_DIR/ipam"
    # Pods get the pod subnet and a route to the service CIDR through the node, and no default
    # route: nothing a pod sends can leave the machine.
    cat >"$CNI_DIR/net.d/10-jackal-testbed.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "jackal-testbed",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "$SERVICE_CIDR"}],
        "dataDir": "$CNI_DIR/ipam"
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

teardown_network() {
    ip link del "$BRIDGE" 2>/dev/null || true
}

# Removes the iptables chains kube-proxy, kubelet and the CNI plugins created (KUBE-*, CNI-*),
# leaving every other rule as it was.
sweep_iptables() {
    local family table saved
    for family in iptables ip6tables; do
        command -v "$family-save" >/dev/null || continue
        for table in filter nat mangle raw; do
            saved=$("$family-save" -t "$table" 2>/dev/null) || continue
            grep -qE '(KUBE|CNI)-' <<<"$saved" || continue
            grep -vE '(KUBE|CNI)-' <<<"$saved" | "$family-restore" -T "$table" ||
                say "could not clean the $family $table table"
        done
    done
}

# --- containerd ------------------------------------------------------------------------------

# Pulls may reach only 127.0.0.1:<NodePort> (where Jackal's registries live, over plain HTTP).
# Everything else, the connected registry on 127.0.0.1:5000 included, is sent to a closed port,
# so a pull fails on the machine instead of leaving it.
write_registry_hosts() {
    local hosts=$CONTAINERD_DIR/certs.d port
    rm -rf "$hosts"
    mkdir -p "$hosts/_default"
    # containerd 1.6 refuses a hosts.toml without a [host] table, hence the repetition.
    printf 'server = "%s"\n[host."%s"]\n  capabilities = ["pull", "resolve"]\n' \
        http://127.0.0.1:1 http://127.0.0.1:1 >"$hosts/_default/hosts.toml"
    mkdir "${hosts}/127.0.0.1:"{30000..32767}
    for port in {30000..32767}; do
        printf 'server = "%s"\n[host."%s"]\n  capabilities = ["pull", "resolve"]\n' \
            "http://127.0.0.1:$port" "http://127.0.0.1:$port" >"$hosts/127.0.0.1:$port/hosts.toml"
    done
}

start_containerd() {
    if is_running containerd; then
        say "containerd already running"
        return 0
    fi
    mkdir -p "$CONTAINERD_DIR"
    write_registry_hosts
    cat >"$CONTAINERD_DIR/config.toml" <<EOF
version = 2
root = "$CONTAINERD_DIR/root"
state = "$CONTAINERD_DIR/state"
oom_score = 0
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$CONTAINERD_SOCKET"

[ttrpc]
  address = "$CONTAINERD_SOCKET.ttrpc"

[debug]
  address = "$CONTAINERD_DIR/debug.sock"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "$CONTAINERD_DIR/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    sandbox_image = "$SANDBOX_IMAGE"
    # The VM refuses negative oom_score_adj (no CAP_SYS_RESOURCE): clamp instead of failing.
    restrict_oom_score_adj = true
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      default_runtime_name = "runc"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
          SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "$CNI_DIR/net.d"
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "$CONTAINERD_DIR/certs.d"
EOF
    start_process containerd containerd --config "$CONTAINERD_DIR/config.toml"
    require containerd 30 ctr --address "$CONTAINERD_SOCKET" version
}

preload_images() {
    local images_dir reference archive present
    images_dir=$(tools_build_dir)/images
    present=$(ctr_node images list --quiet)
    for reference in "${PRELOADED_IMAGES[@]}"; do
        grep -qxF "$reference" <<<"$present" && continue
        archive=$(awk -v ref="$reference" '$1 == ref {print $3}' "$images_dir/images.txt")
        [ -n "$archive" ] || fail "no archive for $reference in $images_dir/images.txt"
        ctr_node images import "$images_dir/archives/$archive" >/dev/null
    done
    say "preloaded ${#PRELOADED_IMAGES[@]} images into the node: ${PRELOADED_IMAGES[*]}"
}

# Stops and removes every pod sandbox through the CRI, so networks are torn down by CNI and mounts
# released, then kills any shim left behind.
teardown_pods() {
    if is_running containerd; then
        crictl_node rmp --all --force >/dev/null 2>&1 || say "crictl rmp failed; cleaning up by force"
    fi
}

kill_leftover_shims() {
    local pid
    for pid in $(pgrep -f "containerd-shim-runc-v2.*-address $CONTAINERD_SOCKET" || true); do
        say "killing leftover shim $pid"
        kill -KILL "$pid" 2>/dev/null || true
    done
}

# --- kubelet ---------------------------------------------------------------------------------

start_kubelet() {
    if is_running kubelet; then
        say "kubelet already running"
        return 0
    fi
    mkdir -p "$KUBELET_DIR" "$JACKAL_TESTBED_DIR/pod-logs"
    write_kubeconfig "$JACKAL_TESTBED_DIR/kubelet.kubeconfig" kubelet
    : >"$JACKAL_TESTBED_DIR/resolv.conf"
    cat >"$JACKAL_TESTBED_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $PKI_DIR/kubelet-serving.crt
tlsPrivateKeyFile: $PKI_DIR/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI_DIR/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$CONTAINERD_SOCKET
cgroupDriver: cgroupfs
# This VM has cgroup v1 (hybrid); kubelet 1.34 only warns when told not to fail.
failCgroupV1: false
failSwapOn: false
# Negative scores are refused here (no CAP_SYS_RESOURCE).
oomScoreAdj: 0
clusterDomain: cluster.local
resolvConf: $JACKAL_TESTBED_DIR/resolv.conf
podLogsDir: $JACKAL_TESTBED_DIR/pod-logs
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
# The node shares the host's disk with builds: percentages of a large disk would evict (and taint
# the node against scheduling) while gigabytes are still free, so the thresholds are absolute.
evictionHard: {memory.available: "100Mi", nodefs.available: "256Mi", nodefs.inodesFree: "1%", imagefs.available: "256Mi"}
# A pressure blip during a heavy build would otherwise keep the node tainted for 5 minutes.
evictionPressureTransitionPeriod: 30s
maxPods: 110
shutdownGracePeriod: 0s
EOF
    start_process kubelet "$BIN_DIR/kubelet" \
        --config="$JACKAL_TESTBED_DIR/kubelet.yaml" \
        --kubeconfig="$JACKAL_TESTBED_DIR/kubelet.kubeconfig" \
        --root-dir="$KUBELET_DIR" \
        --cert-dir="$KUBELET_DIR/pki" \
        --hostname-override="$NODE_NAME" \
        --node-ip="$NODE_IP" \
        --v=1
    require kubelet 60 curl -fsS --max-time 2 "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
    require "node $NODE_NAME" 90 kubectl_admin wait --for=condition=Ready "node/$NODE_NAME" --timeout=2s
}

# --- kube-proxy ------------------------------------------------------------------------------

start_kube_proxy() {
    if is_running kube-proxy; then
        say "kube-proxy already running"
        return 0
    fi
    write_kubeconfig "$JACKAL_TESTBED_DIR/kube-proxy.kubeconfig" kube-proxy
    cat >"$JACKAL_TESTBED_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $JACKAL_TESTBED_DIR/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
detectLocalMode: ClusterCIDR
# NodePorts answer on the node IP and on 127.0.0.1 (where container runtimes pull from), nowhere else.
nodePortAddresses: ["127.0.0.1/32", "$NODE_IP/32"]
iptables: {localhostNodePorts: true, masqueradeAll: false}
healthzBindAddress: 127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$KUBE_PROXY_METRICS_PORT
oomScoreAdj: 0
# Leave the host's conntrack settings alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
    start_process kube-proxy "$BIN_DIR/kube-proxy" --config="$JACKAL_TESTBED_DIR/kube-proxy.yaml" --v=1
    require kube-proxy 60 curl -fsS --max-time 2 "http://127.0.0.1:$KUBE_PROXY_HEALTHZ_PORT/healthz"
}

cleanup_kube_proxy() {
    [ -x "$BIN_DIR/kube-proxy" ] && "$BIN_DIR/kube-proxy" --cleanup >>"$LOG_DIR/kube-proxy.log" 2>&1 || true
}

# --- the connected side ----------------------------------------------------------------------

start_connected_registry() {
    local dir=$JACKAL_TESTBED_DIR/connected-registry
    if is_running connected-registry; then
        say "connected-registry already running"
        return 0
    fi
    mkdir -p "$dir/data"
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog: {disabled: true}
storage:
  filesystem: {rootdirectory: $dir/data}
  delete: {enabled: true}
http:
  addr: $CONNECTED_REGISTRY
EOF
    start_process connected-registry "$BIN_DIR/registry" serve "$dir/config.yml"
    require connected-registry 30 curl -fsS --max-time 2 "http://$CONNECTED_REGISTRY/v2/"
    "$BIN_DIR/mkimages" push -layout "$(tools_build_dir)/images/layout" -registry "$CONNECTED_REGISTRY" >/dev/null
    say "connected registry $CONNECTED_REGISTRY holds: $(cut -d' ' -f1 "$(tools_build_dir)/images/images.txt" | tr '\n' ' ')"
    push_operator_image
}

# The operator image comes from our Rust sources (scripts/operator-image builds it); when it has
# been built, the connected registry holds it too, like any other image a package pulls.
push_operator_image() {
    local dir
    dir=$(operator_image_dir)
    if [ ! -f "$dir/images.txt" ]; then
        say "no operator image built yet (scripts/operator-image builds and pushes it)"
        return 0
    fi
    "$BIN_DIR/mkimages" push -layout "$dir/layout" -registry "$CONNECTED_REGISTRY" >/dev/null
    say "connected registry $CONNECTED_REGISTRY holds: $(cut -d' ' -f1 "$dir/images.txt")"
}

# --- what is left when the processes are gone ------------------------------------------------

# Unmounts everything the node mounted (pod volumes, container root filesystems, sandbox shm).
unmount_node() {
    local target
    findmnt -rn -o TARGET | grep -E "^($JACKAL_TESTBED_DIR|/run/containerd/io\.containerd\.)" | sort -r |
        while read -r target; do
            target=$(printf '%b' "$target")
            umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || say "could not unmount $target"
        done
}

# Removes the cgroups kubelet created (kubepods in every hierarchy), deepest first.
remove_cgroups() {
    local hierarchy
    for hierarchy in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice /sys/fs/cgroup/unified/kubepods; do
        [ -d "$hierarchy" ] || continue
        find "$hierarchy" -depth -type d -exec rmdir {} + 2>/dev/null || say "could not remove cgroup $hierarchy"
    done
}

# Log symlinks kubelet left in /var/log/containers pointing into our pod logs.
remove_log_links() {
    local link
    for link in /var/log/containers/*.log; do
        [ -L "$link" ] || continue
        case "$(readlink "$link")" in "$JACKAL_TESTBED_DIR"/*) rm -f "$link" ;; esac
    done
}
