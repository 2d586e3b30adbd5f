# Parallel builds (docs/cli.md "Parallel builds"): independent stages and the recipes of one
# command run at the same time, bounded by --jobs; a step several recipes share is built once;
# a failing recipe leaves the others tagged; SIGKILL at any moment leaves a store that
# `cache verify` finds clean, and the next build at the same digests.
source "$(dirname "$0")/../lib.sh"
need_root
need runc jq python3
bb=$(busybox_context)

# sleepers N: a recipe whose stages a and b each sleep 2 s (on a busybox stage), and a final
# stage copying from both.
write ctx/sleepers.toml <<EOF
[image]
name = "sleepers"

[contexts]
busybox = "$bb"

[args]
N = "0"

[stage.bb.base]
image = "scratch"

[[stage.bb.step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]

[stage.a]
base = "stage:bb"

[[stage.a.step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox sleep 2 && echo a\${N} >/a"]

[stage.b]
base = "stage:bb"

[[stage.b.step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox sleep 2 && echo b\${N} >/b"]

[[step]]
copy = [{ from = "a", src = "/a", dest = "/a" }, { from = "b", src = "/b", dest = "/b" }]
EOF

seconds() { python3 -c 'import time; print(time.monotonic())'; }

step "--jobs 1: the two sleeping stages one after the other"
t0=$(seconds)
expect_ok build --jobs 1 --progress plain --arg N=1 ctx/sleepers.toml
t1=$(seconds)
one=${OUT##* }
order=$(grep -E '^\[(a|b) 1/1\] (run|done)' "$TEST_DIR/last.stderr" | cut -c1-12 | sed 's/\[[ab]/[x/')
assert_eq "[x 1/1] run "$'\n'"[x 1/1] done"$'\n'"[x 1/1] run "$'\n'"[x 1/1] done" "$order" \
    "with one job, the second sleeper starts after the first is done"
seq_time=$(python3 -c "print(round($t1 - $t0, 2))")
python3 -c "import sys; sys.exit(0 if $seq_time >= 4.0 else 1)" ||
    fail "--jobs 1 took $seq_time s, less than the two 2 s sleeps"

step "--jobs 2: at the same time"
t0=$(seconds)
expect_ok build --jobs 2 --progress plain --arg N=2 ctx/sleepers.toml
t1=$(seconds)
par_time=$(python3 -c "print(round($t1 - $t0, 2))")
first_done=$(grep -nE '^\[(a|b) 1/1\] done' "$TEST_DIR/last.stderr" | head -n 1 | cut -d: -f1)
for s in a b; do
    start=$(grep -nE "^\[$s 1/1\] run " "$TEST_DIR/last.stderr" | cut -d: -f1)
    [[ -n $start && $start -lt $first_done ]] ||
        fail "with two jobs, $s did not start before the first sleeper was done"$'\n'"$ERR"
done
echo "sequential $seq_time s, two jobs $par_time s" >&2
# The overlap saves about 2 s; the margin is for a loaded machine.
python3 -c "import sys; sys.exit(0 if $par_time < $seq_time - 1.2 else 1)" ||
    fail "--jobs 2 took $par_time s against $seq_time s with --jobs 1"

step "--jobs 1 and --jobs 2 give the same digest"
expect_ok --cache "$TEST_DIR/other" build --jobs 2 --arg N=1 ctx/sleepers.toml
assert_eq "$one" "${OUT##* }" "the same image whatever --jobs"

# share I: four recipes whose first two steps are the same (a copy, a RUN), then their own.
for i in 1 2 3 4; do
    write ctx/share$i.toml <<EOF
[image]
name = "share$i"

[contexts]
busybox = "$bb"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]

[[step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox sleep 1 && echo shared >/shared"]

[[step]]
run = ["/bin/busybox", "sh", "-c", "echo $i >/own"]
EOF
done
step "four recipes sharing their first steps: built once, the others wait and reuse them"
export FACTORY_CACHE=$TEST_DIR/shared
expect_ok build --jobs 4 --progress plain ctx/share1.toml ctx/share2.toml ctx/share3.toml ctx/share4.toml
together=$OUT
assert_eq "share1:latest share2:latest share3:latest share4:latest" \
    "$(cut -d' ' -f1 <<<"$together" | tr '\n' ' ' | sed 's/ $//')" "stdout in the recipes' order"
assert_match 'wait: share[1-4] main 2/3: waiting for \[share[1-4] main 2/3\], the same step' "$ERR" \
    "a recipe says it waits for the one building the shared step"
expect_ok cache stats --json
assert_eq 1 "$(jq .kinds.copy.misses <<<"$OUT")" "the shared copy is built once"
assert_eq 5 "$(jq .kinds.run.misses <<<"$OUT")" "the shared RUN once, each own RUN once"
export FACTORY_CACHE=$TEST_DIR/alone
alone=""
for i in 1 2 3 4; do
    expect_ok build ctx/share$i.toml
    alone+="$OUT"$'\n'
done
assert_eq "${alone%$'\n'}" "$together" "the same digests as one at a time"

step "one of three recipes fails: exit 1, its error, the other two tagged"
write ctx/bad.toml <<EOF
[image]
name = "bad"

[contexts]
busybox = "$bb"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]

[[step]]
run = ["/bin/busybox", "sh", "-c", "exit 3"]
EOF
export FACTORY_CACHE=$TEST_DIR/three
run_factory build --jobs 2 ctx/share1.toml ctx/bad.toml ctx/share2.toml
assert_eq 1 "$RC" "exit code"$'\n'"$ERR"
assert_eq "$(sed -n 1p <<<"$together")"$'\n'"$(sed -n 2p <<<"$together")" "$OUT" \
    "the two good recipes on stdout, in order"
assert_match "(^|"$'\n'")factory: error: [^"$'\n'"]*ctx/bad.toml: main 2/2: the command exited with 3" "$ERR" \
    "the failing recipe's error"
expect_ok images
assert_contains "$OUT" "share1:latest" "share1 tagged"
assert_contains "$OUT" "share2:latest" "share2 tagged"
assert_not_contains "$OUT" "bad:latest" "bad not tagged"

step "SIGKILL at random moments, 10 times: cache verify stays clean"
export FACTORY_CACHE=$TEST_DIR/killed
for n in $(seq 1 10); do
    delay=$(python3 -c "import random; print(round(random.uniform(0.05, 2.5), 2))")
    "$FACTORY" build --jobs 2 --progress plain --arg N=k$n ctx/sleepers.toml \
        >"$TEST_DIR/kill.out" 2>&1 &
    pid=$!
    sleep "$delay"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    sleep 0.3 # a RUN's runtime outlives factory for a moment
    expect_ok cache verify
    assert_contains "$OUT" ": clean" "cache verify after a SIGKILL at ${delay}s (round $n)"
done
expect_ok build --jobs 2 --arg N=k10 ctx/sleepers.toml
killed=${OUT##* }
expect_ok --cache "$TEST_DIR/unkilled" build --jobs 1 --arg N=k10 ctx/sleepers.toml
assert_eq "${OUT##* }" "$killed" "after the kills, the same digest as a store never killed"
echo "PASS: $TEST_NAME"
