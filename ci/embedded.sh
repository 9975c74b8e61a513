#!/usr/bin/env bash
# Functions below are called indirectly (run_step, trap):
# shellcheck disable=SC2317
# Embedded checks (issue 16): the bare-metal builds, a firmware run on an
# emulated Cortex-M4, and the narrow-word form of the core on the host. Stops
# at the first failure, like ci/test.sh.
#
#   1. qemu      qemu-system-arm present, else `apt-get install qemu-system-arm`
#   2. targets   rustup target add for the bare-metal targets below
#   3. build     core + pool + arena (`--lib --no-default-features --features
#                pool,arena`) for each of BUILD_TARGETS in debug and release,
#                and for RELEASE_ONLY_TARGETS in release
#   4. firmware  ci/firmware built in release for thumbv7em-none-eabihf and run
#                under qemu-system-arm -machine mps2-an386 (time limit
#                FIRMWARE_TIMEOUT); fails unless the firmware exits 0
#   5. oom       ci/no-alloc-oom on the host: masstree without `alloc` (pool
#                backend over a user allocator that refuses on request); its
#                tests fail unless out of memory on an infallible insert and
#                in a cursor's first seek panics naming `Tree::fallible`
#   6. narrow    --cfg masstree_narrow (the 32-bit-halves form of the words
#                readers load optimistically, forced on the host):
#                  cargo test --release --lib
#   7. loom      --cfg masstree_loom --cfg masstree_narrow, LOOM_MAX_PREEMPTIONS=2:
#                  cargo test --release --lib loom
#   8. miri      --cfg masstree_narrow under nightly Miri: MIRI_NARROW_TESTS,
#                unit tests and concurrent integration tests on the pool
#
# Usage: ci/embedded.sh [STEP...]   (from anywhere; it cd's to the repo root)
#   STEP is one of: qemu targets build firmware oom narrow loom miri (default: all).
#
# Environment knobs (all optional):
#   CARGO_TARGET_DIR   base of the build caches (default: <repo>/target); this
#                      script uses sub-directories embedded, firmware,
#                      no-alloc-oom, narrow, loom-narrow and miri-narrow of it
#   FIRMWARE_TIMEOUT   seconds for the emulated run (default 120)
#   LOOM_TIMEOUT       seconds for the loom run (default 900)
#   MIRI_TIMEOUT       seconds for the Miri run (default 600)
#   MIRIFLAGS          passed through to Miri unchanged
#   CI_SKIP_MIRI=1     skip Miri (prints a loud banner; for quick local runs only)
set -euo pipefail

# Built in debug and in release.
BUILD_TARGETS="thumbv7em-none-eabihf thumbv7m-none-eabi riscv32imac-unknown-none-elf"
# Built in release only (the 64-bit bare-metal target; ci/test.sh's no_std
# step builds it in debug).
RELEASE_ONLY_TARGETS="aarch64-unknown-none"
# What the bare-metal builds enable.
BUILD_FEATURES="pool,arena"

FIRMWARE_DIR=ci/firmware
FIRMWARE_TARGET=thumbv7em-none-eabihf
FIRMWARE_BIN=masstree-firmware
# enable=on,target=native is one argument:
# shellcheck disable=SC2054
QEMU_ARGS=(-machine mps2-an386 -cpu cortex-m4 -nographic
    -semihosting-config enable=on,target=native)

# Tests Miri runs under --cfg masstree_narrow, one "SET NAME" a line: SET is
# `lib` (the core's unit tests, MIRI_NARROW_LIB) or an integration target
# run on the pool backend (MIRI_NARROW_BACKENDS, as ci/test.sh's Miri step),
# NAME an exact test name. Splits at every position, removal across layers,
# a permutation word's test; then threads over the narrow words: scanners
# both ways while writers unlink leaves under them, and writers racing
# compare-exchange on one counter (about two minutes in all).
MIRI_NARROW_TESTS="lib tree_tests::removing_everything_returns_the_memory
lib tree_tests::left_neighbour_checks_the_link
lib tree_tests::bulk_load_matches_model
lib tree_tests::failed_allocations_change_nothing
lib permuter::tests::removed_slot_goes_to_the_back
ordered pool::scans_while_leaves_are_unlinked
ordered pool::compare_exchange_counter_loses_nothing"
MIRI_NARROW_LIB=(--lib --no-default-features --features huge-pages)
# pool,arena is one argument:
# shellcheck disable=SC2054
MIRI_NARROW_BACKENDS=(--no-default-features --features pool,arena)

FIRMWARE_TIMEOUT="${FIRMWARE_TIMEOUT:-120}"
LOOM_TIMEOUT="${LOOM_TIMEOUT:-900}"
MIRI_TIMEOUT="${MIRI_TIMEOUT:-600}"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

MAIN_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# Absolute, so that the firmware build (which runs from its own directory)
# and the printed commands agree.
case "$MAIN_TARGET_DIR" in
    /*) ;;
    *) MAIN_TARGET_DIR="$ROOT/$MAIN_TARGET_DIR" ;;
esac

# ---------------------------------------------------------------------------
# helpers (step timing and summary: ci/steps.sh)
# ---------------------------------------------------------------------------

SCRIPT_NAME=ci/embedded.sh
# shellcheck source=ci/steps.sh
source "$ROOT/ci/steps.sh"

# fatal NAME LINE...: a loud banner, then the script fails at step NAME.
fatal() {
    CURRENT_STEP=$1
    shift
    banner "$@"
    exit 1
}


has_target() { # has_target TRIPLE (for the default toolchain)
    local list
    list="$(rustup target list --installed 2>/dev/null)" || return 1
    grep -qx -- "$1" <<<"$list"
}

has_component() { # has_component TOOLCHAIN COMPONENT-PREFIX
    local list
    list="$(rustup component list --installed --toolchain "$1" 2>/dev/null)" || return 1
    grep -q "^$2" <<<"$list"
}

# ---------------------------------------------------------------------------
# 1. qemu-system-arm
# ---------------------------------------------------------------------------

step_qemu() {
    header "qemu: qemu-system-arm"
    if ! command -v qemu-system-arm >/dev/null 2>&1; then
        local sudo=()
        if [ "$(id -u)" -ne 0 ]; then
            command -v sudo >/dev/null 2>&1 ||
                fatal "qemu" "qemu-system-arm IS MISSING and cannot be installed:" \
                    "not root and no sudo. Install the Debian package qemu-system-arm."
            sudo=(sudo -n)
        fi
        local start=$SECONDS
        echo "+ ${sudo[*]} apt-get update && apt-get install -y --no-install-recommends qemu-system-arm"
        if ! { "${sudo[@]}" apt-get update -q &&
            DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q \
                --no-install-recommends qemu-system-arm; }; then
            fatal "qemu" "qemu-system-arm IS MISSING and 'apt-get install qemu-system-arm' FAILED." \
                "The emulated Cortex-M4 run cannot be done: failing."
        fi
        echo "--- installed qemu-system-arm in $((SECONDS - start))s"
        command -v qemu-system-arm >/dev/null 2>&1 ||
            fatal "qemu" "apt-get installed qemu-system-arm but it is not on PATH."
    fi
    qemu-system-arm --version | head -n 1
    qemu-system-arm -machine help | grep -q '^mps2-an386 ' ||
        fatal "qemu" "this qemu-system-arm has no mps2-an386 machine (QEMU 6.0 or later has it)."
    SUMMARY+=("qemu: OK")
}

# ---------------------------------------------------------------------------
# 2. rustup targets
# ---------------------------------------------------------------------------

step_targets() {
    header "rustup targets"
    rustc --version
    cargo --version
    command -v rustup >/dev/null 2>&1 ||
        fatal "targets" "rustup IS NOT INSTALLED: cannot add the bare-metal targets" \
            "$BUILD_TARGETS $RELEASE_ONLY_TARGETS"
    local t missing=()
    for t in $BUILD_TARGETS $RELEASE_ONLY_TARGETS; do
        has_target "$t" || missing+=("$t")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        local start=$SECONDS
        echo "+ rustup target add ${missing[*]}"
        rustup target add "${missing[@]}" ||
            fatal "targets" "rustup COULD NOT DOWNLOAD the targets: ${missing[*]}" \
                "The bare-metal builds and the firmware run need them: failing."
        echo "--- added in $((SECONDS - start))s"
    fi
    echo "installed: $(rustup target list --installed | tr '\n' ' ')"
    SUMMARY+=("targets: OK")
}

# ---------------------------------------------------------------------------
# 3. bare-metal builds of the core with the no_std backends
# ---------------------------------------------------------------------------

build_for() { # build_for TARGET [--release]
    env CARGO_TARGET_DIR="$MAIN_TARGET_DIR/embedded" \
        cargo build --lib --no-default-features --features "$BUILD_FEATURES" --target "$@"
}

step_build() {
    local t
    for t in $BUILD_TARGETS; do
        run_step "build $t (debug)" build_for "$t"
        run_step "build $t (release)" build_for "$t" --release
    done
    for t in $RELEASE_ONLY_TARGETS; do
        run_step "build $t (release)" build_for "$t" --release
    done
}

# ---------------------------------------------------------------------------
# 4. the firmware on an emulated Cortex-M4
# ---------------------------------------------------------------------------

firmware_build() {
    # From the crate's directory: it is its own workspace.
    (cd "$FIRMWARE_DIR" &&
        env CARGO_TARGET_DIR="$MAIN_TARGET_DIR/firmware" \
            cargo build --release --target "$FIRMWARE_TARGET")
}

firmware_run() {
    local elf="$MAIN_TARGET_DIR/firmware/$FIRMWARE_TARGET/release/$FIRMWARE_BIN"
    [ -f "$elf" ] || {
        echo "XXX no firmware image at $elf"
        return 1
    }
    echo "+ timeout $FIRMWARE_TIMEOUT qemu-system-arm ${QEMU_ARGS[*]} -kernel $elf"
    local status=0
    timeout --kill-after=10 "$FIRMWARE_TIMEOUT" \
        qemu-system-arm "${QEMU_ARGS[@]}" -kernel "$elf" </dev/null || status=$?
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo
        echo "XXX the firmware did not finish within ${FIRMWARE_TIMEOUT}s (hung, or semihosting exit missing)"
    elif [ "$status" -ne 0 ]; then
        echo
        echo "XXX the firmware exited with status $status (a failed check, a panic or a fault: see above)"
    fi
    return "$status"
}

step_firmware() {
    run_step "firmware: build ($FIRMWARE_TARGET, release)" firmware_build
    run_step "firmware: run on qemu-system-arm mps2-an386" firmware_run
}

# ---------------------------------------------------------------------------
# 5. out of memory without `alloc`
# ---------------------------------------------------------------------------

OOM_MANIFEST=ci/no-alloc-oom/Cargo.toml

oom_tests() {
    echo "+ CARGO_TARGET_DIR=$MAIN_TARGET_DIR/no-alloc-oom cargo test --manifest-path $OOM_MANIFEST"
    env CARGO_TARGET_DIR="$MAIN_TARGET_DIR/no-alloc-oom" \
        cargo test --manifest-path "$OOM_MANIFEST"
}

step_oom() {
    run_step "oom: out of memory without alloc panics naming Tree::fallible" oom_tests
}

# ---------------------------------------------------------------------------
# 6-8. the narrow-word form on the host: unit tests, loom, Miri
# ---------------------------------------------------------------------------

narrow_tests() {
    echo "+ RUSTFLAGS='--cfg masstree_narrow' CARGO_TARGET_DIR=$MAIN_TARGET_DIR/narrow cargo test --release --lib"
    # As in ci/test.sh: optimized, debug assertions and overflow checks on.
    RUSTFLAGS="--cfg masstree_narrow" CARGO_TARGET_DIR="$MAIN_TARGET_DIR/narrow" \
        CARGO_PROFILE_RELEASE_DEBUG_ASSERTIONS=true CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true \
        cargo test --release --lib
}

step_narrow() {
    run_step "narrow: unit tests (--cfg masstree_narrow)" narrow_tests
}

narrow_loom() {
    local status=0
    echo "+ RUSTFLAGS='--cfg masstree_loom --cfg masstree_narrow' LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=$MAIN_TARGET_DIR/loom-narrow timeout ${LOOM_TIMEOUT}s cargo test --release --lib loom"
    RUSTFLAGS="--cfg masstree_loom --cfg masstree_narrow" LOOM_MAX_PREEMPTIONS=2 \
        CARGO_TARGET_DIR="$MAIN_TARGET_DIR/loom-narrow" \
        timeout --kill-after=30 "$LOOM_TIMEOUT" \
        cargo test --release --lib loom || status=$?
    if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
        echo
        echo "XXX loom run exceeded ${LOOM_TIMEOUT}s: shrink the models or LOOM_MAX_PREEMPTIONS"
    fi
    return "$status"
}

step_loom() {
    run_step "loom (--cfg masstree_narrow, LOOM_MAX_PREEMPTIONS=2)" narrow_loom
}

MIRI_SKIP_REASON=""

install_miri() {
    if [ -n "${CI_SKIP_MIRI:-}" ]; then
        MIRI_SKIP_REASON="CI_SKIP_MIRI is set"
    elif ! command -v rustup >/dev/null 2>&1; then
        MIRI_SKIP_REASON="rustup is not installed"
    elif ! { has_component nightly miri && has_component nightly rust-src; }; then
        echo "+ rustup toolchain install nightly --no-self-update --profile minimal --component miri,rust-src"
        rustup toolchain install nightly --no-self-update --profile minimal --component miri,rust-src ||
            MIRI_SKIP_REASON="rustup could not install a nightly toolchain with miri and rust-src"
    fi
}

# narrow_miri_args SET: the cargo arguments that select SET (see MIRI_NARROW_TESTS).
narrow_miri_args() {
    if [ "$1" = lib ]; then
        echo "${MIRI_NARROW_LIB[*]}"
    else
        echo "${MIRI_NARROW_BACKENDS[*]} --test $1"
    fi
}

narrow_miri() {
    local set t status=0 start log args
    log="$(mktemp)"
    export RUSTFLAGS="--cfg masstree_narrow" CARGO_TARGET_DIR="$MAIN_TARGET_DIR/miri-narrow"
    echo "+ RUSTFLAGS='$RUSTFLAGS' MIRIFLAGS='${MIRIFLAGS:-}' CARGO_TARGET_DIR=$CARGO_TARGET_DIR cargo +nightly miri setup"
    cargo +nightly miri setup || return $?
    while read -r set; do
        read -ra args <<<"$(narrow_miri_args "$set")"
        echo "+ cargo +nightly miri test ${args[*]} --no-run"
        cargo +nightly miri test "${args[@]}" --no-run </dev/null || return $?
    done < <(cut -d' ' -f1 <<<"$MIRI_NARROW_TESTS" | sort -u)
    local deadline=$((SECONDS + MIRI_TIMEOUT))
    while read -r set t; do
        local left=$((deadline - SECONDS))
        if [ "$left" -le 0 ]; then
            echo "XXX Miri run exceeded ${MIRI_TIMEOUT}s before $set $t"
            return 124
        fi
        read -ra args <<<"$(narrow_miri_args "$set")"
        start=$SECONDS
        echo "+ cargo +nightly miri test ${args[*]} -- --exact $t"
        timeout --kill-after=30 "$left" \
            cargo +nightly miri test "${args[@]}" -- --exact "$t" </dev/null 2>&1 |
            tee "$log" || status=$?
        if [ "$status" -ne 0 ]; then
            [ "$status" -eq 124 ] && echo "XXX Miri run exceeded ${MIRI_TIMEOUT}s in $set $t"
            return "$status"
        fi
        # A name that matches nothing would pass silently: demand one test.
        grep -q '^test result: ok\. 1 passed' "$log" || {
            echo "XXX miri: no test named $t ran in $set"
            return 1
        }
        echo "miri: ok $set $t ($((SECONDS - start))s)"
    done <<<"$MIRI_NARROW_TESTS"
    rm -f "$log"
}

step_miri() {
    header "miri: install"
    install_miri
    if [ -n "$MIRI_SKIP_REASON" ]; then
        banner "MIRI WAS NOT RUN UNDER --cfg masstree_narrow." \
            "Reason: $MIRI_SKIP_REASON" \
            "The narrow words were NOT checked for undefined behaviour in this run."
        WARNINGS+=("miri (narrow): $MIRI_SKIP_REASON")
        return 0
    fi
    cargo +nightly miri --version
    run_step "miri (--cfg masstree_narrow): $(grep -c '^lib ' <<<"$MIRI_NARROW_TESTS") unit tests, $(grep -vc '^lib ' <<<"$MIRI_NARROW_TESTS") integration tests on pool" narrow_miri
}

# ---------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------

ALL_STEPS="qemu targets build firmware oom narrow loom miri"
SELECTED="${*:-$ALL_STEPS}"
for s in $SELECTED; do
    case " $ALL_STEPS " in
        *" $s "*) ;;
        *)
            echo "ci/embedded.sh: unknown step '$s' (steps: $ALL_STEPS)" >&2
            exit 2
            ;;
    esac
done
if [ "$SELECTED" != "$ALL_STEPS" ]; then
    echo
    echo "NOTE: running only the selected steps: $SELECTED"
    WARNINGS+=("steps not selected on the command line: $(for s in $ALL_STEPS; do case " $SELECTED " in *" $s "*) ;; *) printf '%s ' "$s" ;; esac; done)")
fi

for s in $ALL_STEPS; do
    case " $SELECTED " in
        *" $s "*) "step_$s" ;;
    esac
done

# The EXIT trap prints the summary.
exit 0
