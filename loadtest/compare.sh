#!/usr/bin/env bash
# loadtest/compare.sh: run the bundled load-test scenarios against ringftp and
# its peers (vsftpd, pure-ftpd, ProFTPD, pyftpdlib) on loopback, over the same
# prepared tree, with the same generator and the same parameters, and print one
# markdown table per scenario with the ratio to ringftp. See loadtest/COMPARE.md.
#
#   bash loadtest/compare.sh --quick          # small counts, about 4 minutes
#   bash loadtest/compare.sh                  # the issue's full targets, about 20 minutes
#   bash loadtest/compare.sh --check          # install + prove each server serves (curl)
#   bash loadtest/compare.sh --scenarios single-ops,small-uploads,mirror-50,mirror-200
#                                             # the latency cases (issues 11 and 15)
#   bash loadtest/compare.sh --tls ...        # the same over FTPS (ringftp, vsftpd, ProFTPD)
#
# Everything binds to 127.0.0.1; every server it starts is stopped again (its
# whole process tree), after each run and on error, Ctrl-C or SIGTERM.
set -euo pipefail
umask 022

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
CACHE=${RINGFTP_COMPARE_CACHE:-$HERE/.peers}   # downloads + unpacked peers (gitignored)
PYFTPDLIB_VERSION=${PYFTPDLIB_VERSION:-2.2.0}

# --------------------------------------------------------------------------
# flags
# --------------------------------------------------------------------------
MODE=full
SERVERS_ALL="ringftp vsftpd pure-ftpd proftpd pyftpdlib"
SERVERS=$SERVERS_ALL
SCENARIOS=""
OUT=""
UPLOAD_TRASH=""   # where reset_upload_dir moves uploaded files (removed at exit)
UPLOAD_RESETS=0
ACTION=compare
BUILD=1
BASE_PORT=2121
IDLE_FORKING_MAX=""
ROUNDS_FLAG=""
TREE=""
TLS=0
SERVERS_SET=0
ORIG_ARGS=("$@")   # for the re-run inside a network namespace (RINGFTP_COMPARE_MTU)

usage() {
    cat <<EOF
usage: bash loadtest/compare.sh [--quick] [options]

  --quick                 small counts and durations (whole run about 4 minutes)
  --full                  the issue's targets (the default; about 20 minutes)
  --servers LIST          comma-separated subset of: ${SERVERS_ALL// /,}
  --scenarios LIST        comma-separated subset of the cases (see COMPARE.md):
                          login-storm,login-storm-big,mirror,bigfile,listing,idle,upload,
                          single-ops,small-uploads,mirror-50,mirror-200
  --out DIR               run directory (default loadtest/out/compare-DATE)
  --tree DIR              serve this already-prepared tree instead of preparing one
  --base-port P           control ports P..P+5, default 2121
  --idle-forking-max N    cap on idle sessions for forking peers (one or two
                          processes per session), default 2000 (full), 500 (quick)
  --rounds N              run every case N times (servers interleaved) and keep
                          each server's median; default 1, bigfile 3 (quick 2),
                          single-ops and small-uploads 5 (quick 3), mirror-50 and
                          mirror-200 3 (quick 2)
  --tls                   FTPS: every server with a throwaway certificate (vsftpd
                          ssl_enable=YES, ProFTPD mod_tls; session reuse required
                          everywhere), the generator with --tls explicit, curl
                          with --ssl-reqd; servers default to ringftp,vsftpd,proftpd
  --baseline BIN          also run BIN (another ringftp build) as server
                          "ringftp-base", interleaved with the others: before
                          and after a change in one run
  --no-build              do not run cargo build --release
  --install-only          fetch and unpack the peers, then exit
  --check                 start each server, prove anonymous RETR + LIST over
                          EPSV and PASV with curl, and (in its writable set-up)
                          a STOR into /upload; stop it, exit
  --serve SERVER          start one server (or "ceiling") on its port and wait
                          (Ctrl-C stops it)
  -h, --help              this text
EOF
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) MODE=quick ;;
        --full) MODE=full ;;
        --servers) SERVERS=${2//,/ }; SERVERS_SET=1; shift ;;
        --scenarios) SCENARIOS=${2//,/ }; shift ;;
        --out) OUT=$2; shift ;;
        --tree) TREE=$2; shift ;;
        --base-port) BASE_PORT=$2; shift ;;
        --idle-forking-max) IDLE_FORKING_MAX=$2; shift ;;
        --rounds) ROUNDS_FLAG=$2; shift ;;
        --no-build) BUILD=0 ;;
        --tls) TLS=1 ;;
        --baseline) BASELINE=$2; shift ;;
        --install-only) ACTION=install ;;
        --check) ACTION=check ;;
        --serve) ACTION=serve; SERVE_ONE=$2; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "compare.sh: unknown flag '$1' (see --help)" >&2; exit 2 ;;
    esac
    shift
done
# --baseline BIN adds "ringftp-base" (that binary) right after ringftp: a
# before/after comparison interleaved in the same run as the peers.
if [[ -n ${BASELINE:-} ]]; then
    [[ -x $BASELINE ]] || { echo "compare.sh: --baseline $BASELINE is not an executable" >&2; exit 2; }
    BASELINE=$(realpath "$BASELINE")
    SERVERS_ALL+=" ringftp-base"
    if [[ " $SERVERS " != *" ringftp-base "* ]]; then
        SERVERS=$(for s in $SERVERS; do echo -n "$s "; if [[ $s == ringftp ]]; then echo -n "ringftp-base "; fi; done)
        SERVERS=${SERVERS% }
    fi
fi
for s in $SERVERS; do
    [[ " $SERVERS_ALL " == *" $s "* ]] || { echo "compare.sh: unknown server '$s' (one of: $SERVERS_ALL)" >&2; exit 2; }
done
if [[ -n ${SERVE_ONE:-} && " $SERVERS_ALL ceiling " != *" $SERVE_ONE "* ]]; then
    echo "compare.sh: unknown server '$SERVE_ONE' (one of: $SERVERS_ALL ceiling)" >&2; exit 2
fi

# Each case is a bundled scenario run at scale $MODE: the clients, durations
# and timeouts of each scale live in the scenario files (loadtest/*.toml,
# [scale.quick] and [scale.full]). What stays here is the tree to serve, the
# rounds of bigfile, and the cap on idle sessions for forking peers.
if [[ $MODE == full ]]; then
    TREE_ARGS="--files 10000"; TREE_DESC="ringftp loadtest prepare --files 10000: ~1.8 GiB mirror, /listing 10,000 entries, /bigfile 1 GiB"
    BIGFILE_ROUNDS=${ROUNDS_FLAG:-3}; IDLE_FORKING_MAX=${IDLE_FORKING_MAX:-2000}
else
    TREE_ARGS="--files 1000 --bigfile 512MiB"; TREE_DESC="ringftp loadtest prepare --files 1000 --bigfile 512MiB: /listing 10,000 entries"
    BIGFILE_ROUNDS=${ROUNDS_FLAG:-2}; IDLE_FORKING_MAX=${IDLE_FORKING_MAX:-500}
fi
CASES_ALL="login-storm login-storm-big mirror bigfile listing idle upload single-ops small-uploads mirror-50 mirror-200"
CASES=${SCENARIOS:-$CASES_ALL}
for c in $CASES; do
    [[ " $CASES_ALL " == *" $c "* ]] || { echo "compare.sh: unknown scenario '$c' (one of: $CASES_ALL)" >&2; exit 2; }
done
# Rounds of each case (servers interleaved within a round); the tables keep
# each server's median. The latency cases run several by default: on a shared
# machine one round says little about a 0.1 ms difference or a p99.9.
case_rounds() { # CASE -> rounds
    if [[ -n $ROUNDS_FLAG ]]; then echo "$ROUNDS_FLAG"; return; fi
    case $1 in
        bigfile) echo "$BIGFILE_ROUNDS" ;;
        single-ops | small-uploads) if [[ $MODE == full ]]; then echo 5; else echo 3; fi ;;
        mirror-50 | mirror-200) if [[ $MODE == full ]]; then echo 3; else echo 2; fi ;;
        *) echo 1 ;;
    esac
}
# mirror-50 and mirror-200 at full scale: this long a round (quick: the
# mirror scenario's quick duration).
MIRROR_N_DURATION=${RINGFTP_COMPARE_MIRROR_DURATION:-15s}
# ... and, when set, open loop at this many requests a second: every
# server gets the same offered load, so their tails compare like for like
# (closed loop, a server that answers faster is sent more work).
MIRROR_N_RATE=${RINGFTP_COMPARE_MIRROR_RATE:-}
# The cases that upload: every server runs in its writable set-up for them
# (see "Writable set-up" in COMPARE.md), and each run starts with an empty
# /upload. A server listed in NO_WRITE runs single-ops without its STOR and
# skips small-uploads, with the reason in the table.
WRITE_CASES="single-ops small-uploads"
declare -A NO_WRITE=()
for s in ${RINGFTP_COMPARE_NO_WRITE:-}; do NO_WRITE[$s]="not writable here (RINGFTP_COMPARE_NO_WRITE)"; done
WRITABLE=0   # set while a write case runs: cmd_NAME then starts the writable set-up
# ringftp has no anonymous uploads: the write cases log in to this account
# (home = the tree, list/read/write), made with `ringftp passwd`.
BENCH_USER=bench
BENCH_PASSWORD=bench-compare-pw
GEN_EXTRA=${RINGFTP_COMPARE_GEN_ARGS:-}   # extra generator flags for every run (e.g. --cores 1)
# --tls: FTPS everywhere. pure-ftpd's and pyftpdlib's TLS need rebuilding or
# extra Python packages, so the default set is the three with TLS at hand.
CURL_TLS=()
if [[ $TLS == 1 ]]; then
    GEN_EXTRA+=" --tls explicit --tls-insecure"
    CURL_TLS=(--ssl-reqd --insecure)
    if [[ $SERVERS_SET == 0 ]]; then SERVERS="ringftp${BASELINE:+ ringftp-base} vsftpd proftpd"; fi
fi
# CPU placement (taskset lists, e.g. 0 and 1): every server, and the generator
# plus curl, confined to their own CPUs. Unset: the kernel places everything.
SERVER_CPUS=${RINGFTP_COMPARE_SERVER_CPUS:-}
GEN_CPUS=${RINGFTP_COMPARE_GEN_CPUS:-}
# RINGFTP_COMPARE_MTU=N: run every server, the generator and curl in a
# private network namespace (unshare --net, root) whose loopback has MTU N,
# for example 1500 as on Ethernet. The host's loopback has a 64 KiB MTU, and
# there a client's receive-window autotuning can stall against a zero-copy
# sender (docs/benchmarks.md, "Fifth pass"); an Ethernet-sized MTU measures
# the servers as a network would carry them. Unset: the host's loopback.
MTU=${RINGFTP_COMPARE_MTU:-}
if [[ -n $MTU ]]; then
    # 68: below it the kernel takes IPv4 off the interface (RFC 791's
    # minimum); 65536: the loopback's own maximum.
    if ! [[ $MTU =~ ^[0-9]{1,6}$ ]] || ((10#$MTU < 68 || 10#$MTU > 65536)); then
        echo "compare.sh: RINGFTP_COMPARE_MTU must be a number of bytes from 68 to 65536, not '$MTU'" >&2; exit 2
    fi
    MTU=$((10#$MTU))   # no leading zero for ip(8) to read as octal
fi
SERVER_TASKSET=(); GEN_TASKSET=()
if [[ -n $SERVER_CPUS ]]; then SERVER_TASKSET=(taskset -c "$SERVER_CPUS"); fi
if [[ -n $GEN_CPUS ]]; then GEN_TASKSET=(taskset -c "$GEN_CPUS"); fi

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${OUT:-$HERE/out/compare-$STAMP}
mkdir -p "$OUT"/logs "$OUT"/json "$OUT"/conf
OUT=$(cd "$OUT" && pwd)
if [[ $TLS == 1 && ! -s $OUT/conf/tls-cert.pem ]]; then
    # One throwaway self-signed RSA certificate for every server (ProFTPD's
    # and vsftpd's RSA certificate settings; the generator and curl do not
    # verify it: --tls-insecure, --insecure).
    openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=127.0.0.1" \
        -keyout "$OUT/conf/tls-key.pem" -out "$OUT/conf/tls-cert.pem" >"$OUT/logs/openssl.log" 2>&1 \
        || { echo "compare.sh: openssl could not make the --tls certificate (see $OUT/logs/openssl.log)" >&2; exit 1; }
    chmod 644 "$OUT/conf/tls-cert.pem" "$OUT/conf/tls-key.pem"
fi
RINGFTP=${RINGFTP_BIN:-$REPO/target/release/ringftp}   # the binary: server and generator

log() { printf '%s\n' "$*" >&2; }
die() { printf 'compare.sh: %s\n' "$*" >&2; exit 1; }

# Ports: one control port and one disjoint passive range per server, all
# below the kernel's ephemeral range (32768-60999 by default) so that no
# passive port collides with a client's ephemeral port. pure-ftpd caps its
# clients at half its passive range (a 1,000-port range means 500 clients),
# so it gets 12,000 ports for the 5,000-client storm.
declare -A PORT PASV_LO PASV_HI
i=0
for s in ringftp vsftpd pure-ftpd proftpd pyftpdlib ceiling ringftp-base; do PORT[$s]=$((BASE_PORT + i)); i=$((i + 1)); done
PASV_LO[pure-ftpd]=10000; PASV_HI[pure-ftpd]=21999
PASV_LO[ringftp]=22000;   PASV_HI[ringftp]=23999
PASV_LO[ringftp-base]=24000; PASV_HI[ringftp-base]=25999
PASV_LO[vsftpd]=26000;    PASV_HI[vsftpd]=27999
PASV_LO[proftpd]=28000;   PASV_HI[proftpd]=29999
PASV_LO[pyftpdlib]=30000; PASV_HI[pyftpdlib]=31999
PASV_LO[ceiling]=32000;   PASV_HI[ceiling]=32099
read -r EPH_LO EPH_HI </proc/sys/net/ipv4/ip_local_port_range
if (( EPH_LO <= 32099 )); then
    echo "compare.sh: warning: the ephemeral port range $EPH_LO-$EPH_HI overlaps the passive ranges (10000-32099)" >&2
fi
declare -A FORKING=([vsftpd]=1 [pure-ftpd]=1 [proftpd]=1)

# --------------------------------------------------------------------------
# stopping what we start
# --------------------------------------------------------------------------
# Each server runs under setsid: its PID is its process group and session id.
# Stopping = SIGTERM to the group and to every process of the server (see
# server_procs), then SIGKILL to whatever is left after 5 s.
declare -A RUNNING=()   # pid -> name
GEN_PID=""

# Live (non-zombie) processes of the server started as PID: those in its
# session, and every descendant by parent links (vsftpd's session processes
# call setsid and leave the session; after the parent dies they would be
# reparented, so they are collected while it lives).
server_procs() { # PID -> pids, one a line
    python3 - "$1" <<'PY'
import os, sys
root = int(sys.argv[1]); kids, sid = {}, {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        t = open(f"/proc/{d}/stat").read()
    except OSError:
        continue
    f = t[t.rfind(")") + 2:].split()        # state ppid pgrp session ...
    if f[0] in "ZX":
        continue
    kids.setdefault(int(f[1]), []).append(int(d)); sid[int(d)] = int(f[3])
out = {p for p, s in sid.items() if s == root}
todo = [root]
while todo:
    p = todo.pop()
    if p in sid:
        out.add(p)
    todo += [k for k in kids.get(p, []) if k not in out]
if out:
    print("\n".join(str(p) for p in sorted(out)))
PY
}

stop_server() { # PID
    local pid=$1 name=${RUNNING[$1]:-?} n p procs
    procs=$(server_procs "$pid")
    kill -TERM -- "-$pid" 2>/dev/null || true
    for p in $procs; do kill -TERM "$p" 2>/dev/null || true; done
    for n in $(seq 50); do
        procs=$(server_procs "$pid"; for p in $procs; do awk '$3 !~ /[ZX]/ {print $1}' "/proc/$p/stat" 2>/dev/null; done; true)
        [[ -z $procs ]] && break
        sleep 0.1
    done
    if [[ -n $procs ]]; then
        kill -KILL -- "-$pid" 2>/dev/null || true
        for p in $procs; do kill -KILL "$p" 2>/dev/null || true; done
        sleep 0.2
    fi
    wait "$pid" 2>/dev/null || true
    local left
    left=$(server_procs "$pid" | xargs)
    [[ -z $left ]] || log "  warning: $name (pid $pid) left processes: $left"
    if [[ -n ${CGROUP[$pid]:-} ]]; then
        rmdir "${CGROUP[$pid]}" 2>/dev/null || log "  warning: could not remove cgroup ${CGROUP[$pid]}"
        unset "CGROUP[$pid]"
    fi
    unset "RUNNING[$pid]"
}

cleanup() {
    local rc=$?
    set +e   # stop everything, whatever fails on the way
    trap - EXIT INT TERM
    if [[ -n $GEN_PID ]]; then kill -TERM "$GEN_PID" 2>/dev/null || true; wait "$GEN_PID" 2>/dev/null || true; fi
    local p
    for p in "${!RUNNING[@]}"; do stop_server "$p"; done
    if [[ -n $UPLOAD_TRASH ]]; then rm -rf -- "$UPLOAD_TRASH"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# --------------------------------------------------------------------------
# installing the peers side by side (no dpkg -i: they conflict)
# --------------------------------------------------------------------------
PEER_ROOT=$CACHE/root
PEER_LIBS=$PEER_ROOT/usr/lib/x86_64-linux-gnu:$PEER_ROOT/lib/x86_64-linux-gnu
PEER_DEBS="vsftpd pure-ftpd proftpd-core"
# Shared libraries the three binaries link that a bare Debian 12 lacks
# (ldd is checked after unpacking and names anything still missing).
LIB_DEBS="libwrap0 libhiredis0.14 libmemcached11 libmemcachedutil2 libhashkit2 libpcre2-posix3"

apt_download() { # PKG... -> .deb files in $CACHE/debs
    mkdir -p "$CACHE/debs"
    ( cd "$CACHE/debs" && apt-get -q -o APT::Sandbox::User=root download "$@" ) >>"$CACHE/install.log" 2>&1 && return 0
    log "  apt-get download failed; running apt-get update once and retrying"
    apt-get -q update >>"$CACHE/install.log" 2>&1 || true
    ( cd "$CACHE/debs" && apt-get -q -o APT::Sandbox::User=root download "$@" ) >>"$CACHE/install.log" 2>&1 \
        || die "apt-get download $* failed (see $CACHE/install.log)"
}

install_peers() {
    mkdir -p "$CACHE"
    command -v curl >/dev/null || { apt-get -q update >/dev/null 2>&1; apt-get -q install -y curl >/dev/null || die "cannot install curl"; }
    if [[ ! -x $PEER_ROOT/usr/sbin/vsftpd || ! -x $PEER_ROOT/usr/sbin/pure-ftpd || ! -x $PEER_ROOT/usr/sbin/proftpd ]]; then
        log "fetching Debian packages into $CACHE/debs: $PEER_DEBS $LIB_DEBS"
        apt_download $PEER_DEBS $LIB_DEBS
        mkdir -p "$PEER_ROOT"
        local d
        for d in "$CACHE"/debs/*.deb; do dpkg -x "$d" "$PEER_ROOT"; done
    fi
    # --tls: ProFTPD's mod_tls lives in proftpd-mod-crypto.
    if [[ $TLS == 1 && ! -f $PEER_ROOT/usr/lib/proftpd/mod_tls.so ]]; then
        log "fetching proftpd-mod-crypto (mod_tls) into $CACHE/debs"
        apt_download proftpd-mod-crypto
        dpkg -x "$(ls -t "$CACHE"/debs/proftpd-mod-crypto_*.deb | head -1)" "$PEER_ROOT"
    fi
    local b missing
    for b in vsftpd pure-ftpd proftpd; do
        missing=$(LD_LIBRARY_PATH=$PEER_LIBS ldd "$PEER_ROOT/usr/sbin/$b" | awk '/not found/{print $1}' | tr '\n' ' ')
        [[ -z $missing ]] || die "$b still lacks shared libraries: $missing(fetch their packages into $CACHE/debs and unpack with dpkg -x $PEER_ROOT)"
    done
    # the pinned version, from the cache (a pyftpdlib elsewhere on the machine
    # would otherwise be picked up)
    if ! PYTHONPATH=$CACHE/python python3 -c '
import sys, pyftpdlib
sys.exit(not (pyftpdlib.__ver__ == sys.argv[1] and pyftpdlib.__file__.startswith(sys.argv[2])))' \
            "$PYFTPDLIB_VERSION" "$CACHE/python/" 2>/dev/null; then
        log "installing pyftpdlib==$PYFTPDLIB_VERSION into $CACHE/python"
        python3 -m pip install -q --disable-pip-version-check --target "$CACHE/python" "pyftpdlib==$PYFTPDLIB_VERSION" \
            >>"$CACHE/install.log" 2>&1 || die "pip install pyftpdlib failed (see $CACHE/install.log)"
    fi
}

deb_version() { dpkg-deb -f "$(ls "$CACHE"/debs/"$1"_*.deb | head -1)" Version; }

server_version() {
    case $1 in
        ringftp) "$RINGFTP" --version 2>/dev/null | head -1 || echo "ringftp (not built)" ;;
        ringftp-base) echo "$("$BASELINE" --version 2>/dev/null | head -1) (--baseline $BASELINE)" ;;
        vsftpd) echo "vsftpd $(deb_version vsftpd) (Debian 12)" ;;
        pure-ftpd) echo "pure-ftpd $(deb_version pure-ftpd) (Debian 12)" ;;
        proftpd) echo "proftpd $(deb_version proftpd-core) (Debian 12)" ;;
        pyftpdlib) echo "pyftpdlib $(PYTHONPATH=$CACHE/python python3 -c 'import pyftpdlib; print(pyftpdlib.__ver__)') (PyPI, python $(python3 -c 'import platform; print(platform.python_version())'))" ;;
        ceiling) echo "loadtest/sendfile_ceiling.py (blocking os.sendfile loop)" ;;
    esac
}

# --------------------------------------------------------------------------
# the tree every server serves
# --------------------------------------------------------------------------
prepare_tree() {
    if [[ -n $TREE ]]; then
        [[ -d $TREE ]] || die "--tree $TREE is not a directory"
        TREE=$(cd "$TREE" && pwd); lock_tree
        # Describe what is served (the default description is of the tree
        # this script prepares); a re-run in a network namespace is handed
        # the outer run's description.
        TREE_DESC=${RINGFTP_COMPARE_TREE_DESC:-"given with --tree: $(find "$TREE" -type f | wc -l) files, $(du -sh --apparent-size "$TREE" | cut -f1)"}
        return
    fi
    TREE=$HERE/out/tree-$MODE
    lock_tree   # before a stale tree is removed and prepared again
    local stampf=$TREE/.compare-stamp want
    want="$TREE_ARGS $(cd "$REPO" && git log -1 --format=%h -- src/loadgen/prepare.rs 2>/dev/null)"
    if [[ -f $stampf && $(cat "$stampf") == "$want" ]]; then
        log "reusing prepared tree $TREE"; return
    fi
    rm -rf "$TREE"; mkdir -p "$TREE"
    log "preparing tree: ringftp loadtest prepare --dir $TREE $TREE_ARGS"
    # shellcheck disable=SC2086
    if ! "$RINGFTP" loadtest prepare --dir "$TREE" $TREE_ARGS >"$OUT/logs/prepare.log" 2>&1; then
        die "ringftp loadtest prepare failed: $(tail -3 "$OUT/logs/prepare.log")"
    fi
    printf '%s\n' "$want" >"$stampf"
}

# One comparison at a time per tree: two would move each other's uploads
# aside (reset_upload_dir), or prepare the tree under each other, and share
# the CPUs, spoiling both. The lock (fd 9, a file beside the tree) is held
# until this process ends; the run inside the network namespace
# (RINGFTP_COMPARE_MTU) inherits it, the servers and the generator do not.
lock_tree() {
    [[ -n ${RINGFTP_COMPARE_IN_NETNS:-} ]] && return 0
    mkdir -p "$(dirname "$TREE")"
    local f
    f=$(dirname "$TREE")/.$(basename "$TREE").compare-lock
    # (Not `exec 9>>f 2>/dev/null`: exec would keep stderr on /dev/null.)
    if ! (: >>"$f") 2>/dev/null; then
        log "warning: cannot create $f: not guarding $TREE against a second comparison"
        return 0
    fi
    exec 9>>"$f"
    flock -n 9 || die "another compare.sh is using $TREE (its uploads and timings would mix with this run's); wait for it to finish, or give this one another --tree"
}

# Every component from / down to the tree must be searchable by the peers'
# unprivileged users (nobody), and the tree must not be writable by them.
check_tree_access() {
    local d=$TREE
    while [[ $d != / ]]; do
        [[ $(( 0$(stat -c %a "$d") & 1 )) -eq 1 ]] || die "$d is not searchable by others (chmod o+x it): the peers drop to nobody"
        d=$(dirname "$d")
    done
}

# --------------------------------------------------------------------------
# starting servers
# --------------------------------------------------------------------------
# cmd_NAME writes the server's config into $OUT/conf and sets CMD to its command line.
cmd_ringftp() { ringftp_cmd ringftp "$RINGFTP"; }
# --baseline BIN: another ringftp build, the same flags, its own ports.
cmd_ringftp-base() { ringftp_cmd ringftp-base "$BASELINE"; }
ringftp_cmd() { # NAME BINARY
    local name=$1 bin=$2
    [[ -x $bin ]] || die "$bin is missing (cargo build --release)"
    CMD=("$bin" serve --listen "127.0.0.1:${PORT[$name]}" --root "$TREE" \
        --pasv-ports "${PASV_LO[$name]}-${PASV_HI[$name]}" --idle-timeout 3600 --log-level warn)
    if [[ $WRITABLE == 1 ]]; then
        local users=$OUT/conf/ringftp-users.toml hash
        if [[ ! -s $users ]]; then
            hash=$(printf '%s' "$BENCH_PASSWORD" | "$bin" passwd) || die "ringftp passwd failed"
            printf '[[user]]\nname = "%s"\npassword = "%s"\nhome = "/"\npermissions = ["list", "read", "write"]\n' \
                "$BENCH_USER" "$hash" >"$users"
        fi
        CMD+=(--users "$users")
    fi
    if [[ $TLS == 1 ]]; then CMD+=(--tls-cert "$OUT/conf/tls-cert.pem" --tls-key "$OUT/conf/tls-key.pem"); fi
}

cmd_vsftpd() {
    local conf=$OUT/conf/vsftpd.conf empty=$OUT/conf/vsftpd-empty write=NO
    if [[ $WRITABLE == 1 ]]; then conf=$OUT/conf/vsftpd-writable.conf; write=YES; fi
    mkdir -p "$empty"; chmod 755 "$empty"     # secure_chroot_dir: empty, root-owned, not writable by nobody
    cat >"$conf" <<EOF
# written by loadtest/compare.sh: anonymous $([[ $write == YES ]] && echo "with uploads into /upload (owned by ftp)" || echo read-only), loopback, standalone, foreground
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=${PORT[vsftpd]}
background=NO
anonymous_enable=YES
local_enable=NO
write_enable=$write
anon_upload_enable=$write
anon_umask=022
anon_mkdir_write_enable=NO
anon_other_write_enable=NO
anon_root=$TREE
no_anon_password=YES
ftp_username=ftp
nopriv_user=nobody
secure_chroot_dir=$empty
pasv_enable=YES
pasv_min_port=${PASV_LO[vsftpd]}
pasv_max_port=${PASV_HI[vsftpd]}
port_enable=YES
connect_from_port_20=NO
max_clients=20000
max_per_ip=20000
idle_session_timeout=3600
data_connection_timeout=3600
accept_timeout=60
connect_timeout=60
use_sendfile=YES
tcp_wrappers=NO
xferlog_enable=NO
syslog_enable=NO
dirmessage_enable=NO
hide_ids=NO
ls_recurse_enable=NO
vsftpd_log_file=$OUT/logs/vsftpd.xfer.log
EOF
    if [[ $TLS == 1 ]]; then
        cat >>"$conf" <<EOF
# --tls: FTPS, anonymous sessions too, data connections in TLS, session reuse
# required (require_ssl_reuse, vsftpd's default)
ssl_enable=YES
allow_anon_ssl=YES
force_anon_logins_ssl=YES
force_anon_data_ssl=YES
require_ssl_reuse=YES
ssl_tlsv1=YES
ssl_sslv2=NO
ssl_sslv3=NO
ssl_ciphers=HIGH
rsa_cert_file=$OUT/conf/tls-cert.pem
rsa_private_key_file=$OUT/conf/tls-key.pem
EOF
    fi
    with_ftp_user env LD_LIBRARY_PATH="$PEER_LIBS" "$PEER_ROOT/usr/sbin/vsftpd" "$conf"
}

cmd_proftpd() {
    local conf=$OUT/conf/proftpd.conf upload=""
    if [[ $WRITABLE == 1 ]]; then
        conf=$OUT/conf/proftpd-writable.conf
        upload="  # the writable set-up: anonymous STOR into /upload (owned by nobody), nothing else
  <Directory $TREE/upload>
    <Limit STOR>
      AllowAll
    </Limit>
  </Directory>"
    fi
    cat >"$conf" <<EOF
# written by loadtest/compare.sh: anonymous read-only, loopback, standalone, foreground (-n)
ServerName              "proftpd"
ServerType              standalone
DefaultAddress          127.0.0.1
SocketBindTight         on
UseIPv6                 off
Port                    ${PORT[proftpd]}
PassivePorts            ${PASV_LO[proftpd]} ${PASV_HI[proftpd]}
User                    nobody
Group                   nogroup
Umask                   022
MaxInstances            20000
TCPBacklog              255
UseReverseDNS           off
UseSendfile             on
# mod_delay pads every USER/PASS with a deliberate sleep (timing-attack
# defence); it would measure a sleep, not the server, so it is off.
DelayEngine             off
TimeoutLogin            300
TimeoutIdle             3600
TimeoutNoTransfer       3600
TimeoutStalled          3600
WtmpLog                 off
TransferLog             none
SystemLog               $OUT/logs/proftpd.system.log
PidFile                 $OUT/conf/proftpd.pid
ScoreboardFile          $OUT/conf/proftpd.scoreboard
ControlsEngine          off
RequireValidShell       off
AllowOverwrite          off
$(proftpd_tls)
<Anonymous $TREE>
  User                  nobody
  Group                 nogroup
  UserAlias             anonymous nobody
  UserAlias             ftp nobody
  RequireValidShell     off
  MaxClients            20000
  <Limit WRITE SITE_CHMOD>
    DenyAll
  </Limit>
$upload
</Anonymous>
EOF
    CMD=(env LD_LIBRARY_PATH="$PEER_LIBS" "$PEER_ROOT/usr/sbin/proftpd" -n -c "$conf")
}

# --tls: ProFTPD's mod_tls (a module of Debian's proftpd-core), session
# reuse required on data connections (its default).
proftpd_tls() {
    [[ $TLS == 1 ]] || return 0
    cat <<EOF
ModulePath              $PEER_ROOT/usr/lib/proftpd
LoadModule              mod_tls.c
TLSEngine               on
TLSRequired             on
TLSProtocol             TLSv1.2 TLSv1.3
TLSRSACertificateFile   $OUT/conf/tls-cert.pem
TLSRSACertificateKeyFile $OUT/conf/tls-key.pem
TLSLog                  $OUT/logs/proftpd.tls.log
EOF
}

# vsftpd and pure-ftpd log anonymous sessions in as the system user "ftp"
# (pure-ftpd serves that user's home directory; vsftpd chdirs to it before
# anon_root). This machine may have no such user, and the Debian packages'
# postinst would add one with home /srv/ftp. Instead of touching /etc/passwd,
# each runs in a private mount namespace where /etc/passwd is a copy with an
# "ftp" entry (uid/gid of nobody/nogroup, home = the tree). Nothing outside
# the server's namespace changes.
with_ftp_user() { # COMMAND... -> CMD wrapped
    local pw=$OUT/conf/passwd-with-ftp
    if [[ ! -f $pw ]]; then
        grep -v '^ftp:' /etc/passwd >"$pw"
        echo "ftp:x:65534:65534:ringftp compare anonymous:$TREE:/usr/sbin/nologin" >>"$pw"
        chmod 644 "$pw"
    fi
    CMD=(unshare --mount --propagation private -- /bin/sh -c 'mount --bind "$0" /etc/passwd && exec "$@"' "$pw" "$@")
}

cmd_pure-ftpd() {
    # -i: no anonymous uploads, except in the writable set-up (anonymous may
    # then STOR where the ftp user may write: /upload only)
    local noup=(-i)
    if [[ $WRITABLE == 1 ]]; then noup=(); fi
    with_ftp_user env LD_LIBRARY_PATH="$PEER_LIBS" "$PEER_ROOT/usr/sbin/pure-ftpd" \
        -S "127.0.0.1,${PORT[pure-ftpd]}" -p "${PASV_LO[pure-ftpd]}:${PASV_HI[pure-ftpd]}" \
        -e "${noup[@]}" -A -H -c 20000 -C 20000 -I 60 -L 100000:5 -f none -g "$OUT/conf/pure-ftpd.pid"
}

cmd_pyftpdlib() {
    CMD=(env PYTHONPATH="$CACHE/python" python3 "$HERE/pyftpdlib_peer.py" --listen "127.0.0.1:${PORT[pyftpdlib]}" \
        --root "$TREE" --pasv-ports "${PASV_LO[pyftpdlib]}-${PASV_HI[pyftpdlib]}" --log "$OUT/logs/pyftpdlib.log" \
        --max-cons 20000 --timeout 3600)
    if [[ $WRITABLE == 1 ]]; then CMD+=(--upload-dir "$TREE/upload"); fi
}

cmd_ceiling() {
    CMD=(python3 "$HERE/sendfile_ceiling.py" --listen "127.0.0.1:${PORT[ceiling]}" --root "$TREE" \
        --pasv-ports "${PASV_LO[ceiling]}-${PASV_HI[ceiling]}")
}

greets() { # PORT -> 0 when a connect gets a 220 greeting
    timeout 5 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        IFS= read -r -t 4 line <&3 || exit 1
        printf "QUIT\r\n" >&3
        [[ $line == 220* ]]' _ "$1" 2>/dev/null
}

# Each server runs in a cgroup of its own, made for the run: the generator
# (--server-pid) sees that the server is alone in it and reads its CPU from
# the cgroup, the kernel's exact sum over every process it ever had (a
# forking server's session processes included, whoever reaped them). cgroup
# v1's cpuacct where mounted, else cgroup v2; without either, the generator
# follows the /proc tree (see docs/benchmarks.md, "Server CPU").
CG_ROOT=""
if [[ -w /sys/fs/cgroup/cpuacct/cgroup.procs && -r /sys/fs/cgroup/cpuacct/cpuacct.usage ]]; then
    CG_ROOT=/sys/fs/cgroup/cpuacct
elif [[ -w /sys/fs/cgroup/cgroup.procs && -r /sys/fs/cgroup/cgroup.controllers ]]; then
    CG_ROOT=/sys/fs/cgroup
elif [[ -w /sys/fs/cgroup/unified/cgroup.procs ]]; then
    CG_ROOT=/sys/fs/cgroup/unified
fi
declare -A CGROUP=()   # pid -> cgroup dir

STARTED_PID=""
start_server() { # NAME LOGTAG -> sets STARTED_PID
    local name=$1 tag=${2:-$1} n
    if timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "${PORT[$name]}" 2>/dev/null; then
        log "  $name: 127.0.0.1:${PORT[$name]} is already in use by another process (--base-port moves every port)"
        return 1
    fi
    CMD=()
    cmd_"$name" || return 1
    local logf=$OUT/logs/$tag.server.log
    CMD=("${SERVER_TASKSET[@]}" "${CMD[@]}")
    printf '%q ' "${CMD[@]}" >"$OUT/conf/$name.cmdline"; echo >>"$OUT/conf/$name.cmdline"
    : >"$logf"
    # Each server gets its own session (setsid execs, so $! is the server's
    # PID = its process group = its session). vsftpd writes start-up errors
    # ("500 OOPS: ...") to fd 0, so fd 0 is the log file too.
    local cg=""
    if [[ -n $CG_ROOT ]]; then
        cg=$CG_ROOT/ringftp-compare-$$-$tag
        if mkdir -p "$cg" 2>/dev/null; then
            CMD=(/bin/sh -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "${CMD[@]}")
        else
            cg=""
        fi
    fi
    setsid "${CMD[@]}" 0>>"$logf" >>"$logf" 2>&1 9>&- &   # 9: the tree lock stays ours
    STARTED_PID=$!
    RUNNING[$STARTED_PID]=$name
    if [[ -n $cg ]]; then CGROUP[$STARTED_PID]=$cg; fi
    for n in $(seq 100); do
        if ! kill -0 "$STARTED_PID" 2>/dev/null; then
            local rc=0
            wait "$STARTED_PID" 2>/dev/null || rc=$?
            unset "RUNNING[$STARTED_PID]"
            [[ -s $logf ]] || echo "(exit $rc, no output; command line in $OUT/conf/$name.cmdline)" >>"$logf"
            log "  $name exited at start-up: $(tail -3 "$logf" | tr '\n' ' ')"
            return 1
        fi
        if greets "${PORT[$name]}" && kill -0 "$STARTED_PID" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    log "  $name: no 220 greeting on 127.0.0.1:${PORT[$name]} within 10 s: $(tail -3 "$logf" | tr '\n' ' ')"
    stop_server "$STARTED_PID"
    return 1
}

# --------------------------------------------------------------------------
# --check: anonymous RETR and LIST over EPSV and PASV, with curl
# --------------------------------------------------------------------------
check_server() { # NAME FILE DIR
    local name=$1 file=$2 dir=$3 url="ftp://127.0.0.1:${PORT[$1]}" ok=1 mode flags want got lines
    want=$(stat -c %s "$TREE/$file")
    for mode in epsv pasv; do
        flags=(--silent --show-error --max-time 60 --user anonymous:compare@example.org "${CURL_TLS[@]}")
        if [[ $mode == pasv ]]; then flags+=(--disable-epsv); fi
        got=$(curl "${flags[@]}" -o /dev/null -w '%{size_download}' "$url/$file" 2>>"$OUT/logs/check.$name.curl.log") || got="error"
        lines=$(curl "${flags[@]}" "$url/$dir/" 2>>"$OUT/logs/check.$name.curl.log" | wc -l) || lines=0
        if [[ $got == "$want" && $lines -gt 0 ]]; then
            log "  $name $mode: RETR /$file $got bytes ok, LIST /$dir/ $lines lines ok"
        else
            log "  $name $mode: FAILED: RETR /$file got '$got' of $want bytes, LIST /$dir/ $lines lines (see $OUT/logs/check.$name.curl.log)"
            ok=0
        fi
    done
    # the biggest directory (the listing scenario's): LIST returns one line an entry
    if [[ -n ${BIGDIR:-} ]]; then
        lines=$(curl --silent --show-error --max-time 120 --user anonymous:compare@example.org "${CURL_TLS[@]}" "$url/$BIGDIR/" 2>>"$OUT/logs/check.$name.curl.log" | wc -l) || lines=0
        if [[ $lines -ge $BIGDIR_N ]]; then log "  $name: LIST /$BIGDIR/ $lines lines for $BIGDIR_N entries ok"
        else log "  $name: FAILED: LIST /$BIGDIR/ $lines lines for $BIGDIR_N entries"; ok=0; fi
    fi
    [[ $ok == 1 ]]
}

run_check() {
    local file dir fails=0 s
    # a mid-size file and a directory from the tree
    file=$(cd "$TREE" && find . -type f -size +100k -size -20M ! -name '.*' | head -1); file=${file#./}
    dir=$(dirname "$file")
    [[ -n $file ]] || die "no file between 100 KiB and 20 MiB in $TREE"
    read -r BIGDIR_N BIGDIR < <(cd "$TREE" && find . -mindepth 1 -printf '%h\n' | sort | uniq -c | sort -rn | head -1)
    BIGDIR=${BIGDIR#./}; [[ $BIGDIR == . ]] && BIGDIR=""
    for s in $SERVERS ceiling; do
        log "$s: $(server_version "$s")"
        if ! start_server "$s" "check.$s"; then fails=$((fails + 1)); continue; fi
        local pid=$STARTED_PID
        if [[ $s == ceiling ]]; then
            # the ceiling speaks no LIST: RETR only
            local got
            got=$(curl --silent --max-time 60 -o /dev/null -w '%{size_download}' "ftp://127.0.0.1:${PORT[ceiling]}/$file" 2>&1) || got=error
            if [[ $got == $(stat -c %s "$TREE/$file") ]]; then log "  ceiling epsv: RETR /$file $got bytes ok"; else log "  ceiling: FAILED: got '$got'"; fails=$((fails + 1)); fi
        else
            check_server "$s" "$file" "$dir" || fails=$((fails + 1))
        fi
        log "  processes while idle: $(server_procs "$pid" | wc -l)"
        stop_server "$pid"
        log "  stopped; processes left: $(server_procs "$pid" | wc -l)"
    done
    # the writable set-up of the write cases: a 1 KiB STOR into /upload over
    # EPSV and PASV, as the login those cases use, compared byte for byte
    local up=$OUT/conf/check-upload.bin mode flags
    head -c 1024 /dev/urandom >"$up"
    WRITABLE=1
    for s in $SERVERS; do
        if [[ -n ${NO_WRITE[$s]:-} ]]; then log "$s writable: skipped (${NO_WRITE[$s]})"; continue; fi
        reset_upload_dir
        if ! start_server "$s" "check-write.$s"; then fails=$((fails + 1)); continue; fi
        local pid=$STARTED_PID user=anonymous:compare@example.org
        if [[ $s == ringftp* ]]; then user=$BENCH_USER:$BENCH_PASSWORD; fi
        for mode in epsv pasv; do
            flags=(--silent --show-error --max-time 30 --user "$user")
            if [[ $mode == pasv ]]; then flags+=(--disable-epsv); fi
            if curl "${flags[@]}" -T "$up" "ftp://127.0.0.1:${PORT[$s]}/upload/check-$mode.bin" 2>>"$OUT/logs/check.$s.curl.log" \
                && cmp -s "$up" "$TREE/upload/check-$mode.bin"; then
                log "  $s writable $mode: STOR /upload/check-$mode.bin 1024 bytes ok (as ${user%%:*})"
            else
                log "  $s writable $mode: FAILED: STOR /upload/check-$mode.bin as ${user%%:*} (see $OUT/logs/check.$s.curl.log)"
                fails=$((fails + 1))
            fi
        done
        stop_server "$pid"
        reset_upload_dir
    done
    WRITABLE=0
    [[ $fails == 0 ]] || die "$fails server(s) failed the check"
    log "all servers passed"
}

# ==========================================================================
main() {
    # ringftp against itself (--servers ringftp --baseline BIN: before and
    # after a change) needs no peer installed.
    local s peers=0
    for s in $SERVERS; do [[ $s == ringftp || $s == ringftp-base ]] || peers=1; done
    if [[ $peers == 1 || $ACTION != compare ]]; then install_peers; fi
    if [[ $ACTION == install ]]; then { log "peers installed under $CACHE"; exit 0; }; fi
    if [[ $BUILD == 1 ]]; then
        log "cargo build --release"
        (cd "$REPO" && cargo build --release -q) >"$OUT/logs/build.log" 2>&1 || die "cargo build --release failed: $(tail -5 "$OUT/logs/build.log")"
    fi
    prepare_tree
    check_tree_access
    if [[ -n $MTU && -z ${RINGFTP_COMPARE_IN_NETNS:-} ]]; then
        # Peers, build and tree are ready (they may need the network): the
        # rest runs again inside the namespace, into the same --out.
        [[ $(id -u) == 0 ]] || die "RINGFTP_COMPARE_MTU needs root (unshare --net)"
        command -v ip >/dev/null || die "RINGFTP_COMPARE_MTU needs ip (iproute2)"
        log "network namespace with loopback MTU $MTU (RINGFTP_COMPARE_MTU)"
        trap - EXIT
        exec env RINGFTP_COMPARE_IN_NETNS=1 RINGFTP_COMPARE_TREE_DESC="$TREE_DESC" unshare --net -- /bin/bash -c \
            'ip link set lo mtu "$1" up || exit 1; shift; exec /bin/bash "$@"' \
            _ "$MTU" "$HERE/compare.sh" "${ORIG_ARGS[@]}" --no-build --out "$OUT" --tree "$TREE"
    fi
    case $ACTION in
        check) run_check ;;
        serve)
            start_server "$SERVE_ONE" || die "$SERVE_ONE did not start"
            log "$SERVE_ONE (pid $STARTED_PID) on 127.0.0.1:${PORT[$SERVE_ONE]}, passive ${PASV_LO[$SERVE_ONE]}-${PASV_HI[$SERVE_ONE]}, tree $TREE; Ctrl-C stops it"
            wait "$STARTED_PID" || true ;;
        compare) run_compare ;;
    esac
}

# --------------------------------------------------------------------------
# the comparison
# --------------------------------------------------------------------------
# One case = one bundled scenario at one scale, run against every server with
# the same generator flags. MANIFEST has one line per (case, server) run for
# compare_report.py, which turns the JSON reports into the tables.
MANIFEST=""

manifest() { # CASE SCENARIO SERVER STATUS RC JSON CLIENTS NOTE (ROUND, CURL_MIB from the caller)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$@" "${round:-1}" "${curl_mib:-}" >>"$MANIFEST"
}

case_scenario() { # CASE -> the bundled scenario it runs
    case $1 in
        mirror-50 | mirror-200) echo mirror ;;
        *) echo "$1" ;;
    esac
}

# The single-ops mix without its STOR, for a server that cannot be made
# writable here.
READ_OPS=noop,size,mdtm,pasv-retr,epsv-retr,list

case_args() { # CASE SERVER -> generator flags: the scenario at this scale, and
              # the few things that depend on this machine or this server
    local args="--scenario $(case_scenario "$1") --scale $MODE"
    case $1 in
        # the same file list for every server: prepare's index.txt (a server
        # without MLSD, like vsftpd, would otherwise be walked differently)
        mirror) args+=" --files $TREE/index.txt" ;;
        # the mirror at a fixed number of clients, whatever the scale
        mirror-50 | mirror-200)
            args+=" --files $TREE/index.txt --clients ${1#mirror-}"
            if [[ $MODE == full ]]; then args+=" --duration $MIRROR_N_DURATION"; fi
            if [[ -n $MIRROR_N_RATE ]]; then args+=" --rate $MIRROR_N_RATE"; fi ;;
        # forking peers hold one or two processes a session
        idle) if [[ -n ${FORKING[${2:-}]:-} && $(scenario_plan "$1" clients) -gt $IDLE_FORKING_MAX ]]; then args+=" --clients $IDLE_FORKING_MAX"; fi ;;
        # uploads: ringftp's account; the peers upload as anonymous
        single-ops | small-uploads)
            if [[ ${2:-} == ringftp* ]]; then args+=" --user $BENCH_USER --password $BENCH_PASSWORD"; fi
            if [[ $1 == single-ops && -n ${NO_WRITE[${2:-}]:-} ]]; then args+=" --ops $READ_OPS"; fi ;;
    esac
    echo "$args"
}

scenario_plan() { # SCENARIO FIELD -> the field of the scenario's resolved plan at this scale
    "$RINGFTP" loadtest --scenario "$1" --scale "$MODE" --dry-run \
        | python3 -c 'import json, sys; v = json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$2"
}

case_plan() { # CASE SERVER FIELD -> the field of the plan the case's flags resolve to
    # shellcheck disable=SC2046
    "$RINGFTP" loadtest $(case_args "$1" "$2") --dry-run \
        | python3 -c 'import json, sys; v = json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else v)' "$3"
}

case_limit() { # CASE SERVER -> seconds the generator may run before it is killed
    local d
    d=$(case_plan "$1" "$2" duration_s)
    echo $(( ${d%.*} + 90 ))   # + connect/login ramp, the last replies, the report
}

# The write cases start every run with an empty /upload that the peers'
# unprivileged users (ftp = nobody, uid 65534) may write to, and empty it
# again after the run, so no server creates its files among another's.
# The files are moved aside, not deleted, until the comparison ends: on an
# ext4 without a journal, choosing an inode for a new file skips those
# freed in the last 30 s one by one (find_inode_bit, recently_deleted), so
# a STOR right after thousands of deletions measured that scan more than
# the server (docs/benchmarks.md, "Fourth pass").
reset_upload_dir() {
    local d=$TREE/upload
    mkdir -p "$d"
    if [[ -z $UPLOAD_TRASH ]]; then
        # Beside the tree, so the moves are renames on the same filesystem.
        UPLOAD_TRASH=$(mktemp -d "$(dirname "$TREE")/.compare-upload-trash.XXXXXX")
    fi
    UPLOAD_RESETS=$((UPLOAD_RESETS + 1))
    local aside=$UPLOAD_TRASH/$UPLOAD_RESETS
    mkdir "$aside"
    find "$d" -mindepth 1 -maxdepth 1 \( -name 'lg-*' -o -name 'check-*' \) \
        -exec mv -t "$aside" -- {} +
    chown 65534:65534 "$d" 2>/dev/null || chmod 1777 "$d"
    chmod o+rx "$d"
}

run_one() { # CASE SERVER ROUND
    local c=$1 s=$2 round=$3 clients args json glog rc pid limit tag
    args=$(case_args "$c" "$s")
    clients=$(case_plan "$c" "$s" clients)
    tag=$c.$s.r$round
    if [[ $c == small-uploads && -n ${NO_WRITE[$s]:-} ]]; then
        manifest "$c" "$c" "$s" skipped - - "$clients" "${NO_WRITE[$s]}"
        return
    fi
    if [[ " $WRITE_CASES " == *" $c "* ]]; then reset_upload_dir; fi
    json=$OUT/json/$tag.json
    glog=$OUT/logs/$tag.loadtest.log
    if ! start_server "$s" "$tag"; then
        manifest "$c" "$c" "$s" failed - - "$clients" "did not start: $(tail -2 "$OUT/logs/$tag.server.log" | tr '\t\n' '  ' | cut -c1-200)"
        return
    fi
    pid=$STARTED_PID
    limit=$(case_limit "$c" "$s")
    # The generator measures the server itself (--server-pid): CPU from the
    # server's cgroup (or its /proc tree) until the run's sessions have
    # closed, memory over the tree, and the sessions it really held.
    printf '%s\n' "${GEN_TASKSET[*]} $RINGFTP loadtest --target 127.0.0.1:${PORT[$s]} $args --json $json --server-pid $pid" >"$glog"
    # shellcheck disable=SC2086
    timeout -k 10 "$limit" "${GEN_TASKSET[@]}" "$RINGFTP" 9>&- loadtest --target "127.0.0.1:${PORT[$s]}" $args \
        --json "$json" --server-pid "$pid" $GEN_EXTRA </dev/null >>"$glog" 2>&1 &
    GEN_PID=$!
    rc=0; wait "$GEN_PID" || rc=$?
    GEN_PID=""
    # bigfile: an independent client cross-checks the generator's figure on
    # the same server, after the run: one curl download of the file
    local curl_mib=""
    if [[ $c == bigfile ]]; then
        curl_mib=$("${GEN_TASKSET[@]}" curl --silent --show-error --max-time 120 --user anonymous:compare@example.org "${CURL_TLS[@]}" \
            -o /dev/null -w '%{size_download} %{speed_download}' "ftp://127.0.0.1:${PORT[$s]}/$BIGFILE_PATH" 2>>"$OUT/logs/$tag.curl.log" \
            | awk -v want="$BIGFILE_BYTES" '$1 == want {printf "%.1f", $2 / 1048576}') || curl_mib=""
        log "  $(printf '%-10s' "$s") curl: ${curl_mib:-failed} MiB/s"
    fi
    stop_server "$pid"
    local note=""
    if [[ " $WRITE_CASES " == *" $c "* ]]; then
        reset_upload_dir
        if [[ -n ${NO_WRITE[$s]:-} ]]; then note="no STOR: ${NO_WRITE[$s]}"; fi
    fi
    if [[ $rc == 124 || $rc == 137 ]]; then note="${note:+$note; }generator killed after ${limit}s"; fi
    if [[ -s $json ]]; then
        manifest "$c" "$(case_scenario "$c")" "$s" ok "$rc" "$json" "$clients" "$note"
        log "  $(printf '%-10s' "$s") done (exit $rc)"
    else
        manifest "$c" "$(case_scenario "$c")" "$s" failed "$rc" - "$clients" "${note:-no JSON report: $(grep -v '^\s*$' "$glog" | tail -2 | tr '\t\n' '  ' | cut -c1-200)}"
        log "  $(printf '%-10s' "$s") FAILED (exit $rc): see $glog"
    fi
}

print_header() {
    local s
    echo "# ringftp comparison ($MODE)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(free -g | awk '/^Mem:/{print $2}') GiB, kernel $(uname -r)"
    echo "- ringftp commit: $(cd "$REPO" && git rev-parse --short HEAD)$(cd "$REPO" && git diff --quiet HEAD -- src || echo ' (uncommitted changes in src/)')"
    echo "- tree: $TREE ($TREE_DESC)"
    local writes="" w
    for w in $WRITE_CASES; do [[ " $CASES " == *" $w "* ]] && writes+="${writes:+ and }$w"; done
    echo "- every server on 127.0.0.1, anonymous read-only${writes:+ (for $writes: its writable set-up, see COMPARE.md)}, started fresh for each run; server CPU and memory measured by the generator (--server-pid): CPU $(if [[ -n $CG_ROOT ]]; then echo "from a cgroup of its own ($CG_ROOT), every process it ever had"; else echo "from the /proc tree (no writable cgroup here), reaped and reparented children included"; fi), from before the run until its sessions have closed; RSS/PSS summed over the process tree"
    echo "- servers:"
    for s in $SERVERS; do echo "  - $(server_version "$s"): 127.0.0.1:${PORT[$s]}, passive ${PASV_LO[$s]}-${PASV_HI[$s]}"; done
    if [[ " $CASES " == *" bigfile "* && $TLS == 0 ]]; then echo "  - $(server_version ceiling): 127.0.0.1:${PORT[ceiling]} (bigfile only)"; fi
    if [[ $TLS == 1 ]]; then echo "- FTPS (--tls): explicit AUTH TLS, PROT P, session reuse required by every server; one self-signed RSA-2048 certificate; ringftp $("$RINGFTP" serve --help >/dev/null 2>&1 && echo "with --tls-cert/--tls-key (kTLS probe result in its log)"), vsftpd ssl_enable=YES (OpenSSL), ProFTPD mod_tls (OpenSSL)"; fi
    local mtu
    mtu=$(ip -o link show lo 2>/dev/null | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
    echo "- network: $(if [[ -n ${RINGFTP_COMPARE_IN_NETNS:-} ]]; then echo "a private network namespace (RINGFTP_COMPARE_MTU) whose loopback has MTU ${mtu:-unknown}"; else echo "the host's loopback, MTU ${mtu:-unknown}"; fi)"
    echo "- CPU placement: $(if [[ -n $SERVER_CPUS$GEN_CPUS ]]; then echo "servers \`taskset -c ${SERVER_CPUS:-any}\`, generator and curl \`taskset -c ${GEN_CPUS:-any}\`"; else echo "none (the kernel places every process; ringftp pins its own shards, the generator is unpinned)"; fi)"
    echo "- generator: \`ringftp loadtest --target 127.0.0.1:PORT --server-pid PID --json FILE ARGS\`${GEN_EXTRA:+ plus \`$GEN_EXTRA\`}, ARGS per case:"
    local c
    for c in $CASES; do
        if [[ $c == upload ]]; then echo "  - upload: skipped (1 MiB uploads overwrite each client's file, which the anonymous peers may not do; small-uploads measures uploads)"; continue; fi
        echo "  - $c: \`$(case_args "$c" ringftp)\` ($(case_plan "$c" ringftp clients) clients$(d=$(case_plan "$c" ringftp duration_s); [[ -n $d ]] && echo ", at most $d s")$(n=$(case_plan "$c" ringftp requests); [[ -n $n ]] && echo ", $n requests"))$(r=$(case_rounds "$c"); ((r > 1)) && echo ", $r rounds, servers interleaved (each round starting one server later), median kept")$([[ " $WRITE_CASES " == *" $c "* ]] && echo "; ringftp logs in as \`$BENCH_USER\` (a users-file account, home = the tree), the peers as anonymous$( ((${#NO_WRITE[@]})) && echo "; without STOR: ${!NO_WRITE[*]}")")$([[ $c == bigfile ]] && echo "; after each round, one \`curl -o /dev/null -w %{speed_download} ftp://127.0.0.1:PORT/$BIGFILE_PATH\` cross-checks the generator")$([[ $c == idle && $(case_args idle vsftpd) == *--clients* ]] && echo " (forking peers: --clients $IDLE_FORKING_MAX, one or two processes a session)")"
    done
    echo
}

# One chart per case next to the report: every server's first round, latency
# over time and the percentile distribution (ringftp loadtest plot).
draw_charts() {
    mkdir -p "$OUT/charts"
    local c s files
    for c in $CASES; do
        files=()
        for s in $SERVERS ceiling; do
            [[ -s $OUT/json/$c.$s.r1.json ]] && files+=("$OUT/json/$c.$s.r1.json")
        done
        ((${#files[@]})) || continue
        "$RINGFTP" loadtest plot "${files[@]}" -o "$OUT/charts/$c.svg" >>"$OUT/logs/charts.log" 2>&1 \
            || log "  no chart for $c (see $OUT/logs/charts.log)"
    done
}

BIGFILE_PATH=bigfile   # what the bigfile scenario and its curl cross-check download
BIGFILE_BYTES=""

run_compare() {
    MANIFEST=$OUT/manifest.tsv
    if [[ -f $TREE/$BIGFILE_PATH ]]; then BIGFILE_BYTES=$(stat -c %s "$TREE/$BIGFILE_PATH"); fi
    : >"$MANIFEST"
    local c s
    print_header | tee "$OUT/header.md" >&2
    # bigfile: read the file once so every server serves it from the page cache
    if [[ -f $TREE/bigfile ]]; then cat "$TREE/bigfile" >/dev/null; fi
    for c in $CASES; do
        if [[ $c == upload ]]; then
            for s in $SERVERS; do
                manifest "$c" upload "$s" skipped - - - "1 MiB uploads overwrite each client's file, which the anonymous peers may not do (small-uploads measures uploads)"
            done
            continue
        fi
        local rounds r order
        rounds=$(case_rounds "$c")
        WRITABLE=0
        if [[ " $WRITE_CASES " == *" $c "* ]]; then WRITABLE=1; fi
        for r in $(seq "$rounds"); do
            log "== $c$( ((rounds > 1)) && echo " (round $r of $rounds)"): $(case_args "$c" ringftp)"
            # each round starts one server later, so no server always runs
            # first (or right after the same neighbour)
            read -ra order <<<"$SERVERS"
            local k n=${#order[@]}
            for ((k = 0; k < n; k++)); do run_one "$c" "${order[$(((k + r - 1) % n))]}" "$r"; done
            # The ceiling is plain FTP: nothing to compare with under --tls.
            if [[ $c == bigfile && $TLS == 0 ]]; then run_one "$c" ceiling "$r"; fi
        done
        WRITABLE=0
    done
    log "== charts"
    draw_charts
    log "== report"
    python3 "$HERE/compare_report.py" --header "$OUT/header.md" --charts "$OUT/charts" "$MANIFEST" >"$OUT/report.md" || die "compare_report.py failed"
    cat "$OUT/report.md"
    log "report: $OUT/report.md (charts in $OUT/charts, JSON reports in $OUT/json, logs in $OUT/logs)"
}

main
