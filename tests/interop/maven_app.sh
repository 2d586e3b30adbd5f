# recipes/maven-app.toml: Maven's deps step fills the local repository from a mirror on
# 127.0.0.1 (the Maven-layout repository Debian's packages install in /usr/share/maven-repo,
# standing in for Central or a team's Nexus), the package step builds offline, and the jar runs
# on the runtime stage. The deps step is not re-run when only the source changes, is when
# pom.xml does, a source change still builds once the mirror is gone, and `build --check`
# reproduces every step (a second bootstrap and fetch, in a scratch store).
source "$(dirname "$0")/../lib.sh"
need mmdebstrap jq curl
need_root
repo=/usr/share/maven-repo
for plugin in maven-compiler-plugin/3.10.1 maven-resources-plugin/3.3.0 maven-jar-plugin/3.3.0 \
    maven-surefire-plugin/2.22.3 maven-dependency-plugin/3.5.0; do
    [[ -d $repo/org/apache/maven/plugins/$plugin ]] && continue
    [[ ${CI:-} == true ]] && fail "$repo lacks $plugin (run scripts/setup.sh)"
    skip "$repo lacks $plugin (the libmaven-*-plugin-java packages of scripts/setup.sh)"
done

cp -a "$FACTORY_SOURCE_DIR/recipes/maven-app.toml" "$FACTORY_SOURCE_DIR/recipes/maven-app" "$TEST_DIR/"
app=$TEST_DIR/maven-app
start_http_server "$repo" 1200
mirror=http://127.0.0.1:$HTTP_PORT
args=(--arg "MAVEN_MIRROR=$mirror/" "$TEST_DIR/maven-app.toml")
lang3=/org/apache/commons/commons-lang3/3.12.0/commons-lang3-3.12.0.jar
fetched() { curl -fsS "$mirror/count$lang3"; }

# rebuilt: builds; the steps it ran (not reused), as "build 2 build 3 main 1".
rebuilt() {
    expect_ok build --progress plain "${args[@]}"
    { grep -E '^\[(build|main) [0-9]+/[0-9]+\] done ' "$TEST_DIR/last.stderr" || true; } |
        sed -E 's/^\[([a-z]+) ([0-9]+)\/.*/\1 \2/' | tr '\n' ' ' | sed 's/ $//'
}

step "the deps step fetches from the mirror; the jar runs on the runtime"
assert_eq "build 1 build 2 build 3 build 4 main 1" "$(rebuilt)" "first build"
assert_eq 1 "$(fetched)" "commons-lang3 fetched from the mirror"
expect_ok run maven-app:latest
assert_eq "maven-app: Hello ***" "$OUT" "the app's output"
expect_ok run maven-app:latest -- sh -c 'ls /app; ls /app/lib; command -v mvn javac || echo "no mvn, no javac"'
assert_eq "lib maven-app.jar commons-lang3-3.12.0.jar no mvn, no javac" "$(tr '\n' ' ' <<<"$OUT" | sed 's/ $//')" \
    "the image: the jar and its dependency, no build tools"

step "a source change rebuilds the package step, not the deps step"
sed -i 's/StringUtils.repeat(.\*., 3)/StringUtils.repeat("+", 2)/' "$app/src/main/java/app/Main.java"
assert_eq "build 3 build 4 main 1" "$(rebuilt)" "after Main.java changed"
assert_eq 1 "$(fetched)" "nothing fetched again"
expect_ok run maven-app:latest
assert_eq "maven-app: Hello ++" "$OUT" "the changed app"

step "a pom.xml change re-runs the deps step"
sed -i 's|<version>1.0</version>|<version>1.1</version>|' "$app/pom.xml"
assert_eq "build 2 build 3 build 4 main 1" "$(rebuilt)" "after pom.xml changed"
assert_eq 2 "$(fetched)" "commons-lang3 fetched again"

step "build --check: every step rebuilt in a scratch store, the bootstrap and Maven's fetch included, reproduces"
expect_ok build --check "${args[@]}"
assert_match '^maven-app:latest sha256:[0-9a-f]{64}: [0-9]+ steps reproduced$' "$(last_line)" "the check's verdict"
assert_eq 3 "$(fetched)" "the scratch store's deps step fetched from the mirror again"

step "the mirror gone: a source change still builds (the package step runs offline)"
kill "$HTTP_PID"
wait "$HTTP_PID" 2>/dev/null || true
curl -fsS -m 5 "$mirror/" >/dev/null 2>&1 && fail "the mirror still answers"
sed -i 's/capitalize("hello")/capitalize("bye")/' "$app/src/main/java/app/Main.java"
assert_eq "build 3 build 4 main 1" "$(rebuilt)" "after Main.java changed, offline"
expect_ok run maven-app:latest
assert_eq "maven-app: Bye ++" "$OUT" "the app built offline"
echo "PASS: $TEST_NAME"
