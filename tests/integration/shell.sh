# `factory run` and `factory shell` (docs/shell.md): exit codes and output pass through, the
# caller's uid inside, the project mounted at its own path, the env allow-list, a real pty,
# ephemeral root vs persistent HOME and volumes, and bad input (exit 2, nothing left behind).
source "$(dirname "$0")/../lib.sh"
need_root
need git script

bb=$(busybox_context)

# Background shells of the environment steps: gone with the test, whatever happens.
bg_pids=()
stop_background() {
    local p
    for p in "${bg_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    "$FACTORY" ps --json 2>/dev/null | jq -r .name 2>/dev/null | while read -r n; do
        [[ -n $n ]] && "$FACTORY" shell --stop "$n" >/dev/null 2>&1 || true
    done
}
_lib_on_exit stop_background

# A project (a git repository) with its environment's recipe in a subdirectory.
proj=$TEST_DIR/proj
mkdir -p "$proj/env" "$proj/src"
git -C "$proj" init -q
chmod 0777 "$proj" "$proj/src"
write "$proj/env/devbox.toml" <<'TOML'
[image]
name = "example.com/team/devbox"

[contexts]
busybox = "@BB@"

[base]
image = "scratch"

[[step]]
copy = [{ context = "busybox", src = "busybox", dest = "/bin/busybox", mode = "0755" }]

[[step]]
run = ["/bin/busybox", "--install", "-s", "/bin"]

[config]
env = { PATH = "/bin" }

[shell]
volumes = { data = "/data" }
env_passthrough = ["EXTRA_OK"]
TOML
sed -i "s|@BB@|$bb|" "$proj/env/devbox.toml"
recipe=$proj/env/devbox.toml

# No container and no mount may outlive a command: every container factory left (its id is
# factory-<pid>-<random>, and that factory has exited) is a leak; so is a mount under the store.
assert_clean() {
    local what=$1 rt id pid
    # The last shell out ends its environment in the background: give that a moment.
    for _ in $(seq 1 100); do
        [[ -z $(find "$TEST_DIR/store/envs" -mindepth 1 -maxdepth 1 -type d 2>/dev/null) ]] && break
        sleep 0.1
    done
    assert_eq "" "$(find "$TEST_DIR/store/envs" -mindepth 1 -maxdepth 1 -type d 2>/dev/null)" \
        "$what: no environment left"
    for rt in runc crun; do
        [[ -d /run/factory/$rt ]] && command -v "$rt" >/dev/null || continue
        for id in $("$rt" --root "/run/factory/$rt" list -q 2>/dev/null | grep '^factory-' || true); do
            if [[ $id == factory-env-* ]]; then # an environment of this store's, once
                [[ ! -e $TEST_DIR/store/envs/${id#factory-env-}.lock ]] ||
                    fail "$what: environment container $id left in $rt's state"
                continue
            fi
            pid=${id#factory-}
            pid=${pid%%-*}
            kill -0 "$pid" 2>/dev/null && continue
            # Another test's factory may have exited between the list and here, deleting its
            # container on the way out: a leak is a container still there a moment later.
            sleep 0.5
            if "$rt" --root "/run/factory/$rt" state "$id" >/dev/null 2>&1; then
                fail "$what: container $id left in $rt's state"
            fi
        done
    done
    assert_eq "" "$(grep -F "$TEST_DIR/store" /proc/self/mountinfo || true)" "$what: no mount left"
    assert_eq "" "$(ls -A "$TEST_DIR/store/tmp" 2>/dev/null | grep '^shell-' || true)" \
        "$what: no scratch directory left"
}

step "run: build the recipe, exit code and stdout pass through"
run_factory run "$recipe" -- sh -c 'exit 5'
assert_eq 5 "$RC" "factory run exits with the command's code"
expect_ok run "$recipe" -- sh -c 'echo to-stdout; echo to-stderr >&2'
assert_eq "to-stdout" "$OUT" "stdout passes through"
assert_contains "$ERR" "to-stderr" "stderr passes through"
assert_not_contains "$OUT" "to-stderr" "stderr stays on stderr"
# SIGTERM sent to factory reaches the command (the child of factory-init), which handles it.
"$FACTORY" run "$recipe" -- sh -c 'trap "exit 7" TERM; echo ready; sleep 30 & wait' >"$TEST_DIR/term.out" &
pid=$!
for _ in $(seq 1 100); do [[ -s $TEST_DIR/term.out ]] && break; sleep 0.1; done
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
assert_eq 7 "$rc" "SIGTERM is forwarded to the command"
# Ctrl-C (SIGINT to the whole process group): factory waits for the command's own exit code.
setsid bash -c '"$FACTORY" run "$1" -- sh -c '"'"'trap "exit 9" INT; echo ready; sleep 30 & wait'"'"'; echo "rc=$?"' \
    _ "$recipe" >"$TEST_DIR/int.out" 2>&1 &
for _ in $(seq 1 100); do grep -q ready "$TEST_DIR/int.out" 2>/dev/null && break; sleep 0.1; done
pgid=$(ps -o pgid= -p $! | tr -d ' ')
kill -INT -- "-$pgid"
wait $! || true
assert_contains "$(cat "$TEST_DIR/int.out")" "rc=9" "SIGINT reaches the command; its exit code is factory's"
assert_clean "after run"

step "run: stoppable by a CI timeout (SIGTERM), --stop-timeout"
# term_after ARGS...: starts `factory run ARGS` (whose command prints "ready" first), sends it
# SIGTERM once the command runs, and sets RC and SECS (seconds from the SIGTERM to the exit).
term_after() {
    : >"$TEST_DIR/stop.out"
    "$FACTORY" run "$@" >"$TEST_DIR/stop.out" 2>"$TEST_DIR/stop.err" &
    local p=$! t0
    for _ in $(seq 1 200); do grep -q ready "$TEST_DIR/stop.out" && break; sleep 0.05; done
    grep -q ready "$TEST_DIR/stop.out" || fail "the command did not start: $(cat "$TEST_DIR/stop.err")"
    t0=$(date +%s%N)
    kill -TERM "$p"
    RC=0
    wait "$p" || RC=$?
    SECS=$((($(date +%s%N) - t0) / 1000000000))
}
# No handler, as process 1 the kernel would drop SIGTERM: with factory-init it is the child.
term_after "$recipe" -- sh -c 'echo ready; exec sleep 8'
assert_eq 143 "$RC" "busybox sleep ends on SIGTERM: 128 + 15"
((SECS < 4)) || fail "sleep took ${SECS} s to end after SIGTERM"
# Ignores SIGTERM: killed --stop-timeout seconds later, exit 143, and factory says so.
term_after --stop-timeout 2 "$recipe" -- sh -c 'trap "" TERM; echo ready; sleep 8; echo not-killed'
assert_eq 143 "$RC" "a command ignoring SIGTERM: killed after --stop-timeout, exit 128 + 15"
((SECS >= 2 && SECS < 6)) || fail "killed ${SECS} s after SIGTERM, expected about 2 (--stop-timeout 2)"
assert_not_contains "$(cat "$TEST_DIR/stop.out")" "not-killed" "the command was killed"
assert_contains "$(cat "$TEST_DIR/stop.err")" \
    "factory: the command did not stop within 2s of SIGTERM: killed" "factory says why it killed"
expect_exit 2 run --stop-timeout -1 "$recipe" -- true
assert_clean "after stopping runs"

step "run: a store ref, --env, --workdir, --user, --mount, --network none"
expect_ok run example.com/team/devbox:latest -- true
mkdir -p "$TEST_DIR/m"
echo hi >"$TEST_DIR/m/f"
expect_ok run --env A=1 --workdir /tmp --user 1234:99 --mount "$TEST_DIR/m:/m:ro" \
    --network none example.com/team/devbox -- sh -c 'echo $A; pwd; id -u; id -g; cat /m/f; touch /m/x 2>/dev/null || echo ro; ls /sys/class/net | tr "\n" " "'
assert_eq $'1\n/tmp\n1234\n99\nhi\nro\nlo ' "$OUT" "run options"

step "shell: caller's uid, cwd carried over inside the project, file owned by the caller"
cd "$proj/src"
SUDO_UID=65534 SUDO_GID=65534 expect_ok shell "$recipe" -- sh -c 'id -u; pwd; touch $PWD/made-inside; echo $HOME; whoami; hostname'
assert_eq $'65534\n'"$proj/src"$'\n/home/nobody\nnobody\ndevbox' "$OUT" "uid, cwd, HOME, user, hostname"
assert_match "factory: shell in example.com/team/devbox:latest, environment devbox-[0-9a-f]{8} \(changes outside HOME, volumes and the project are discarded when its last shell exits\)" "$ERR" "entry message"
assert_eq "65534:65534" "$(stat -c %u:%g "$proj/src/made-inside")" "owner of a file made inside"
cd "$TEST_DIR"
expect_ok shell "$recipe" -- pwd
assert_eq "$proj" "$OUT" "outside the project: cwd is the project (the git top)"
expect_ok shell --root "$recipe" -- id -u
assert_eq 0 "$OUT" "--root"
mkdir -p "$TEST_DIR/other"
expect_ok shell --project "$TEST_DIR/other" "$recipe" -- pwd
assert_eq "$TEST_DIR/other" "$OUT" "--project"

step "shell: env allow-list"
SECRET_TOKEN=x TERM=xterm-test LC_ALL=C.UTF-8 EXTRA_OK=yes NOT_LISTED=no \
    expect_ok shell "$recipe" -- env
assert_not_contains "$OUT" "SECRET_TOKEN" "SECRET_TOKEN does not leak"
assert_not_contains "$OUT" "NOT_LISTED" "an unlisted variable does not leak"
assert_contains "$OUT" "TERM=xterm-test" "TERM passes"
assert_contains "$OUT" "LC_ALL=C.UTF-8" "LC_* passes"
assert_contains "$OUT" "EXTRA_OK=yes" "[shell] env_passthrough passes"
# What the display variables point at is mounted at the same path (outside the project here).
mkdir -p "$TEST_DIR/wl" "$TEST_DIR/x"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$TEST_DIR/wl/wayland-0"
echo cookie >"$TEST_DIR/x/auth"
XDG_RUNTIME_DIR=$TEST_DIR/wl WAYLAND_DISPLAY=wayland-0 DISPLAY=:5 XAUTHORITY=$TEST_DIR/x/auth \
    expect_ok shell "$recipe" -- sh -c 'test -S "$XDG_RUNTIME_DIR/$WAYLAND_DISPLAY" && echo wayland; cat "$XAUTHORITY"; echo "$DISPLAY"'
assert_eq $'wayland\ncookie\n:5' "$OUT" "the Wayland socket and the X cookie are there"

step "shell: a real pty"
# The runtime sizes the pty just after the command starts: hence the sleep.
out=$(script -qec "stty cols 100 rows 30; $FACTORY shell $recipe -- sh -c 'tty; sleep 0.5; stty size'" /dev/null </dev/null)
assert_match '/dev/pts/[0-9]+' "$out" "tty is a pty"
assert_contains "$out" "30 100" "the window size is carried over"

step "shell: ephemeral root, persistent HOME and volumes"
SUDO_UID=65534 SUDO_GID=65534 expect_ok shell --root "$recipe" -- sh -c 'echo x > /etc/made-here; echo v > /data/kept'
SUDO_UID=65534 SUDO_GID=65534 expect_ok shell "$recipe" -- sh -c 'echo h > $HOME/kept'
SUDO_UID=65534 SUDO_GID=65534 expect_ok shell "$recipe" -- sh -c 'ls /etc/made-here 2>&1; cat $HOME/kept /data/kept'
assert_contains "$OUT" "No such file" "/etc changes are discarded"
assert_contains "$OUT" $'h\nv' "HOME and volumes persist"
HOME=$TEST_DIR/home expect_ok shell --home host "$recipe" -- sh -c 'echo $HOME; touch $HOME/from-shell'
assert_eq "$TEST_DIR/home" "$OUT" "--home host"
assert_exists "$TEST_DIR/home/from-shell"
assert_clean "after shells"

step "environments: two shells join one container; ps; the last one out ends it"
cd "$proj/src"
"$FACTORY" shell "$recipe" -- sh -c 'echo first > /tmp/first; echo ready > '"$proj/src/ready"'; sleep 300' \
    >"$TEST_DIR/first.out" 2>"$TEST_DIR/first.err" &
first=$!
bg_pids+=("$first")
for _ in $(seq 1 150); do [[ -s $proj/src/ready ]] && break; sleep 0.1; done
assert_exists "$proj/src/ready"
expect_ok ps
assert_match $'^NAME +IMAGE +SHELLS +UP +PROJECT\ndevbox-[0-9a-f]{8} +example.com/team/devbox:latest +1 +[0-9]+s +'"$proj"'$' "$OUT" "ps lists the environment with one shell"
name=$(awk 'NR == 2 {print $1}' <<<"$OUT")
expect_ok shell "$recipe" -- sh -c 'cat /tmp/first; ps -o args | grep -c "[s]leep 300"; hostname'
assert_eq $'first\n1\ndevbox' "$OUT" "the second shell sees the first's /tmp and processes"
assert_eq "factory: joined the environment $name (example.com/team/devbox:latest)" "$ERR" "join message"
expect_ok ps --json
assert_eq 1 "$(jq -s length <<<"$OUT")" "one environment"
assert_eq "$proj" "$(jq -r '.project' <<<"$OUT")" "ps --json: project"
# A second, concurrent joiner while the first still runs.
"$FACTORY" shell "$recipe" -- sh -c 'sleep 1; echo second > /tmp/second' >/dev/null 2>&1 &
second=$!
bg_pids+=("$second")
for _ in $(seq 1 100); do
    [[ $("$FACTORY" ps --cache "$TEST_DIR/store" --json | jq -r .shells) == 2 ]] && break
    sleep 0.1
done
assert_eq 2 "$("$FACTORY" ps --cache "$TEST_DIR/store" --json | jq -r .shells)" "two shells in it"
wait "$second"
expect_ok shell "$recipe" -- cat /tmp/second
assert_eq second "$OUT" "what a shell that has left wrote stays while the environment runs"

step "environments: --stop ends it and its shells; a killed shell doesn't keep one alive"
expect_ok shell --stop "$name"
assert_eq "factory: stopped $name (1 shell)" "$ERR" "stop message"
rc=0
wait "$first" || rc=$?
assert_eq 137 "$rc" "the stopped shell's factory exits 137"
assert_contains "$(cat "$TEST_DIR/first.err")" "factory: the environment $name was stopped" "it says why"
expect_ok ps
assert_eq 1 "$(wc -l <<<"$OUT")" "ps: header only"
expect_exit 1 shell --stop "$name"
assert_eq "factory: error: no running environment matches '$name' (factory ps lists them)" "$(error_line)"
# SIGKILL a shell's factory: the container stays until someone looks; ps ends it.
"$FACTORY" shell "$recipe" -- sleep 300 >/dev/null 2>&1 &
killed=$!
bg_pids+=("$killed")
for _ in $(seq 1 150); do
    [[ $("$FACTORY" ps --cache "$TEST_DIR/store" --json | jq -r .shells) == 1 ]] && break
    sleep 0.1
done
kill -KILL "$killed"
wait "$killed" || true
expect_ok ps
assert_eq 1 "$(wc -l <<<"$OUT")" "ps ends an environment whose shells are all gone"
expect_ok shell "$recipe" -- sh -c 'ls /tmp/first 2>&1 || true'
assert_contains "$OUT" "No such file" "a new environment starts from the image"
cd "$TEST_DIR"
rm -f "$proj/src/ready"
assert_clean "after environments"

step "ps --json: digest is the manifest's whether a recipe or an image name was entered"
want=$("$FACTORY" images --cache "$TEST_DIR/store" --json | jq -r 'select(.name == "example.com/team/devbox:latest") | .digest')
assert_match '^sha256:[0-9a-f]{64}$' "$want" "the image's manifest digest"
for target in example.com/team/devbox:latest "$recipe"; do
    rm -f "$TEST_DIR/ready"
    "$FACTORY" shell --project "$TEST_DIR" "$target" -- sh -c "echo > $TEST_DIR/ready; sleep 300" >/dev/null 2>&1 &
    bg=$!
    bg_pids+=("$bg")
    for _ in $(seq 1 150); do [[ -e $TEST_DIR/ready ]] && break; sleep 0.1; done
    expect_ok ps --json
    assert_eq "$want" "$(jq -r .digest <<<"$OUT")" "ps --json digest ($target)"
    assert_eq example.com/team/devbox:latest "$(jq -r .image <<<"$OUT")" "ps --json image ($target)"
    expect_ok shell --stop "$(jq -r .name <<<"$OUT")"
    wait "$bg" || true
done
assert_clean "after ps --json"

step "stdin: a shell without a terminal reads ours; run reads it with -i"
assert_eq "piped" "$(echo piped | "$FACTORY" shell --cache "$TEST_DIR/store" "$recipe" -- cat 2>/dev/null)" "shell: stdin"
assert_eq "piped" "$(echo piped | "$FACTORY" run --cache "$TEST_DIR/store" -i "$recipe" -- cat)" "run -i: stdin"
assert_eq "" "$(echo piped | "$FACTORY" run --cache "$TEST_DIR/store" "$recipe" -- cat)" "run: /dev/null"

step "cache prune: snapshots of no ref and no running environment go, the others stay"
mkdir -p "$TEST_DIR/snap"
cp "$bb/busybox" "$TEST_DIR/snap/busybox"
echo v1 >"$TEST_DIR/snap/f"
write "$TEST_DIR/snap/snap.toml" <<'TOML'
[image]
name = "snap"
[base]
image = "scratch"
[[step]]
copy = [{ src = "busybox", dest = "/bin/busybox", mode = "0755" }, { src = "f", dest = "/f" }]
[[step]]
run = ["/bin/busybox", "sh", "-c", "/bin/busybox cat /f > /g"]
[config]
entrypoint = ["/bin/busybox"]
TOML
snaps() { find "$TEST_DIR/store/snapshots" -mindepth 1 -maxdepth 1 -name '[0-9a-f]*' | sort; }
before=$(snaps)
expect_ok run "$TEST_DIR/snap/snap.toml" -- /bin/busybox cat /g
assert_eq v1 "$OUT" "v1 runs"
old=$(comm -13 <(echo "$before") <(snaps))
assert_eq 2 "$(grep -c . <<<"$old")" "v1's two layers are unpacked"
# A v1 shell that reads its layers once told to (after the prune).
"$FACTORY" shell --project "$TEST_DIR/snap" "$TEST_DIR/snap/snap.toml" -- /bin/busybox sh -c \
    "while [ ! -e $TEST_DIR/snap/go ]; do /bin/busybox sleep 0.1; done; /bin/busybox cat /g /f > $TEST_DIR/snap/out" \
    >/dev/null 2>&1 &
holder=$!
bg_pids+=("$holder")
for _ in $(seq 1 150); do
    [[ $("$FACTORY" ps --json | jq -r .shells) == 1 ]] && break
    sleep 0.1
done
echo v2 >"$TEST_DIR/snap/f"
expect_ok run "$TEST_DIR/snap/snap.toml" -- /bin/busybox cat /g
assert_eq v2 "$OUT" "v2 runs (the ref moved)"
expect_ok cache prune
for s in $old; do assert_exists "$s"; done
assert_eq "" "$(comm -23 <(echo "$before") <(snaps))" "nothing else was removed"
touch "$TEST_DIR/snap/go"
wait "$holder"
assert_eq $'v1\nv1' "$(cat "$TEST_DIR/snap/out")" "the running v1 environment still reads its layers"
for _ in $(seq 1 100); do [[ -z $(ls "$TEST_DIR/store/envs"/*/env.json 2>/dev/null) ]] && break; sleep 0.1; done
expect_ok cache prune --dry-run
assert_eq 2 "$(grep -c '^would remove snapshot' <<<"$OUT")" "v1's snapshots: removable now"
expect_ok cache prune
for s in $old; do assert_missing "$s"; done
assert_contains "$OUT" "2 snapshots" "the summary counts them"
expect_ok run "$TEST_DIR/snap/snap.toml" -- /bin/busybox cat /g
assert_eq v2 "$OUT" "v2 still runs"
assert_clean "after prune"

step "run, shell: --arg for a recipe, --runtime"
write "$TEST_DIR/snap/args.toml" <<'TOML'
[image]
name = "args-${WORD}"
[args]
WORD = "one"
[base]
image = "scratch"
[[step]]
copy = [{ src = "busybox", dest = "/bin/busybox", mode = "0755" }]
[config]
env = { WORD = "${WORD}" }
TOML
expect_ok run "$TEST_DIR/snap/args.toml" -- /bin/busybox sh -c 'echo $WORD'
assert_eq one "$OUT" "the default"
expect_ok run --arg WORD=two "$TEST_DIR/snap/args.toml" -- /bin/busybox sh -c 'echo $WORD'
assert_eq two "$OUT" "run --arg"
expect_ok shell --arg WORD=three --project "$TEST_DIR/snap" "$TEST_DIR/snap/args.toml" -- /bin/busybox sh -c 'echo $WORD; /bin/busybox hostname'
assert_eq $'three\nargs-three' "$OUT" "shell --arg: its image (and hostname)"
expect_exit 2 run --arg WORD=x args-one -- true
assert_eq "factory: error: --arg WORD: only a recipe takes --arg, not the image args-one" "$(error_line)"
expect_exit 2 run --arg NOPE=x "$TEST_DIR/snap/args.toml" -- true
assert_contains "$(error_line)" "--arg NOPE: the recipe declares no arg NOPE (declared: WORD)"
for rt in runc crun; do
    expect_ok run --runtime "$rt" args-one -- /bin/busybox sh -c 'echo $WORD'
    assert_eq one "$OUT" "run --runtime $rt"
done
expect_exit 2 run --runtime nosuch args-one -- true
assert_contains "$(error_line)" "--runtime nosuch: unknown runtime" "an unknown runtime"
assert_clean "after --arg and --runtime"

step "bad input: exit 2, exact messages, nothing left behind"
expect_exit 2 run no-such-image -- true
assert_eq "factory: error: no image 'no-such-image' in the store $TEST_DIR/store" "$(error_line)"
expect_exit 2 shell no-such-image -- true
assert_eq "factory: error: no image 'no-such-image' in the store $TEST_DIR/store" "$(error_line)"
expect_exit 2 shell --project "$TEST_DIR/nope" "$recipe" -- true
assert_eq "factory: error: --project $TEST_DIR/nope: no such directory" "$(error_line)"
write "$TEST_DIR/broken.toml" <<'TOML'
[image]
name = "broken"
[base]
image = "scratch"
[[step]]
frobnicate = 1
TOML
expect_exit 2 shell "$TEST_DIR/broken.toml" -- true
assert_match "^factory: error: .*broken\.toml:[0-9]+:[0-9]+: " "$(error_line)" "recipe error"
sed 's|data = "/data"|"../up" = "/data"|' "$recipe" >"$proj/env/badvol.toml"
expect_exit 2 shell "$proj/env/badvol.toml" -- true
assert_contains "$(error_line)" "../up" "the bad volume name is named"
expect_exit 2 run --mount "/nonexistent-src:/x" "$recipe" -- true
expect_exit 2 run --network bridge "$recipe" -- true
expect_exit 127 run "$recipe" -- no-such-command
assert_contains "$(error_line)" "no-such-command" "the missing command is named"
expect_exit 127 shell "$recipe" -- no-such-command
expect_exit 126 run --mount "$TEST_DIR/m/f:/not-executable" "$recipe" -- /not-executable
expect_exit 127 unshare -- /nonexistent
assert_eq "factory: error: cannot run /nonexistent: No such file or directory" "$(error_line)" \
    "unshare: a missing command is 127, as in shells"
expect_exit 2 run --cache "$TEST_DIR/no-store" no-such-image -- true
assert_missing "$TEST_DIR/no-store"
# run and shell name the recipe as given, as build and why do (the cwd is $TEST_DIR).
for cmd in run shell build why; do
    args=(broken.toml)
    [[ $cmd == run || $cmd == shell ]] && args+=(-- true)
    expect_exit 2 "$cmd" "${args[@]}"
    assert_match "^factory: error: broken\.toml:[0-9]+:[0-9]+: " "$(error_line)" "$cmd names the recipe as given"
done
assert_clean "after errors"
assert_missing "$TEST_DIR/store/up"
