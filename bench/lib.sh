# Shared by the benchmarks (source it; the caller sets WORK, and TIMEOUT for bench_seconds).

# log TEXT: a progress line on stderr with the seconds since the start.
log() { printf '[%5ds] %s\n' "$SECONDS" "$*" >&2; }

# median [DECIMALS]: the median of the numbers on stdin ("n/a" for none); DECIMALS (3) for the
# mean of the two middle ones.
median() {
    sort -n | awk -v d="${1:-3}" '{ a[NR] = $1 }
        END { if (NR == 0) print "n/a"; else if (NR % 2) print a[(NR + 1) / 2];
              else printf "%.*f\n", d, (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# bench_seconds CMD...: runs CMD (output to $WORK/cmd.log, at most $TIMEOUT s) and prints its
# wall time in seconds; a failure ends the benchmark with the log's tail.
bench_seconds() {
    local start end
    start=$(date +%s.%N)
    timeout "${TIMEOUT:-600}" "$@" >"$WORK/cmd.log" 2>&1 || {
        echo "$(basename "$0"): command failed: $*" >&2
        tail -n 20 "$WORK/cmd.log" >&2
        exit 1
    }
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}

# podman_conf: a containers.conf in $WORK that podman can use on this host (MACHINE-NOTES.md:
# the default ulimits fail here; runc, cgroupfs, file events), exported as CONTAINERS_CONF.
podman_conf() {
    cat >"$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
    export CONTAINERS_CONF=$WORK/containers.conf
}

# bench_registry: a docker-registry on a free port of 127.0.0.1, its data in $WORK/registry;
# sets R (HOST:PORT) and REG_PID (the caller's cleanup kills it).
bench_registry() {
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
        "$WORK/registry" "$port" >"$WORK/registry.yml"
    docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
    REG_PID=$!
    R=127.0.0.1:$port
    for _ in $(seq 1 100); do curl -s -o /dev/null "http://$R/v2/" && return 0; sleep 0.1; done
    echo "$(basename "$0"): docker-registry did not answer: $(tail -n 3 "$WORK/registry.log")" >&2
    exit 1
}
