# A build stopped by SIGTERM (a cancelled CI job), SIGINT (Ctrl-C: the whole process group) or
# SIGHUP kills its RUN step's container, unmounts the step's root file system, removes its
# scratch directories, moves no ref, and exits 128 + N with `factory: error: interrupted by
# SIGTERM` as its last line (docs/cli.md "Interrupting a build"); the next build gives the
# digest of an uninterrupted one. A build killed with SIGKILL can't clean up: its mounted root
# file system goes with `cache prune` once its scratch is stale, unmounted first.
source "$(dirname "$0")/../lib.sh"
need_root
need crun jq python3 setsid

# The RUN step's shell carries this name ($0), so that other tests' containers don't count.
marker="factory-signals-test-$$"

# sleeper SECONDS: a recipe whose RUN step sleeps, then writes a file.
sleeper() {
    mkdir -p ctx
    {
        busybox_recipe sleeper
        cat <<EOF

[[step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox sleep $1 && echo done >/done", "$marker"]
EOF
    } >ctx/sleep.toml
}

# containers PID: the runtime's containers of the factory process PID (factory-PID-…).
containers() { crun --root /run/factory/crun list -q 2>/dev/null | grep "^factory-$1-" || true; }

# leftovers PID: what the stopped build PID must not leave: its RUN step running, a container,
# a mount under the store, a scratch directory.
leftovers() {
    local found=""
    pgrep -f "$marker" >/dev/null && found+=" the RUN step still running;"
    [[ -n $(containers "$1") ]] && found+=" a crun container;"
    grep -q " $TEST_DIR/store" /proc/mounts && found+=" a mount under the store;"
    [[ -n $(ls -A "$TEST_DIR/store/tmp" 2>/dev/null) ]] &&
        found+=" store/tmp holds: $(ls -A "$TEST_DIR/store/tmp" | tr '\n' ' ');"
    echo "$found"
}

# wait_for_run: until the RUN step's sleep is running (at most 20 s).
wait_for_run() {
    for _ in $(seq 1 200); do
        pgrep -f "$marker" >/dev/null && return 0
        sleep 0.1
    done
    fail "the RUN step did not start within 20 s"$'\n'"$(cat "$TEST_DIR/stop.stderr")"
}

step "reference: the recipe with a short sleep, built in a fresh store"
sleeper 0
want=$(build --cache "$TEST_DIR/reference" ctx/sleep.toml)
rm -rf "$TEST_DIR/reference"

sleeper 30
for sig in TERM INT HUP; do
    step "SIGNAL $sig during the RUN step"
    if [[ $sig == INT ]]; then
        # Ctrl-C: the terminal signals the whole foreground process group.
        setsid "$FACTORY" build --progress plain ctx/sleep.toml >stop.stdout 2>stop.stderr &
        pid=$!
        wait_for_run
        kill -INT -- "-$pid"
    else
        "$FACTORY" build --progress plain ctx/sleep.toml >stop.stdout 2>stop.stderr &
        pid=$!
        wait_for_run
        kill "-$sig" "$pid"
    fi
    start=$SECONDS
    rc=0
    wait "$pid" || rc=$?
    num=$(kill -l "$sig")
    assert_eq $((128 + num)) "$rc" "exit code after SIG$sig"
    assert_eq "factory: error: interrupted by SIG$sig" "$(tail -n 1 stop.stderr)" "last line"
    (((SECONDS - start) <= 10)) || fail "the build took $((SECONDS - start)) s to stop"
    assert_eq "" "$(leftovers "$pid")" "what the stopped build left"
    assert_eq "" "$(cat stop.stdout)" "stdout of a stopped build"
    assert_eq "" "$(jq -r '.manifests[].annotations["org.opencontainers.image.ref.name"] // empty' \
        "$TEST_DIR/store/index.json" 2>/dev/null)" "refs after SIG$sig"
done
expect_ok cache verify

step "a second signal ends the build at once, without cleaning up"
"$FACTORY" build --progress plain ctx/sleep.toml >stop.stdout 2>stop.stderr &
pid=$!
wait_for_run
kill -TERM "$pid"
kill -INT "$pid" # another signal: two SIGTERMs can arrive as one
rc=0
wait "$pid" || rc=$?
# Both pending at once, the kernel delivers SIGINT first: the code is the second one's.
[[ $rc == 130 || $rc == 143 ]] || fail "exit code after SIGTERM and SIGINT: $rc"
[[ -n $(leftovers "$pid") ]] || fail "the build cleaned up after a second signal"
killed=("$pid")
pkill -KILL -f "$marker" || true # its RUN step, left running
while pgrep -f "$marker" >/dev/null; do sleep 0.1; done

step "SIGKILL: the next RUN deletes the container; prune unmounts and removes the stale scratch"
# The leftovers of the second signal above, and of this one.
"$FACTORY" build --progress plain ctx/sleep.toml >stop.stdout 2>stop.stderr &
pid=$!
wait_for_run
kill -KILL "$pid"
wait "$pid" || true
killed+=("$pid")
grep -q " $TEST_DIR/store" /proc/mounts || fail "expected the killed build's root fs mounted"
pkill -KILL -f "$marker" || true
# Scratch older than an hour is stale (docs/cache.md "Prune").
find "$TEST_DIR/store/tmp" -mindepth 1 -maxdepth 1 -exec touch -h -d '2 hours ago' {} +
expect_ok cache prune
assert_match "removed temp +tmp/run-[^ ]+ .* older than" "$OUT$ERR" "prune reports the stale scratch"
grep -q " $TEST_DIR/store" /proc/mounts && fail "prune left a mount under the store"
assert_eq "" "$(ls -A "$TEST_DIR/store/tmp")" "store/tmp after prune"

step "SIGTERM while factory export writes a disk: no output, no temp file beside it"
mkdir -p big out
head -c $((200 * 1024 * 1024)) /dev/urandom >big/big.bin
write big/big.toml <<'EOF'
[image]
name = "big"

[[step]]
copy = [{ src = "big.bin", dest = "/big.bin" }]
EOF
build big/big.toml >/dev/null
"$FACTORY" export big:latest ext4:out/disk.img >stop.stdout 2>stop.stderr &
pid=$!
for _ in $(seq 1 200); do # until its temp file is beside the destination
    [[ -n $(ls -A out) ]] && break
    sleep 0.05
done
[[ -n $(ls -A out) ]] || fail "the export wrote no temp file within 10 s"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
assert_eq 143 "$rc" "exit code of the stopped export"
assert_eq "factory: error: interrupted by SIGTERM" "$(tail -n 1 stop.stderr)" "its last line"
assert_eq "" "$(ls -A out)" "what the stopped export left beside its destination"
rm -rf big

step "the next build gives the reference digest"
sleeper 0
got=$(build ctx/sleep.toml)
assert_eq "$want" "$got" "digest after the interrupted builds"
for pid in "${killed[@]}"; do
    assert_eq "" "$(containers "$pid")" "the containers of the killed build $pid, after a RUN step"
done
expect_ok cache verify
echo "PASS: $TEST_NAME"
