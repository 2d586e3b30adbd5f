# `factory run` and `factory shell` (docs/shell.md): exit codes and output pass through, the
# caller's uid inside, the project mounted at its own path, the env allow-list, a real pty,
# ephemeral root vs persistent HOME and volumes, and bad input (exit 2, nothing left behind).
source "$(dirname "$0")/../lib.sh"
need_root
need git script

bb=$(busybox_context)

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
    for rt in runc crun; do
        [[ -d /run/factory/$rt ]] && command -v "$rt" >/dev/null || continue
        for id in $("$rt" --root "/run/factory/$rt" list -q 2>/dev/null | grep -E '^factory-[0-9]+-' || true); do
            pid=${id#factory-}
            pid=${pid%%-*}
            kill -0 "$pid" 2>/dev/null || fail "$what: container $id left in $rt's state"
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
# SIGTERM sent to factory reaches the command (PID 1 in the container: it needs a handler).
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
assert_contains "$ERR" "factory: shell in example.com/team/devbox:latest (changes outside HOME, volumes and the project are discarded on exit)" "entry message"
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
assert_clean "after errors"
assert_missing "$TEST_DIR/store/up"
