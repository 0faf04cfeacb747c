# Helpers shared by the benchmark scripts (sourced, after testbed/lib.sh): timing, medians, peak
# RSS, free loopback ports, and background processes stopped on exit.

# median : the median of the numbers on stdin, one per line.
median() {
    local values
    values=$(sort -g)
    sed -n "$((($(wc -l <<<"$values") + 1) / 2))p" <<<"$values"
}
now() { date +%s.%N; }
# elapsed START : seconds since START (from now).
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN {printf "%.2f", e - s}'; }
rss_peak_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
# reset_rss_peak PID : sets PID's peak RSS (VmHWM) back to its current RSS (Linux 4.0+), so a
# later rss_peak_kib covers only what happened since.
reset_rss_peak() { echo 5 >"/proc/$1/clear_refs"; }
kib_to_mib() { awk -v kib="$1" 'BEGIN {printf "%.1f", kib / 1024}'; }
mbps() { awk -v bytes="$1" -v seconds="$2" 'BEGIN {printf "%.0f", bytes / seconds / 1e6}'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 600); do curl -fs -o /dev/null "$1" && return 0; sleep 0.1; done; return 1; }

# Background processes to stop on exit: append their pids to bench_pids.
bench_pids=()
bench_cleanup() { for pid in "${bench_pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap bench_cleanup EXIT

# start_registry NAME STORAGE : a distribution registry on a free loopback port storing in STORAGE;
# sets registry_port and registry_pid. Needs TOOLS (the testbed tools build's bin directory).
start_registry() {
    local name=$1 storage=$2
    registry_port=$(free_port)
    cat >"$BENCH_DIR/$name.yml" <<CONFIG
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$registry_port}
CONFIG
    "$TOOLS/registry" serve "$BENCH_DIR/$name.yml" 2>"$BENCH_DIR/$name.log" &
    registry_pid=$!
    bench_pids+=("$registry_pid")
    wait_http "http://127.0.0.1:$registry_port/v2/" || { cat "$BENCH_DIR/$name.log"; exit 1; }
}
