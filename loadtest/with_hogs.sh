#!/usr/bin/env bash
# Runs a command with N CPU hogs (busy shell loops at nice 0) beside it, for
# latency under CPU contention (docs/benchmarks.md, fifteenth pass).
# Each hog is bounded by --max (default 900 s) and killed when the command ends.
# usage: bash loadtest/with_hogs.sh [--max SECONDS] N COMMAND [ARGS...]
set -u
max=900
if [[ ${1:-} == --max ]]; then max=$2; shift 2; fi
n=${1:?usage: with_hogs.sh [--max SECONDS] N COMMAND [ARGS...]}; shift
[[ $# -gt 0 ]] || { echo "with_hogs.sh: no command" >&2; exit 2; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null' EXIT
for _ in $(seq "$n"); do timeout "$max" sh -c 'while :; do :; done' & pids+=($!); done
"$@"
