#!/usr/bin/env bash
# Syscalls, io_uring events, context switches and CPU per operation of a
# running server: `perf stat` on the server's process (tracepoints, so it
# needs root or perf_event_paranoid <= -1) while the generator runs one
# client doing OP N times. What docs/benchmarks.md's "budget" tables come
# from.
#
#   bash loadtest/opstat.sh PID PORT OP N [generator flags...]
#   bash loadtest/opstat.sh "$(pgrep -n ringftp)" 2121 noop 5000
#
# OP is one of the single-ops scenario's (noop, size, mdtm, pasv-retr,
# epsv-retr, list, stor; stor needs --user/--password of an account that may
# write /upload). Counts are per operation; the generator's own events are
# not counted (only the server's threads are), except kernel work the
# server's sends do on the generator's behalf on loopback (its io_uring
# task_add, for one).
set -euo pipefail
[[ $# -ge 4 ]] || { sed -n '2,16p' "$0"; exit 2; }
PID=$1; PORT=$2; OP=$3; N=$4; shift 4
HERE=$(cd "$(dirname "$0")" && pwd)
RINGFTP=${RINGFTP_BIN:-$HERE/../target/release/ringftp}
EV=syscalls:sys_enter_recvfrom,syscalls:sys_enter_sendto,syscalls:sys_enter_io_uring_enter
EV+=,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_accept4
EV+=,syscalls:sys_enter_socket,syscalls:sys_enter_bind,syscalls:sys_enter_listen,syscalls:sys_enter_close
EV+=,syscalls:sys_enter_sendfile64,syscalls:sys_enter_splice,syscalls:sys_enter_openat2
EV+=,syscalls:sys_enter_statx,syscalls:sys_enter_newfstat,syscalls:sys_enter_preadv2,syscalls:sys_enter_cachestat
EV+=,syscalls:sys_enter_setsockopt,syscalls:sys_enter_getsockopt,syscalls:sys_enter_write
EV+=,syscalls:sys_enter_futex,io_uring:io_uring_submit_req,io_uring:io_uring_task_add
EV+=,io_uring:io_uring_queue_async_work,context-switches,task-clock
OUT=$(mktemp)
trap 'rm -f "$OUT"' EXIT
perf stat -x, -e "$EV" -p "$PID" -o "$OUT" &
STAT=$!
sleep 0.5
"$RINGFTP" loadtest --target "127.0.0.1:$PORT" --scenario single-ops --ops "$OP" --requests "$N" "$@" 2>&1 \
    | grep -E '^request ' || true
sleep 0.3
kill -INT "$STAT"
wait "$STAT" 2>/dev/null || true
# task-clock is in ms: per op it is the server's CPU ms per operation.
awk -F, -v n="$N" '/^[0-9.]/ && $1 > 0 {printf "%-40s %10.4f /op\n", $3, $1 / n}' "$OUT"
