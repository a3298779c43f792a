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

script=balancer.sh
# shellcheck source=tests/netns/lib.sh
. "$(dirname "$0")/lib.sh"

up() {
    local n=$1
    add_namespaces "$n"
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
    gc) gc rs front ;;
    *) die "usage: balancer.sh up PREFIX | down PREFIX | gc" ;;
esac
