# `factory shell` in a real terminal (docs/shell.md): a private tmux server gives it a pty of a
# known size, and the test types into it as a user would: the prompt, a command's output, the
# window size at start and after a resize, Ctrl-C on a foreground command, job control, and
# `exit 7` becoming factory's exit code, and a closed terminal ending the session. Nothing is
# left running or mounted afterwards.
#
# Waits poll the pane's text with a bounded timeout (TTY_TIMEOUT, 15 s by default; the first
# prompt gets four times that, since it includes a no-op build of the recipe): never a fixed sleep
# standing in for an assertion, so a loaded machine makes the test slower, not flaky.
# shellcheck source=tests/lib.sh disable=SC2016 # single-quoted lines are typed into the shell
SELF=$(readlink -f "$0")
source "$(dirname "$0")/../lib.sh"
need_root
need tmux jq

TIMEOUT=${TTY_TIMEOUT:-15}
SOCKET="factory-test-tty-$$-$RANDOM"
SESSION="tty"
PROMPT_RE='^\[ftty\]\$( |$)' # a prompt line (typed on or not): one more each time the shell prompts

bb=$(busybox_context)
recipe=$TEST_DIR/env/ttybox.toml
write "$recipe" <<'TOML'
[image]
name = "example.com/test/ttybox"

[contexts]
busybox = "@BB@"

[base]
image = "scratch"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]

[[step]]
run = ["/bin/busybox", "--install", "-s", "/bin"]

[config]
env = { PATH = "/bin", PS1 = "[ftty]$ " }
TOML
sed -i "s|@BB@|$bb|" "$recipe"
build "$recipe" >/dev/null

tm() { tmux -L "$SOCKET" -f /dev/null "$@"; }

# factory processes of this test (their command line names this test's store; the kernel keeps
# 15 characters of a program's name).
FACTORY_COMM=$(basename "$FACTORY" | cut -c1-15)
factory_pids() {
    local p
    for p in $(pgrep -f -- "--cache $TEST_DIR/store" || true); do
        [[ $(cat "/proc/$p/comm" 2>/dev/null) == "$FACTORY_COMM" ]] && echo "$p"
    done
}

# env_containers: "RUNTIME CONTAINER" of every running shell environment of this test's store
# (docs/shell.md "Environments": each shell is an exec into its environment's container).
env_containers() {
    "$FACTORY" ps --cache "$TEST_DIR/store" --json 2>/dev/null | jq -r '"\(.runtime) \(.container)"' || true
}

# On every way out: end the environments first (factory itself kills a shell's process 2 s
# after the hangup that stopping tmux causes, docs/shell.md; this doesn't wait, and works after
# a failure of that too), let factory clean up, then stop the tmux server.
stop_everything() {
    local p n
    for n in $("$FACTORY" ps --cache "$TEST_DIR/store" --json 2>/dev/null | jq -r .name || true); do
        "$FACTORY" shell --cache "$TEST_DIR/store" --stop "$n" >/dev/null 2>&1
    done
    for p in $(factory_pids); do
        for _ in $(seq 1 100); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null
    done
    tm kill-server 2>/dev/null
    rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$SOCKET"
}
_lib_on_exit stop_everything
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# alive PID: the process exists and is not a zombie.
alive() { ps -o stat= -p "$1" 2>/dev/null | grep -qv Z; }

# assert_clean_after PID: nothing of factory PID's session is left (its environment ends in the
# background once its last shell is gone: polled).
assert_clean_after() {
    alive "$1" && fail "factory $1 still runs"
    for _ in $(seq 1 100); do
        [[ -z $(env_containers) ]] && ! grep -qF "$TEST_DIR/store" /proc/self/mountinfo && break
        sleep 0.1
    done
    assert_eq "" "$(env_containers)" "no environment left"
    assert_eq "" "$(grep -F "$TEST_DIR/store" /proc/self/mountinfo || true)" "no mount left"
    assert_eq "" "$(compgen -G "$TEST_DIR/store/envs/*/" || true)" "no environment directory left"
}

# The pane's text, its history included.
pane() { tm capture-pane -p -S - -t "$SESSION" 2>/dev/null || true; }
count_lines() { pane | grep -Ec -- "$1" || true; }

# await REGEX [COUNT] [SECONDS]: until at least COUNT lines of the pane match REGEX (grep -E);
# non-zero on timeout.
await() {
    local re=$1 count=${2:-1} limit=${3:-$TIMEOUT} start=$SECONDS
    while (($(count_lines "$re") < count)); do
        ((SECONDS - start < limit)) || return 1
        sleep 0.1
    done
}

# wait_for REGEX WHAT [COUNT] [SECONDS]: await, or fail showing the pane.
wait_for() {
    await "$1" "${3:-1}" "${4:-$TIMEOUT}" ||
        fail "$2: no line matching /$1/ (x${3:-1}) within ${4:-$TIMEOUT} s; the pane:"$'\n'"$(pane | sed 's/^/    | /')"
}

# type_line TEXT: types TEXT and Enter, as literal keys.
type_line() { tm send-keys -t "$SESSION" -l -- "$1" && tm send-keys -t "$SESSION" Enter; }

# run_line TEXT: types TEXT and waits until the shell prompts again.
run_line() {
    local before
    before=$(count_lines "$PROMPT_RE")
    type_line "$1"
    wait_for "$PROMPT_RE" "the prompt after '$1'" $((before + 1))
}

step "start: factory shell in a 91x27 terminal"
cmd=$(printf '%q shell --cache %q %q; echo "rc=$?" > %q' \
    "$FACTORY" "$TEST_DIR/store" "$recipe" "$TEST_DIR/rc")
# remain-on-exit: the pane's text stays readable after factory exits (for the failure message).
tm start-server \; set-option -g remain-on-exit on \; \
    new-session -d -s "$SESSION" -x 91 -y 27 "$cmd"
wait_for "$PROMPT_RE" "the first prompt" 1 $((4 * TIMEOUT))
assert_contains "$(pane)" "factory: shell in example.com/test/ttybox:latest" "entry message"
assert_not_contains "$(pane)" "job control turned off" "the shell has a controlling terminal"

# Which runtime factory picked (it prefers runc for a terminal): factory ps says.
mapfile -t fpids < <(factory_pids)
assert_eq 1 "${#fpids[@]}" "one factory process"
read -r runtime _ < <(env_containers)
[[ -n ${runtime:-} ]] || fail "no running environment in factory ps"
step "runtime: $runtime"

step "a command's output comes back"
run_line 'echo $((6*7))'
wait_for '^42$' "echo \$((6*7))"

step "the window size is the terminal's from the start"
run_line 'stty size'
wait_for '^27 91$' "stty size at start"

step "a resized terminal resizes the pty"
tm resize-window -t "$SESSION" -x 120 -y 35
# The resize reaches the runtime as SIGWINCH, asynchronously: ask again until it shows (bounded).
start=$SECONDS
resized=no
while ((SECONDS - start < TIMEOUT)); do
    run_line 'stty size'
    if [[ $(pane | grep -E '^[0-9]+ [0-9]+$' | tail -n 1) == "35 120" ]]; then
        resized=yes
        break
    fi
    sleep 0.2
done
# With crun factory holds the pty's master and passes the size on; runc does it itself.
[[ $resized == yes ]] ||
    fail "stty size after resize-window to 120x35 ($runtime):"$'\n'"$(pane | sed 's/^/    | /')"

step "Ctrl-C stops the foreground command, not the shell"
nap=$((20000 + RANDOM))
prompts=$(count_lines "$PROMPT_RE")
type_line "sleep $nap"
start=$SECONDS
until pgrep -f "^sleep $nap\$" >/dev/null; do
    ((SECONDS - start < TIMEOUT)) || fail "sleep $nap did not start:"$'\n'"$(pane | sed 's/^/    | /')"
    sleep 0.1
done
tm send-keys -t "$SESSION" C-c
wait_for "$PROMPT_RE" "the prompt after Ctrl-C" $((prompts + 1))
start=$SECONDS
while pgrep -f "^sleep $nap\$" >/dev/null; do
    ((SECONDS - start < TIMEOUT)) || fail "sleep $nap still runs after Ctrl-C"
    sleep 0.1
done
run_line 'echo alive-$((1+1))'
wait_for '^alive-2$' "the shell after Ctrl-C"

step "job control: a background job is listed and killed by its job number"
nap=$((20000 + RANDOM))
run_line "sleep $nap &"
run_line 'jobs'
wait_for "^\[1\]\+ +Running +sleep $nap\$" "jobs lists the background job"
run_line 'kill %1; wait %1; echo "job-status=$?"'
wait_for '^job-status=143$' "kill %1 ends the job with SIGTERM"
pgrep -f "^sleep $nap\$" >/dev/null && fail "sleep $nap still runs after kill %1"

step "exit 7 ends the session with factory's exit code 7"
type_line 'exit 7'
start=$SECONDS
until [[ -s $TEST_DIR/rc ]]; do
    ((SECONDS - start < TIMEOUT)) || fail "factory did not exit after 'exit 7':"$'\n'"$(pane | sed 's/^/    | /')"
    sleep 0.1
done
assert_eq "rc=7" "$(cat "$TEST_DIR/rc")" "factory's exit code is the shell's"
assert_clean_after "${fpids[0]}"

step "closing the terminal ends the session (SIGHUP; busybox sh ignores it while it waits)"
SESSION="hup"
tm new-session -d -s "$SESSION" -x 91 -y 27 "$(printf '%q shell --cache %q %q' "$FACTORY" "$TEST_DIR/store" "$recipe")"
wait_for "$PROMPT_RE" "the first prompt of a second session" 1 $((4 * TIMEOUT))
mapfile -t fpids < <(factory_pids)
assert_eq 1 "${#fpids[@]}" "one factory process"
tm kill-session -t "$SESSION"
# factory waits 2 s for the shell to exit by itself, then kills the shell's process.
start=$SECONDS
while alive "${fpids[0]}"; do
    ((SECONDS - start < TIMEOUT)) || fail "factory ${fpids[0]} still runs $TIMEOUT s after its terminal closed"
    sleep 0.1
done
assert_clean_after "${fpids[0]}"

# The same with the other runtime: crun (the default here) gets its terminal from factory, runc
# keeps its own; both must behave alike.
if [[ -z ${FACTORY_RUNTIME:-} && $runtime == crun ]] && command -v runc >/dev/null; then
    step "again with FACTORY_RUNTIME=runc"
    FACTORY_RUNTIME=runc bash "$SELF" || fail "the runc pass failed"
fi
