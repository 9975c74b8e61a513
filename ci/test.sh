#!/usr/bin/env bash
# Functions below are called indirectly (run_step, trap):
# shellcheck disable=SC2317
# The project's test command: runs every check CI runs, in order, and stops at
# the first failure.
#
#   1. rustfmt            cargo fmt --all --check
#   2. clippy             cargo clippy --all-targets --all-features -- -D warnings
#   3. tests              cargo test --all-features
#                         cargo test --no-default-features          (core only)
#                         cargo test --no-default-features --features <f>
#                           for each backend feature in BACKEND_FEATURES that
#                           exists in Cargo.toml's [features]
#   4. loom               --cfg masstree_loom, release, unit tests named *loom*
#   5. miri               nightly miri, core unit tests (time-boxed)
#   6. no_std             core + ci/nostd-check built for a bare-metal target
#
# Usage: ci/test.sh            (from anywhere; it cd's to the repo root)
#
# Environment knobs (all optional):
#   MIRI_TIMEOUT   seconds for `cargo miri test` (default 600)
#   LOOM_TIMEOUT   seconds for the loom run (default 900)
#   MIRIFLAGS      passed through to Miri unchanged (default: Miri's strict defaults)
#   CI_SKIP_MIRI=1 skip Miri (prints a loud banner; for quick local runs only)
set -euo pipefail

# Backend features, each tested on its own on top of the core
# (`--no-default-features --features <f>`). A name that is not (yet) in
# Cargo.toml's [features] is reported and skipped, so adding the feature to
# Cargo.toml is enough for it to be tested.
BACKEND_FEATURES="seize pool arena"

# Bare-metal targets without `std` for the no_std check, first one that
# rustup can provide wins. All have 64-bit atomics (the core needs AtomicU64).
NOSTD_TARGETS="aarch64-unknown-none x86_64-unknown-none"

MIRI_TIMEOUT="${MIRI_TIMEOUT:-600}"
LOOM_TIMEOUT="${LOOM_TIMEOUT:-900}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Main build cache; loom, miri and the no_std check crate get their own
# sub-directories so their flags don't invalidate it.
MAIN_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------

SCRIPT_START=$SECONDS
SUMMARY=()   # one entry per finished step: "name: OK (12s)"
WARNINGS=()  # things that were NOT checked and why
CURRENT_STEP=""

header() {
    echo
    echo "======================================================================"
    echo "== $*"
    echo "======================================================================"
}

banner() {
    # Loud, multi-line banner for anything that was not checked.
    echo
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    local line
    for line in "$@"; do
        echo "!!! $line"
    done
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo
}

print_summary() {
    local status=$1
    echo
    echo "======================================================================"
    echo "== ci/test.sh summary"
    echo "======================================================================"
    local s
    for s in "${SUMMARY[@]}"; do
        echo "  $s"
    done
    if [ -n "$CURRENT_STEP" ]; then
        echo "  $CURRENT_STEP: FAILED"
    fi
    for s in "${WARNINGS[@]}"; do
        echo "  !!! NOT CHECKED: $s"
    done
    local total=$((SECONDS - SCRIPT_START))
    if [ "$status" -eq 0 ]; then
        echo "ci/test.sh: ALL STEPS OK (${#SUMMARY[@]} steps, ${#WARNINGS[@]} not checked, total ${total}s)"
    else
        echo "ci/test.sh: FAILED at step '${CURRENT_STEP:-?}' (exit $status, total ${total}s)"
    fi
}

on_exit() {
    local status=$?
    print_summary "$status"
    exit "$status"
}
trap on_exit EXIT

# run_step NAME CMD...: header, run, print elapsed time; abort the script on
# failure (the EXIT trap prints the summary).
run_step() {
    local name=$1
    shift
    CURRENT_STEP=$name
    header "$name"
    [ "$(type -t "$1")" = function ] || echo "+ $*"
    local start=$SECONDS
    local status=0
    "$@" || status=$?
    local elapsed=$((SECONDS - start))
    if [ "$status" -ne 0 ]; then
        echo
        echo "XXX step '$name' FAILED (exit $status) after ${elapsed}s"
        exit "$status"
    fi
    echo "--- step '$name' OK in ${elapsed}s"
    SUMMARY+=("$name: OK (${elapsed}s)")
    CURRENT_STEP=""
}

# Features declared in Cargo.toml's [features] table, one per line.
declared_features() {
    awk '
        /^[[:space:]]*\[/ { in_features = ($0 ~ /^[[:space:]]*\[features\][[:space:]]*(#.*)?$/); next }
        in_features && /^[[:space:]]*[A-Za-z0-9_-]+[[:space:]]*=/ {
            name = $0
            sub(/^[[:space:]]*/, "", name)
            sub(/[[:space:]]*=.*/, "", name)
            print name
        }
    ' Cargo.toml
}

# (Output is captured before grepping: `cmd | grep -q` under pipefail can
# report a spurious failure when grep exits early and cmd gets SIGPIPE.)
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

# ---------------------------------------------------------------------------
# 1. rustfmt
# ---------------------------------------------------------------------------

# NB: functions run by run_step execute with `set -e` suspended (they are
# called as `fn || ...`), so multi-command steps chain with `&&`.
fmt_all() {
    echo "+ cargo fmt --all --check" &&
        cargo fmt --all --check &&
        echo "+ cargo fmt --manifest-path ci/nostd-check/Cargo.toml --check" &&
        cargo fmt --manifest-path ci/nostd-check/Cargo.toml --check
}
run_step "rustfmt" fmt_all

# ---------------------------------------------------------------------------
# 2. clippy
# ---------------------------------------------------------------------------

run_step "clippy" cargo clippy --all-targets --all-features -- -D warnings

# ---------------------------------------------------------------------------
# 3. tests, per feature set
# ---------------------------------------------------------------------------

DECLARED="$(declared_features | tr '\n' ' ')"
echo
echo "features declared in Cargo.toml: ${DECLARED:-<none>}"
echo "backend features to test alone:  $BACKEND_FEATURES"

run_step "test --all-features" cargo test --all-features
run_step "test --no-default-features (core)" cargo test --no-default-features

for f in $BACKEND_FEATURES; do
    if grep -qx -- "$f" <<<"$(tr ' ' '\n' <<<"$DECLARED")"; then
        run_step "test --features $f" cargo test --no-default-features --features "$f"
    else
        echo
        echo "--- backend feature '$f' is not in Cargo.toml [features] yet: skipped"
    fi
done

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
        echo "XXX loom run exceeded ${LOOM_TIMEOUT}s: shrink the models or LOOM_MAX_PREEMPTIONS"
    fi
    return "$status"
}
run_step "loom (LOOM_MAX_PREEMPTIONS=2)" loom_models

# ---------------------------------------------------------------------------
# 5. miri
# ---------------------------------------------------------------------------

MIRI_SKIP_REASON=""

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

miri_test() {
    local status=0
    echo "+ MIRIFLAGS='${MIRIFLAGS:-}' CARGO_TARGET_DIR=$MAIN_TARGET_DIR/miri timeout ${MIRI_TIMEOUT}s cargo +nightly miri test --lib --no-default-features"
    CARGO_TARGET_DIR="$MAIN_TARGET_DIR/miri" \
        timeout --kill-after=30 "$MIRI_TIMEOUT" \
        cargo +nightly miri test --lib --no-default-features || status=$?
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo "XXX miri run exceeded ${MIRI_TIMEOUT}s: mark slow tests #[cfg_attr(miri, ignore)] or shrink them under cfg(miri)"
    fi
    return "$status"
}

header "miri: install"
miri_install_start=$SECONDS
install_miri
echo "--- miri install check took $((SECONDS - miri_install_start))s"

if [ -z "$MIRI_SKIP_REASON" ]; then
    cargo +nightly miri --version
    # A failing `miri setup` (it builds the sysroot from rust-src, fetching
    # std's dependencies from crates.io) is an environment problem, not a
    # test failure: report it loudly and go on.
    header "miri: setup"
    setup_start=$SECONDS
    if miri_setup; then
        echo "--- miri setup OK in $((SECONDS - setup_start))s"
    else
        MIRI_SKIP_REASON="'cargo +nightly miri setup' failed (could not build the Miri sysroot)"
    fi
fi

if [ -z "$MIRI_SKIP_REASON" ]; then
    run_step "miri (core unit tests)" miri_test
else
    banner "MIRI WAS NOT RUN." \
        "Reason: $MIRI_SKIP_REASON" \
        "The core's unit tests were NOT checked for undefined behaviour in this run."
    WARNINGS+=("miri: $MIRI_SKIP_REASON")
fi

# ---------------------------------------------------------------------------
# 6. no_std
# ---------------------------------------------------------------------------

NOSTD_TARGET=""
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

if [ -n "$NOSTD_TARGET" ]; then
    echo "no_std target: $NOSTD_TARGET"
    run_step "no_std: core for $NOSTD_TARGET" \
        cargo build --lib --no-default-features --target "$NOSTD_TARGET"
    run_step "no_std: ci/nostd-check staticlib for $NOSTD_TARGET" \
        env CARGO_TARGET_DIR="$MAIN_TARGET_DIR/nostd-check" \
        cargo build --manifest-path ci/nostd-check/Cargo.toml --target "$NOSTD_TARGET"
else
    banner "NO BARE-METAL TARGET AVAILABLE: rustup could not add any of: $NOSTD_TARGETS" \
        "Falling back to building ci/nostd-check (#![no_std] staticlib, panic=abort," \
        "own #[panic_handler]) for the HOST. A std leak in the core still fails this" \
        "(duplicate 'panic_impl' lang item), but the check is weaker than a target" \
        "that has no std at all."
    WARNINGS+=("no_std: no bare-metal target; only the host-staticlib fallback was built")
    run_step "no_std: ci/nostd-check staticlib for host (fallback)" \
        env CARGO_TARGET_DIR="$MAIN_TARGET_DIR/nostd-check" \
        cargo build --manifest-path ci/nostd-check/Cargo.toml
fi

# The EXIT trap prints the summary.
exit 0
