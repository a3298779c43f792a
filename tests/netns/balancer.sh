#!/usr/bin/env bash
# The routed test network of the scale-out tests (tests/scale_out.rs) and
# benchmark (benches/scale_out.sh): clients on a front segment, a layer-4
# balancer (HAProxy, started by the test) that owns the VIP, and two
# ringftp nodes on a back segment, each in its own network namespace.
# Needs root (or CAP_NET_ADMIN + CAP_SYS_ADMIN) and iproute2.
#
#   balancer.sh up PREFIX
#   balancer.sh down PREFIX
#   balancer.sh gc              remove the sets of test processes that are gone
#
#   client 203.0.113.50        thief 203.0.113.66
#        |                          |
#   [ front: bridge, 203.0.113.0/24 ]
#        |
#   lb 203.0.113.10 (the VIP: HAProxy listens here)
#      192.0.2.1 (routes between the segments, no NAT)
#        |
#   [ back: bridge, 192.0.2.0/24 ]
#        |                          |
#   node1 192.0.2.11           node2 192.0.2.12
#
# The nodes' default route is the balancer, so an active-mode (PORT/EPRT)
# data connection leaves a node as a plain routed connection to the
# client, and a client can reach a node directly (the forged-header test).
# Nothing is connected to the host's namespace; only documentation ranges
# (RFC 5737) are used. `up` removes what it made if any step fails.
set -euo pipefail

roles=(front back lb client thief node1 node2)

die() {
    echo "balancer.sh: $*" >&2
    exit 2
}

down() {
    local prefix=$1 role ns pid
    for role in "${roles[@]}"; do
        ns="$prefix-$role"
        [ -e "/run/netns/$ns" ] || continue
        # Anything a test left running in there (HAProxy, a node), by pid.
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/etc/netns/$ns"
    done
}

# Removes the namespaces of earlier runs whose test process (the pid in
# rs<pid>-<n>) no longer exists.
gc() {
    local f name pid
    for f in /run/netns/rs*-*-front; do
        [ -e "$f" ] || continue
        name=${f#/run/netns/}
        pid=${name#rs}
        pid=${pid%%-*}
        [[ $pid =~ ^[0-9]+$ ]] || continue
        [ -d "/proc/$pid" ] && continue
        down "${name%-front}"
    done
}

# A veth between $1:$2 and $3:$4, created inside the namespaces.
link() {
    ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
    ip -n "$1" link set "$2" up
    ip -n "$3" link set "$4" up
}

up() {
    local n=$1 role
    command -v ip >/dev/null || die "ip (iproute2) is not installed"
    [ "$(id -u)" = 0 ] || die "must run as root to create network namespaces (uid $(id -u))"
    building=$n
    trap 'down "$building"' EXIT
    trap 'exit 130' INT TERM
    for role in "${roles[@]}"; do
        ip netns add "$n-$role" || die "cannot create network namespace $n-$role (ip netns add failed: namespaces forbidden here?)"
        ip -n "$n-$role" link set lo up
        # No DNS: a nameserver on the namespace's own loopback refuses at
        # once (see topology.sh).
        mkdir -p "/etc/netns/$n-$role"
        echo "nameserver 127.0.0.1" >"/etc/netns/$n-$role/resolv.conf"
    done
    ip netns exec "$n-lb" sysctl -qw net.ipv4.ip_forward=1
    for sw in front back; do
        ip -n "$n-$sw" link add br0 type bridge
        ip -n "$n-$sw" link set br0 up
    done
    local host
    for host in lb client thief; do
        link "$n-front" "p-$host" "$n-$host" eth0
        ip -n "$n-front" link set "p-$host" master br0
    done
    for host in lb node1 node2; do
        local dev=eth0
        [ "$host" = lb ] && dev=eth1
        link "$n-back" "p-$host" "$n-$host" "$dev"
        ip -n "$n-back" link set "p-$host" master br0
    done
    ip -n "$n-lb" addr add 203.0.113.10/24 dev eth0
    ip -n "$n-lb" addr add 192.0.2.1/24 dev eth1
    ip -n "$n-client" addr add 203.0.113.50/24 dev eth0
    ip -n "$n-thief" addr add 203.0.113.66/24 dev eth0
    ip -n "$n-node1" addr add 192.0.2.11/24 dev eth0
    ip -n "$n-node2" addr add 192.0.2.12/24 dev eth0
    for host in client thief; do
        ip -n "$n-$host" route add default via 203.0.113.10
    done
    for host in node1 node2; do
        ip -n "$n-$host" route add default via 192.0.2.1
    done
    trap - EXIT INT TERM
    echo "balancer network $n up"
}

cmd=${1:-}
shift || true
case $cmd in
    up)
        (($#)) || die "up needs a PREFIX"
        up "$1"
        ;;
    down)
        (($#)) || die "down needs a PREFIX"
        down "$1"
        ;;
    gc) gc ;;
    *) die "usage: balancer.sh up PREFIX | down PREFIX | gc" ;;
esac
