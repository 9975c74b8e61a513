# shellcheck shell=bash
# Shared by ci/test.sh and ci/embedded.sh (sourced, not run): step timing,
# the loud banner for anything not checked, and the summary printed on exit.
# The sourcing script sets SCRIPT_NAME first.
# Functions below are called indirectly (run_step, trap):
# shellcheck disable=SC2317,SC2034

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
    echo "== $SCRIPT_NAME summary"
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
        echo "$SCRIPT_NAME: ALL STEPS OK (${#SUMMARY[@]} steps, ${#WARNINGS[@]} not checked, total ${total}s)"
    else
        echo "$SCRIPT_NAME: FAILED at step '${CURRENT_STEP:-?}' (exit $status, total ${total}s)"
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
