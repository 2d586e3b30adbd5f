#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run calls exactly this), from a fresh Debian 12 as root:
#
#   1. scripts/setup.sh                      packages (idempotent)
#   2. build/       g++, RelWithDebInfo      the binary; ctest: integration, interop, and the
#                                            Debian bootstrap's unit tests (DebianBootstrap.*)
#   3. build-san/   clang-16, ASan + UBSan   ctest -L unit: every other unit test; built beside
#                   + libFuzzer coverage     stage 2, at nice 19
#   4. build-san/   (the same build)         each tests/fuzz/*_fuzzer for FUZZ_SECONDS (30) s,
#                                            JOBS at a time, beside stage 3's ctest
#
# The unit tests are compiled and run once, under the sanitizers: compiling them a second time
# at -O2 in build/ cost CI ~700 CPU-seconds (a sixth of the suite's compiling) and found nothing
# the ASan run doesn't. `ninja -C build && ctest --test-dir build -L unit` still runs them at -O2.
# The unit tests and the fuzz targets share one instrumented build of the libraries (they were
# two, g++ for the tests and clang for the fuzzers, each compiling util … registry). The code
# under test compiles at -O1; the test programs' own code at -O0 (tests/CMakeLists.txt), where
# UBSan's checks don't make the optimizer work on gtest's macros: one test file took 18 CPU-s
# with g++ -O1, 12 with clang -O1, 4 with clang -O0, all with ASan + UBSan.
#
# Every stage runs even when an earlier one failed (so one run shows every problem); the exit
# code is non-zero when any failed. The last line is "summary: N passed, N failed, N skipped"
# over all tests run. Budget: 40 minutes on CI's 2 cores, fresh machine (the apt installs and three
# cold builds included).
#
# Environment: FUZZ_SECONDS (default 30), JOBS (default nproc), SKIP_SAN=1 (neither stage 3
# nor 4), SKIP_FUZZ=1 (stage 3 without 4), CTEST_ARGS (extra arguments for the main ctest run, e.g. "-R integration").
#
# Why clang-16 and a macro for the sanitizer build: libFuzzer needs clang, and the code uses
# std::expected. libstdc++ 12 (the only C++ library here) hides <expected> unless
# __cpp_concepts >= 202002L. Clang 14 (Debian's default) can't compile it even when forced;
# clang 16 implements what <expected> needs (P0848, conditionally trivial special members) but
# still reports 201907L, so the sanitizer build tells it the value. The main build uses g++.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
top=$PWD
jobs=${JOBS:-$(nproc)}
fuzz_seconds=${FUZZ_SECONDS:-30}
start=$SECONDS
passed=0
failed=0
skipped=0
failures=()

say() { printf '\n=== %s (%ds)\n' "$*" $((SECONDS - start)); }
stage_failed() {
    failures+=("$1")
    echo "test.sh: FAILED: $1" >&2
}

# Adds a ctest run's counts (from its JUnit file) to the totals.
count_junit() {
    local file=$1 counts
    if [[ ! -f $file ]]; then
        return 1
    fi
    counts=$(python3 - "$file" <<'EOF'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
p = f = s = 0
for suite in suites:
    for case in suite.iter("testcase"):
        status = case.get("status", "")
        if case.find("failure") is not None or case.find("error") is not None or status == "fail":
            f += 1
        elif case.find("skipped") is not None or status in ("notrun", "disabled"):
            s += 1
        else:
            p += 1
print(p, f, s)
EOF
    ) || return 1
    read -r p f s <<<"$counts"
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
}

# ctest_in DIR NAME ARGS...: runs ctest, prints its summary, adds its counts.
ctest_in() {
    local dir=$1 name=$2
    shift 2
    local junit="$top/$dir/ctest-junit.xml"
    rm -f "$junit"
    local rc=0
    (cd "$dir" && ctest --output-on-failure --no-tests=error -j "$jobs" \
        --output-junit "$junit" "$@") || rc=$?
    if ! count_junit "$junit"; then
        failed=$((failed + 1))
    fi
    ((rc == 0)) || stage_failed "$name"
}

# ---- 1. packages --------------------------------------------------------------------------
say "setup"
if ! bash scripts/setup.sh; then
    echo "test.sh: setup failed; nothing else can run" >&2
    echo "summary: 0 passed, 1 failed"
    exit 1
fi

# ---- 2. main build and its ctest run ------------------------------------------------------
# The sanitizer build (stages 3 and 4) starts first, at nice 19, and compiles beside the main
# build and the main ctest run: the tests that bootstrap Debian wait on the mirror and the disk
# for minutes, and the compiler takes the CPU they leave, while the main build and any test that
# wants a core get it first.
# -O1: sanitizer builds compile faster and still catch what they catch at -O2. -g1: the line
# tables a sanitizer's report needs, without the full debug info's compile and link time.
# unit_tests: the test programs only, not the CLI and the binary; and the fuzz targets.
san_flags="-Wno-builtin-macro-redefined -U__cpp_concepts -D__cpp_concepts=202002L"
fuzzers=()
if [[ -z ${SKIP_FUZZ:-} ]]; then
    mapfile -t fuzzers < <(find tests/fuzz -maxdepth 1 -name '*_fuzzer.cpp' -printf '%f\n' |
        sed 's/\.cpp$//' | sort)
fi
san_pid=
if [[ -z ${SKIP_SAN:-} ]]; then
    say "build (clang-16, ASan+UBSan, libFuzzer) in build-san/ starts, at nice 19 (log: build-san/build.log)"
    mkdir -p build-san
    (cmake -S . -B build-san -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-g1 -O1" \
        -DFACTORY_SANITIZE=ON -DFACTORY_FUZZ=ON \
        -DCMAKE_C_COMPILER=clang-16 -DCMAKE_CXX_COMPILER=clang++-16 \
        -DCMAKE_CXX_FLAGS="$san_flags" >/dev/null &&
        nice -n 19 ninja -C build-san -j "$jobs" unit_tests "${fuzzers[@]}") \
        >build-san/build.log 2>&1 &
    san_pid=$!
fi

say "build (g++, RelWithDebInfo) in build/"
# -g1: line tables (backtraces, perf) without full debug info, which costs a fifth more compile
# time and four times the object size; configure another directory with -g to debug.
# The binary, the init program, and the one unit test program the main ctest run runs.
main_built=0
if cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" >/dev/null &&
    ninja -C build -j "$jobs" factory factory-init sources_debian_test; then
    main_built=1
else
    stage_failed "build"
    failed=$((failed + 1))
fi

if ((main_built)); then
    say "ctest in build/ (integration, interop, the Debian bootstrap's unit tests)"
    # shellcheck disable=SC2086 # CTEST_ARGS is a list on purpose
    ctest_in build "ctest" -R '^(integration|interop)\.|^DebianBootstrap\.' ${CTEST_ARGS:-}
fi

# ---- 3. and 4. ASan + UBSan unit tests, and the fuzzers beside them ---------------------------
# run_fuzzer NAME: one libFuzzer target for FUZZ_SECONDS; its exit code goes to
# build-san/NAME.rc, its output to build-san/NAME.log.
run_fuzzer() {
    local f=$1 short=${1%_fuzzer} c
    local work="$top/build-san/corpus-work/$short" artifacts="$top/build-san/artifacts/$short/"
    local seeds=()
    mkdir -p "$work" "$artifacts"
    for c in "$top/tests/fuzz/corpus/$short" "$top/tests/fuzz/corpus/$f"; do
        [[ -d $c ]] && seeds+=("$c")
    done
    # New inputs go to the work dir (the first), never into the source tree.
    "build-san/tests/fuzz/$f" -max_total_time="$fuzz_seconds" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts" \
        "$work" "${seeds[@]}" >"build-san/$f.log" 2>&1
    echo $? >"build-san/$f.rc"
}

# run_fuzzers: every fuzz target, $jobs at a time, each on one core for FUZZ_SECONDS.
run_fuzzers() {
    local running=0 f
    for f in "${fuzzers[@]}"; do
        if [[ ! -x build-san/tests/fuzz/$f ]]; then
            echo "test.sh: build-san/tests/fuzz/$f was not built" >&2
            echo 1 >"build-san/$f.rc"
            continue
        fi
        if ((running >= jobs)); then
            wait -n
            running=$((running - 1))
        fi
        say "fuzz $f for ${fuzz_seconds}s"
        run_fuzzer "$f" &
        running=$((running + 1))
    done
    wait
}

# The fuzzers run while the unit tests do: those leave most of a core idle (sleeps, timeouts,
# processes they wait on), and the fuzzers are bound by time, not by work.
fuzz_pid=
if [[ -n $san_pid ]]; then
    say "build (clang-16, ASan+UBSan, libFuzzer) in build-san/: waiting for it"
    if wait "$san_pid"; then
        tail -n 1 build-san/build.log
        if [[ -z ${SKIP_FUZZ:-} ]]; then
            if ((${#fuzzers[@]} == 0)); then
                say "fuzz: no tests/fuzz/*_fuzzer.cpp yet"
            fi
            run_fuzzers &
            fuzz_pid=$!
        fi
        say "ctest -L unit in build-san/"
        # The Debian bootstrap (a minute of mmdebstrap through the mirror) already ran in the
        # main run; under the sanitizers it would test the mirror, not our code.
        ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1} \
            UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
            ctest_in build-san "ctest -L unit (ASan+UBSan)" -L unit -E '^DebianBootstrap\.'
    else
        tail -n 60 build-san/build.log
        stage_failed "build-san"
        failed=$((failed + 1))
    fi
fi

if [[ -n $fuzz_pid ]]; then
    say "fuzz: waiting for the fuzzers"
    wait "$fuzz_pid"
    for f in "${fuzzers[@]}"; do
        if [[ $(cat "build-san/$f.rc" 2>/dev/null) == 0 ]]; then
            echo "$f:"
            grep -E '^Done |stat::number_of_executed_units|stat::new_units_added' \
                "build-san/$f.log" || true
            passed=$((passed + 1))
        else
            [[ -f build-san/$f.log ]] && tail -n 60 "build-san/$f.log"
            echo "test.sh: crash input(s) in build-san/artifacts/${f%_fuzzer}/;" \
                "full log build-san/$f.log" >&2
            failed=$((failed + 1))
            stage_failed "fuzz $f"
        fi
    done
fi

# ---- summary -------------------------------------------------------------------------------
say "done"
if ((${#failures[@]} > 0)); then
    printf 'test.sh: failed stage: %s\n' "${failures[@]}"
fi
echo "summary: $passed passed, $failed failed, $skipped skipped"
((${#failures[@]} == 0 && failed == 0))
