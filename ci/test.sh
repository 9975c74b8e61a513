#!/usr/bin/env bash
# Functions below are called indirectly (run_step, trap):
# shellcheck disable=SC2317
# The project's test command: runs every check CI runs, in order, and stops at
# the first failure.
#
#   1. rustfmt            cargo fmt --all --check (the crate, ci/nostd-check, bench/)
#   2. clippy             cargo clippy --all-targets --all-features -- -D warnings
#                         the same for bench/ (the benchmark against the peers)
#                         cargo doc --no-deps --all-features (RUSTDOCFLAGS=-D warnings)
#   3. tests              cargo test --release --all-features   (+ doctests)
#                         cargo test --release --no-default-features --lib --test api --test ordered
#                         cargo test --release --no-default-features --features <f> (same targets)
#                           (release builds keep debug assertions and overflow checks)
#                           for each backend feature in BACKEND_FEATURES that
#                           exists in Cargo.toml's [features]
#                           (single-feature runs use PER_FEATURE_PROPTEST_CASES)
#   4. loom               --cfg masstree_loom, release, unit tests named *loom*
#   5. miri               nightly miri: core unit tests, and chosen integration
#                         tests on the pool and arena backends (time-boxed)
#   6. no_std             core + ci/nostd-check built for a bare-metal target,
#                         with no feature and with each of NOSTD_FEATURES;
#                         then ci/nostd-check built for the host, linked into a
#                         C program and run (trees on each no_std backend)
#   7. embedded           ci/embedded.sh: core+pool+arena for thumbv7em, thumbv7m,
#                         riscv32imac (debug, release) and aarch64-unknown-none
#                         (release); ci/firmware run on qemu-system-arm
#                         (mps2-an386, installed with apt-get if missing); the
#                         narrow-word (--cfg masstree_narrow) unit tests, loom, Miri
#   8. sanitizers         nightly, host target: AddressSanitizer (leak detection
#                         on) over the api, leak, panic, model and stress tests
#                         on the seize, pool and arena backends; ThreadSanitizer
#                         (std rebuilt with -Zbuild-std, needs rust-src) over
#                         the stress tests on pool and arena (not seize: see
#                         step_sanitizers)
#   9. msrv               the toolchain of Cargo.toml's rust-version (rustup):
#                         cargo check --lib --no-default-features, then
#                         cargo test --release --all-features --lib --tests --examples,
#                         on a copy of the sources without Cargo.lock (dependencies
#                         resolved afresh, as in a clean clone; doctests not run)
#
# Usage: ci/test.sh [STEP...]   (from anywhere; it cd's to the repo root)
#   STEP is one of: fmt clippy test loom miri nostd embedded sanitizers msrv
#   (default: all, in order).
#   Selecting steps is for local use; CI runs them all.
#
# Environment knobs (all optional):
#   MIRI_TIMEOUT   seconds for `cargo miri test` (default 600)
#   MIRI_JOBS      concurrent Miri processes, one test each at a time
#                  (default: number of cores)
#   LOOM_TIMEOUT   seconds for the loom run (default 900)
#   MIRIFLAGS      passed through to Miri unchanged (default: Miri's strict defaults)
#   CI_SKIP_MIRI=1 skip Miri (prints a loud banner; for quick local runs only)
#   SANITIZER_TIMEOUT  seconds for each sanitizer run (default 900)
#   CI_SKIP_SANITIZERS=1 skip the sanitizers (loud banner; local runs only)
#   CI_SKIP_MSRV=1 skip the MSRV build (loud banner; local runs only)
set -euo pipefail

# Backend features (and `huge-pages`, the slab allocator that goes under
# them), each tested on its own on top of the core
# (`--no-default-features --features <f>`). A name that is not (yet) in
# Cargo.toml's [features] is reported and skipped, so adding the feature to
# Cargo.toml is enough for it to be tested.
BACKEND_FEATURES="seize pool arena huge-pages"

# Backend features that must build without `std`: the no_std step builds the
# core and ci/nostd-check for the bare-metal target once with no feature and
# once with each of these (again only those declared in Cargo.toml).
NOSTD_FEATURES="pool arena huge-pages"

# Proptest cases for the single-feature test runs (`--no-default-features
# [--features f]`). The `--all-features` run keeps the tests' own counts and
# already runs every backend's tests; the single-feature runs mainly prove
# that each feature set builds and works on its own, and they must fit the CI
# time budget. An explicit PROPTEST_CASES in the environment wins.
PER_FEATURE_PROPTEST_CASES=32

# Bare-metal targets without `std` for the no_std check, first one that
# rustup can provide wins (64-bit targets; 32-bit ones without 64-bit atomics
# build too, with the narrow words of src/sync.rs, but are not checked here yet).
NOSTD_TARGETS="aarch64-unknown-none x86_64-unknown-none"

MIRI_TIMEOUT="${MIRI_TIMEOUT:-600}"
SANITIZER_TIMEOUT="${SANITIZER_TIMEOUT:-900}"
LOOM_TIMEOUT="${LOOM_TIMEOUT:-900}"
MIRI_JOBS="${MIRI_JOBS:-$(nproc 2>/dev/null || echo 1)}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Main build cache; loom, miri, the sanitizers, the MSRV toolchain and the
# no_std check and bench crates get their own sub-directories so their flags
# (and their dependency graphs) don't invalidate it.
MAIN_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

SCRIPT_NAME=ci/test.sh
# shellcheck source=ci/steps.sh
source "$ROOT/ci/steps.sh"

# Features declared in a manifest's [features] table, one per line.
declared_features() { # declared_features [MANIFEST]  (default: Cargo.toml)
    awk '
        /^[[:space:]]*\[/ { in_features = ($0 ~ /^[[:space:]]*\[features\][[:space:]]*(#.*)?$/); next }
        in_features && /^[[:space:]]*[A-Za-z0-9_-]+[[:space:]]*=/ {
            name = $0
            sub(/^[[:space:]]*/, "", name)
            sub(/[[:space:]]*=.*/, "", name)
            print name
        }
    ' "${1:-Cargo.toml}"
}

# (Output is captured before grepping: `cmd | grep -q` under pipefail can
# report a spurious failure when grep exits early and cmd gets SIGPIPE.)
is_declared() { # is_declared FEATURE [LIST]  (default list: $DECLARED)
    grep -qx -- "$1" <<<"$(tr ' ' '\n' <<<"${2-$DECLARED}")"
}

has_component() { # has_component TOOLCHAIN COMPONENT-PREFIX
    local list
    list="$(rustup component list --installed --toolchain "$1" 2>/dev/null)" || return 1
    grep -q "^$2" <<<"$list"
}

has_toolchain() { # has_toolchain NAME-PREFIX
    local list
    list="$(rustup toolchain list 2>/dev/null)" || return 1
    grep -q "^$1" <<<"$list"
}

has_target() { # has_target TRIPLE (for the default toolchain)
    local list
    list="$(rustup target list --installed 2>/dev/null)" || return 1
    grep -qx -- "$1" <<<"$list"
}

# ---------------------------------------------------------------------------
# 0. toolchain
# ---------------------------------------------------------------------------

toolchain() {
    header "toolchain"
    echo "CI=${CI:-} nproc=$(nproc 2>/dev/null || echo ?)"
    rustc --version
    cargo --version
    if ! cargo fmt --version >/dev/null 2>&1; then
        echo "+ rustup component add rustfmt"
        rustup component add rustfmt
    fi
    if ! cargo clippy --version >/dev/null 2>&1; then
        echo "+ rustup component add clippy"
        rustup component add clippy
    fi
    cargo fmt --version
    cargo clippy --version
}

# ---------------------------------------------------------------------------
# 1. rustfmt
# ---------------------------------------------------------------------------

# NB: functions run by run_step execute with `set -e` suspended (they are
# called as `fn || ...`), so multi-command steps chain with `&&`.
fmt_all() {
    # Plain diffs in logs; colours on a terminal.
    local color=never
    [ -t 1 ] && color=auto
    echo "+ cargo fmt --all --check" &&
        cargo fmt --all --check -- --color "$color" &&
        echo "+ cargo fmt --manifest-path ci/nostd-check/Cargo.toml --check" &&
        cargo fmt --manifest-path ci/nostd-check/Cargo.toml --check -- --color "$color" &&
        echo "+ cargo fmt --manifest-path $BENCH --check" &&
        cargo fmt --manifest-path "$BENCH" --check -- --color "$color"
}
step_fmt() {
    run_step "rustfmt" fmt_all
}

# ---------------------------------------------------------------------------
# 2. clippy
# ---------------------------------------------------------------------------

# The benchmark against the peers: a crate of its own (their dependencies
# need a newer Rust than our MSRV), still our code. Its own target directory:
# its dependency graph (masstree with the bench's features) would otherwise
# rebuild the main cache's masstree.
BENCH=bench/Cargo.toml

step_clippy() {
    run_step "clippy" cargo clippy --all-targets --all-features -- -D warnings
    run_step "clippy: $BENCH" \
        env CARGO_TARGET_DIR="$MAIN_TARGET_DIR/bench" \
        cargo clippy --manifest-path "$BENCH" --all-targets -- -D warnings
    # The docs, as docs.rs builds them (all features), without a warning
    # (broken or private intra-doc links included).
    run_step "rustdoc (all features, warnings are errors)" \
        env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features
}

# ---------------------------------------------------------------------------
# 3. tests, per feature set
# ---------------------------------------------------------------------------

step_test() {
    local single_cases="${PROPTEST_CASES:-$PER_FEATURE_PROPTEST_CASES}"
    echo
    echo "features declared in Cargo.toml:  ${DECLARED:-<none>}"
    echo "backend features to test alone:   $BACKEND_FEATURES"
    echo "proptest cases, --all-features:   ${PROPTEST_CASES:-(per-test default)}"
    echo "proptest cases, single features:  $single_cases"

    # Optimized, with debug assertions and overflow checks still on: the
    # property and stress tests run ~15x faster than in a debug build.
    export CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true
    export CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true
    run_step "test --all-features (with doctests)" cargo test --release --all-features
    # The --all-features run above already ran every integration test once
    # per backend (tests/common's for_each_backend!). Each feature set alone
    # must still build and work: its unit tests (the core's, and each
    # backend's own) and the API and ordered-access suites. Doctests show the
    # default (seize) backend, so they run only above.
    local alone=(--lib --test api --test ordered)
    run_step "test --no-default-features (core)" \
        env PROPTEST_CASES="$single_cases" cargo test --release --no-default-features "${alone[@]}"

    local f
    for f in $BACKEND_FEATURES; do
        if is_declared "$f"; then
            run_step "test --features $f" \
                env PROPTEST_CASES="$single_cases" cargo test --release --no-default-features --features "$f" "${alone[@]}"
        else
            echo
            echo "--- backend feature '$f' is not in Cargo.toml [features] yet: skipped"
        fi
    done
}

# ---------------------------------------------------------------------------
# 4. loom models
# ---------------------------------------------------------------------------

loom_models() {
    local status=0
    echo "+ RUSTFLAGS='--cfg masstree_loom' LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=$MAIN_TARGET_DIR/loom timeout ${LOOM_TIMEOUT}s cargo test --release --lib loom"
    RUSTFLAGS="--cfg masstree_loom" LOOM_MAX_PREEMPTIONS=2 \
        CARGO_TARGET_DIR="$MAIN_TARGET_DIR/loom" \
        timeout --kill-after=30 "$LOOM_TIMEOUT" \
        cargo test --release --lib loom || status=$?
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo
        echo "XXX loom run exceeded ${LOOM_TIMEOUT}s: shrink the models or LOOM_MAX_PREEMPTIONS"
    fi
    return "$status"
}
step_loom() {
    run_step "loom (LOOM_MAX_PREEMPTIONS=2)" loom_models
}

# ---------------------------------------------------------------------------
# 5. miri
# ---------------------------------------------------------------------------

install_miri() {
    if [ -n "${CI_SKIP_MIRI:-}" ]; then
        MIRI_SKIP_REASON="CI_SKIP_MIRI is set"
        return 0
    fi
    if ! command -v rustup >/dev/null 2>&1; then
        MIRI_SKIP_REASON="rustup is not installed"
        return 0
    fi
    if has_toolchain nightly; then
        if has_component nightly miri && has_component nightly rust-src; then
            return 0
        fi
        echo "+ rustup component add --toolchain nightly miri rust-src"
        if rustup component add --toolchain nightly miri rust-src; then
            return 0
        fi
        # The installed nightly may predate a nightly that ships miri; try updating it.
        echo "+ rustup toolchain install nightly --no-self-update --profile minimal --component miri,rust-src"
        if rustup toolchain install nightly --no-self-update --profile minimal --component miri,rust-src; then
            return 0
        fi
        MIRI_SKIP_REASON="rustup could not add the miri / rust-src components to the nightly toolchain"
    else
        echo "+ rustup toolchain install nightly --no-self-update --profile minimal --component miri,rust-src"
        if rustup toolchain install nightly --no-self-update --profile minimal --component miri,rust-src; then
            return 0
        fi
        MIRI_SKIP_REASON="rustup could not install a nightly toolchain with miri and rust-src"
    fi
}

miri_setup() {
    echo "+ cargo +nightly miri setup"
    CARGO_TARGET_DIR="$MAIN_TARGET_DIR/miri" cargo +nightly miri setup
}

# Miri runs two sets of tests, each test in its own process, handed out one
# at a time to MIRI_JOBS concurrent Miri processes (default: the number of
# cores; Miri interprets on one core, and a process per test costs ~2 s but
# balances long and short tests):
#   * the core's unit tests (white-box, on src/test_backend.rs), `--lib`;
#   * the integration tests named in MIRI_INTEGRATION, on the pool or arena
#     backend: the black-box checks against models (src/tree_tests.rs keeps
#     only tests that need the crate's internals).
# The whole run is time-boxed by MIRI_TIMEOUT. Each test's output is printed
# in full, in list order, when all are done.
MIRI_LIB=(--lib --no-default-features --features huge-pages)
MIRI_BACKENDS=(--no-default-features --features pool,arena)
# target:test,test,...: each chosen test on one of the two backends, both
# backends in each target (a test's twin on the other backend exercises the
# same tree code; running both would double the step's time).
MIRI_INTEGRATION="model:pool::sequential_be_u64_100k,arena::sequential_be_u64_descending_100k,pool::random_keys_100k,arena::trailing_zero_family
ordered:pool::for_each_matches_single_steps,pool::scans_while_leaves_are_unlinked,arena::get_or_insert_with_inserts_once,pool::compare_exchange_counter_loses_nothing
batch:pool::large_batches_match_get,arena::empty_tree_and_empty_batch
batch_hints:pool::inserts_into_leaves_their_window_splits,arena::removes_from_leaves_and_layers_their_window_deletes"
miri_cargo() { # miri_cargo SET [ARGS...]: SET is `lib` or an integration target
    local set=$1
    shift
    if [ "$set" = lib ]; then
        CARGO_TARGET_DIR="$MAIN_TARGET_DIR/miri" cargo +nightly miri test "${MIRI_LIB[@]}" "$@"
    else
        CARGO_TARGET_DIR="$MAIN_TARGET_DIR/miri" cargo +nightly miri test "${MIRI_BACKENDS[@]}" --test "$set" "$@"
    fi
}

# Prints "SET NAME" for every test Miri runs.
miri_list() {
    local list line target tests t
    list="$(miri_cargo lib -q -- --list --format terse 2>/dev/null)" || return $?
    sed -n 's/: test$//p' <<<"$list" | sed 's/^/lib /'
    while IFS= read -r line; do
        target=${line%%:*}
        tests=${line#*:}
        list="$(miri_cargo "$target" -q -- --list --format terse 2>/dev/null)" || return $?
        for t in ${tests//,/ }; do
            grep -qx "$t: test" <<<"$list" || {
                echo "miri: no test $t in --test $target" >&2
                return 1
            }
            echo "$target $t"
        done
    done <<<"$MIRI_INTEGRATION"
}

miri_test() {
    local status=0
    echo "+ cargo +nightly miri test ${MIRI_LIB[*]} --no-run"
    echo "  (MIRIFLAGS='${MIRIFLAGS:-}' CARGO_TARGET_DIR=$MAIN_TARGET_DIR/miri)"
    miri_cargo lib --no-run || return $?

    local logdir i
    logdir="$(mktemp -d)"
    miri_list >"$logdir/names" || return $?
    local count
    count=$(wc -l <"$logdir/names")
    local jobs=$MIRI_JOBS
    [ "$jobs" -ge 1 ] || jobs=1
    echo "miri: $count tests ($(grep -c '^lib ' "$logdir/names") unit, the rest on pool and arena), $jobs parallel process(es), timeout ${MIRI_TIMEOUT}s"
    echo "+ timeout ${MIRI_TIMEOUT}s xargs -P $jobs: cargo +nightly miri test <set> -- --exact <test>"
    # Each worker: run one test, log to <index>.log, print one progress line.
    export -f miri_cargo
    export MAIN_TARGET_DIR
    # shellcheck disable=SC2016 # the inner script expands its own variables
    seq 1 "$count" |
        timeout --kill-after=30 "$MIRI_TIMEOUT" \
            xargs -P "$jobs" -I{} bash -c '
                i=$1; dir=$2; lib=$3; backends=$4
                read -r set name < <(sed -n "${i}p" "$dir/names")
                MIRI_LIB=($lib); MIRI_BACKENDS=($backends)
                start=$SECONDS
                if miri_cargo "$set" -- --exact "$name" >"$dir/$i.log" 2>&1; then
                    echo "miri: ok     $set $name ($((SECONDS - start))s)"
                else
                    echo "miri: FAILED $set $name ($((SECONDS - start))s)"
                    exit 1
                fi
            ' _ {} "$logdir" "${MIRI_LIB[*]}" "${MIRI_BACKENDS[*]}" || status=$?
    for ((i = 1; i <= count; i++)); do
        if [ -f "$logdir/$i.log" ]; then
            echo
            echo "---------------- miri: $(sed -n "${i}p" "$logdir/names") ----------------"
            cat "$logdir/$i.log"
        fi
    done
    rm -rf "$logdir"
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo
        echo "XXX miri run exceeded ${MIRI_TIMEOUT}s: mark slow tests #[cfg_attr(miri, ignore)] or shrink them under cfg(miri)"
    fi
    return "$status"
}

MIRI_SKIP_REASON=""

step_miri() {
    header "miri: install"
    local start=$SECONDS
    install_miri
    echo "--- miri install check took $((SECONDS - start))s"

    if [ -z "$MIRI_SKIP_REASON" ]; then
        cargo +nightly miri --version
        # A failing `miri setup` (it builds the sysroot from rust-src, fetching
        # std's dependencies from crates.io) is an environment problem, not a
        # test failure: report it loudly and go on.
        header "miri: setup"
        start=$SECONDS
        if miri_setup; then
            echo "--- miri setup OK in $((SECONDS - start))s"
        else
            MIRI_SKIP_REASON="'cargo +nightly miri setup' failed (could not build the Miri sysroot)"
        fi
    fi

    if [ -z "$MIRI_SKIP_REASON" ]; then
        run_step "miri (unit tests; integration tests on pool, arena)" miri_test
    else
        banner "MIRI WAS NOT RUN." \
            "Reason: $MIRI_SKIP_REASON" \
            "The core's unit tests were NOT checked for undefined behaviour in this run."
        WARNINGS+=("miri: $MIRI_SKIP_REASON")
    fi
}

# ---------------------------------------------------------------------------
# 6. no_std
# ---------------------------------------------------------------------------

NOSTD_TARGET=""

NOSTD_CHECK=ci/nostd-check/Cargo.toml

# The check crate's feature for backend feature $1: its own if it declares
# one (then it also runs a tree on that backend), else `masstree/$1`.
nostd_check_feature() {
    if is_declared "$1" "$(declared_features "$NOSTD_CHECK" | tr '\n' ' ')"; then
        echo "$1"
    else
        echo "masstree/$1"
    fi
}

# Builds ci/nostd-check for the host with every no_std backend, links it into
# a tiny C program and runs it: the trees on the pool/arena backends insert
# and read back through the check's own bump allocator, with no std at all.
nostd_run_on_host() {
    local cc features=() f count=0
    cc="$(command -v cc || command -v gcc || true)"
    for f in $NOSTD_FEATURES; do
        if is_declared "$f" && is_declared "$f" "$(declared_features "$NOSTD_CHECK" | tr '\n' ' ')"; then
            features+=("$f")
            count=$((count + 1))
        fi
    done
    local dir="$MAIN_TARGET_DIR/nostd-check"
    echo "+ cargo build --manifest-path $NOSTD_CHECK --features '${features[*]}'"
    env CARGO_TARGET_DIR="$dir" cargo build --manifest-path "$NOSTD_CHECK" \
        --features "${features[*]}" || return $?
    # Without its `alloc` feature the check defines no global allocator, so
    # linking the `alloc` crate already fails the build; the symbols say so too.
    if command -v nm >/dev/null 2>&1; then
        echo "+ nm $dir/debug/libmasstree_nostd_check.a | grep global allocator symbols"
        if nm "$dir/debug/libmasstree_nostd_check.a" 2>/dev/null | grep -E '__rust_alloc|__rg_alloc'; then
            echo "nostd-check: the build without alloc references the global allocator"
            return 1
        fi
    fi
    echo "+ $cc ci/nostd-check/harness.c $dir/debug/libmasstree_nostd_check.a -o $dir/harness"
    "$cc" -O1 ci/nostd-check/harness.c "$dir/debug/libmasstree_nostd_check.a" \
        -o "$dir/harness" || return $?
    echo "+ $dir/harness $count"
    timeout 120 "$dir/harness" "$count"
}

step_nostd() {
    local t f
    header "no_std: target"
    for t in $NOSTD_TARGETS; do
        if has_target "$t"; then
            NOSTD_TARGET=$t
            break
        fi
        echo "+ rustup target add $t"
        if rustup target add "$t"; then
            NOSTD_TARGET=$t
            break
        fi
        echo "--- could not add target $t"
    done

    local target_args=() where="host (fallback)"
    if [ -n "$NOSTD_TARGET" ]; then
        echo "no_std target: $NOSTD_TARGET"
        target_args=(--target "$NOSTD_TARGET")
        where=$NOSTD_TARGET
        run_step "no_std: core for $where" \
            cargo build --lib --no-default-features "${target_args[@]}"
    else
        banner "NO BARE-METAL TARGET AVAILABLE: rustup could not add any of: $NOSTD_TARGETS" \
            "Falling back to building ci/nostd-check (#![no_std] staticlib, panic=abort," \
            "own #[panic_handler]) for the HOST. A std leak in the core still fails this" \
            "(duplicate 'panic_impl' lang item), but the check is weaker than a target" \
            "that has no std at all."
        WARNINGS+=("no_std: no bare-metal target; only the host-staticlib fallback was built")
    fi
    run_step "no_std: ci/nostd-check for $where" \
        env CARGO_TARGET_DIR="$MAIN_TARGET_DIR/nostd-check" \
        cargo build --manifest-path "$NOSTD_CHECK" "${target_args[@]}"

    for f in $NOSTD_FEATURES; do
        if ! is_declared "$f"; then
            echo
            echo "--- no_std feature '$f' is not in Cargo.toml [features] yet: skipped"
            continue
        fi
        if [ -n "$NOSTD_TARGET" ]; then
            run_step "no_std: core --features $f for $where" \
                cargo build --lib --no-default-features --features "$f" "${target_args[@]}"
        fi
        local cf
        cf="$(nostd_check_feature "$f")"
        run_step "no_std: ci/nostd-check --features $cf for $where" \
            env CARGO_TARGET_DIR="$MAIN_TARGET_DIR/nostd-check" \
            cargo build --manifest-path "$NOSTD_CHECK" --features "$cf" "${target_args[@]}"
    done

    # The check without `alloc` (above) uses no global allocator; with it, the
    # backends' global-allocator constructors too.
    run_step "no_std: ci/nostd-check --features alloc,pool,arena for $where" \
        env CARGO_TARGET_DIR="$MAIN_TARGET_DIR/nostd-check" \
        cargo build --manifest-path "$NOSTD_CHECK" --features alloc,pool,arena "${target_args[@]}"

    if command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1; then
        run_step "no_std: run ci/nostd-check on the host (C harness)" nostd_run_on_host
    else
        banner "NO C COMPILER: the no_std check was built but NOT RUN on the host."
        WARNINGS+=("no_std: no C compiler, the check staticlib was not run")
    fi
}

# ---------------------------------------------------------------------------
# 7. embedded (ci/embedded.sh: 32-bit bare-metal builds, the firmware under
#    qemu-system-arm, the narrow-word unit tests, loom models and Miri)
# ---------------------------------------------------------------------------

step_embedded() {
    run_step "embedded: ci/embedded.sh" env CARGO_TARGET_DIR="$MAIN_TARGET_DIR" bash ci/embedded.sh
}

# ---------------------------------------------------------------------------
# 8. sanitizers
# ---------------------------------------------------------------------------

# Tests and backends for each sanitizer (backends not in Cargo.toml's
# [features] are left out). Release builds with debug assertions, like the
# test step: the stress tests then run at a quarter of their release sizes.
# AddressSanitizer needs no rebuilt std (std itself is not instrumented, but
# every allocation and access of the crate and its tests is, and leaks are
# reported at exit).
ASAN_TESTS=(--test api --test leak --test panic --test model --test stress)
ASAN_FEATURES="seize pool arena"
TSAN_TESTS=(--test stress)
TSAN_FEATURES="pool arena"
# Proptest cases for model.rs under the sanitizers.
SAN_PROPTEST_CASES=16

SAN_TARGET=""
SAN_SKIP_REASON=""

# Finds the nightly toolchain with rust-src (for -Zbuild-std) and a host
# target the sanitizers support; sets SAN_SKIP_REASON if there is none.
install_sanitizers() {
    if [ -n "${CI_SKIP_SANITIZERS:-}" ]; then
        SAN_SKIP_REASON="CI_SKIP_SANITIZERS is set"
        return 0
    fi
    if ! command -v rustup >/dev/null 2>&1; then
        SAN_SKIP_REASON="rustup is not installed"
        return 0
    fi
    if ! { has_toolchain nightly && has_component nightly rust-src; }; then
        if has_toolchain nightly; then
            echo "+ rustup component add --toolchain nightly rust-src"
            rustup component add --toolchain nightly rust-src ||
                { echo "+ rustup toolchain install nightly --no-self-update --profile minimal --component rust-src" &&
                    rustup toolchain install nightly --no-self-update --profile minimal --component rust-src; } ||
                SAN_SKIP_REASON="rustup could not add rust-src to the nightly toolchain"
        else
            echo "+ rustup toolchain install nightly --no-self-update --profile minimal --component rust-src"
            rustup toolchain install nightly --no-self-update --profile minimal --component rust-src ||
                SAN_SKIP_REASON="rustup could not install a nightly toolchain with rust-src"
        fi
    fi
    [ -z "$SAN_SKIP_REASON" ] || return 0
    SAN_TARGET="$(rustc +nightly -vV | sed -n 's/^host: //p')"
    case "$SAN_TARGET" in
        x86_64-unknown-linux-gnu | aarch64-unknown-linux-gnu) ;;
        *) SAN_SKIP_REASON="host '$SAN_TARGET' is not one this step runs the sanitizers on" ;;
    esac
}

# Declared features among $1, comma-separated.
declared_list() {
    local f out=()
    for f in $1; do
        is_declared "$f" && out+=("$f")
    done
    local IFS=,
    echo "${out[*]}"
}

# san_cargo NAME RUSTFLAGS [CARGO ARGS...]: cargo +nightly test, release with
# debug assertions, for the host target, in $MAIN_TARGET_DIR/NAME, time-boxed.
san_cargo() {
    local name=$1 flags=$2 status=0
    shift 2
    echo "+ RUSTFLAGS='$flags' CARGO_TARGET_DIR=$MAIN_TARGET_DIR/$name timeout ${SANITIZER_TIMEOUT}s cargo +nightly test --release --target $SAN_TARGET $*"
    env RUSTFLAGS="$flags" CARGO_TARGET_DIR="$MAIN_TARGET_DIR/$name" \
        CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
        timeout --kill-after=30 "$SANITIZER_TIMEOUT" \
        cargo +nightly test --release --target "$SAN_TARGET" "$@" || status=$?
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo
        echo "XXX $name run exceeded ${SANITIZER_TIMEOUT}s"
    fi
    return "$status"
}

asan_tests() {
    echo "ASAN_OPTIONS=detect_leaks=1 PROPTEST_CASES=$SAN_PROPTEST_CASES"
    ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}" PROPTEST_CASES="$SAN_PROPTEST_CASES" \
        san_cargo asan "-Zsanitizer=address" \
        --no-default-features --features "$(declared_list "$ASAN_FEATURES")" "${ASAN_TESTS[@]}"
}

# ThreadSanitizer needs std instrumented too (its synchronization would
# otherwise be invisible, and every hand-off through it a false report).
# TSan exits non-zero if it reported anything.
tsan_tests() {
    san_cargo tsan "-Zsanitizer=thread" -Zbuild-std \
        --no-default-features --features "$(declared_list "$TSAN_FEATURES")" "${TSAN_TESTS[@]}"
}

step_sanitizers() {
    header "sanitizers: toolchain"
    install_sanitizers
    if [ -n "$SAN_SKIP_REASON" ]; then
        banner "THE SANITIZERS WERE NOT RUN." \
            "Reason: $SAN_SKIP_REASON" \
            "No AddressSanitizer (memory errors, leaks) and no ThreadSanitizer (data races) in this run."
        WARNINGS+=("sanitizers: $SAN_SKIP_REASON")
        return 0
    fi
    echo "sanitizer target: $SAN_TARGET"
    run_step "sanitizers: AddressSanitizer (api leak panic model stress; $(declared_list "$ASAN_FEATURES"))" asan_tests
    run_step "sanitizers: ThreadSanitizer (stress; $(declared_list "$TSAN_FEATURES"))" tsan_tests
    # The seize backend synchronizes reclamation with standalone fences (and,
    # with seize's default fast-barrier feature, membarrier), which TSan does
    # not model: every report on its stress tests pairs a reclaimer (freeing
    # or reading a retired object's header) or seize's own batch bookkeeping
    # with the retiring or reading thread. No suppression can tell those from
    # a real early free, so seize runs under AddressSanitizer only.
    echo
    echo "--- ThreadSanitizer does not run on the seize backend (fence-based reclamation): ASan only"
    WARNINGS+=("sanitizers: no ThreadSanitizer on the seize backend (TSan does not model seize's fences; ASan covers it)")
}

# ---------------------------------------------------------------------------
# 9. msrv
# ---------------------------------------------------------------------------

# The declared MSRV: Cargo.toml's rust-version.
MSRV="$(sed -n 's/^rust-version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)"
MSRV_SKIP_REASON=""

install_msrv() {
    if [ -n "${CI_SKIP_MSRV:-}" ]; then
        MSRV_SKIP_REASON="CI_SKIP_MSRV is set"
    elif [ -z "$MSRV" ]; then
        MSRV_SKIP_REASON="Cargo.toml declares no rust-version"
    elif ! command -v rustup >/dev/null 2>&1; then
        MSRV_SKIP_REASON="rustup is not installed"
    elif ! has_toolchain "$MSRV"; then
        echo "+ rustup toolchain install $MSRV --no-self-update --profile minimal"
        rustup toolchain install "$MSRV" --no-self-update --profile minimal ||
            MSRV_SKIP_REASON="rustup could not install the $MSRV toolchain"
    fi
}

# The sources as a clean clone has them (tracked files, and new ones not
# ignored), in a directory of their own without Cargo.lock: the dependencies
# resolve afresh, as in CI, where edition 2024's resolver picks for each the
# newest version whose rust-version the MSRV meets; the working tree's
# Cargo.lock (resolved by whatever toolchain ran last) is not used or changed.
# Modification times are kept, so unchanged files are not rebuilt.
MSRV_DIR="$MAIN_TARGET_DIR/msrv"
msrv_copy() {
    rm -rf "$MSRV_DIR/src" && mkdir -p "$MSRV_DIR/src" &&
        git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do
            [ -e "$f" ] && printf '%s\0' "$f"
        done |
            tar --null -T - -cf - | tar -xf - -C "$MSRV_DIR/src"
}

# Everything a user builds (the library, without `alloc` and with every
# feature) and the unit, integration and example targets, at the MSRV; the
# tests run with few proptest cases (they are here to prove the toolchain;
# the test step runs them in full). Doctests are left out: compiling each at
# the MSRV costs minutes for code the test step already checks.
msrv_test() {
    echo "+ copy the sources to $MSRV_DIR/src (no Cargo.lock)"
    msrv_copy || return $?
    (
        cd "$MSRV_DIR/src" || exit 1
        export CARGO_TARGET_DIR="$MSRV_DIR/target"
        echo "+ cargo +$MSRV check --lib --no-default-features" &&
            cargo "+$MSRV" check --lib --no-default-features &&
            echo "+ PROPTEST_CASES=$PER_FEATURE_PROPTEST_CASES cargo +$MSRV test --release --all-features --lib --tests --examples" &&
            PROPTEST_CASES="$PER_FEATURE_PROPTEST_CASES" \
                cargo "+$MSRV" test --release --all-features --lib --tests --examples
    )
}

step_msrv() {
    header "msrv: toolchain $MSRV"
    install_msrv
    if [ -n "$MSRV_SKIP_REASON" ]; then
        banner "MSRV IS NOT CHECKED: the crate was NOT built with Rust ${MSRV:-?}." \
            "Reason: $MSRV_SKIP_REASON" \
            "Cargo.toml's rust-version is a claim this run did not test."
        WARNINGS+=("msrv: Rust ${MSRV:-?} not checked: $MSRV_SKIP_REASON")
        return 0
    fi
    rustc "+$MSRV" --version
    run_step "msrv: Rust $MSRV (lib without features; lib, tests and examples with all)" msrv_test
}

# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

ALL_STEPS="fmt clippy test loom miri nostd embedded sanitizers msrv"
SELECTED="${*:-$ALL_STEPS}"
for s in $SELECTED; do
    case " $ALL_STEPS " in
        *" $s "*) ;;
        *)
            echo "ci/test.sh: unknown step '$s' (steps: $ALL_STEPS)" >&2
            exit 2
            ;;
    esac
done
if [ "$SELECTED" != "$ALL_STEPS" ]; then
    echo
    echo "NOTE: running only the selected steps: $SELECTED"
    WARNINGS+=("steps not selected on the command line: $(for s in $ALL_STEPS; do case " $SELECTED " in *" $s "*) ;; *) printf '%s ' "$s" ;; esac; done)")
fi

DECLARED="$(declared_features | tr '\n' ' ')"

toolchain
for s in $ALL_STEPS; do
    case " $SELECTED " in
        *" $s "*) "step_$s" ;;
    esac
done

# The EXIT trap prints the summary.
exit 0
