#!/usr/bin/env bash
# The routed test network of the NAT and firewall tests (tests/nat.rs), built
# from Linux network namespaces, veth links, two bridges and nftables. Needs
# root (or CAP_NET_ADMIN + CAP_SYS_ADMIN), iproute2 and nftables.
#
#   topology.sh up PREFIX [--control-port N] [--pasv-ports LO-HI] [--active-sport any|N]
#   topology.sh down PREFIX
#   topology.sh gc              remove the sets of test processes that are gone
#
# `up` creates the namespaces PREFIX-<role> below (PREFIX is unique per run:
# the tests use rf<pid>-<n>), and removes everything it made if any step
# fails. Nothing is connected to the host's namespace, so no packet can
# leave the machine. Only documentation ranges are used (RFC 5737, 3849).
#
#           home 198.51.100.100                      out 203.0.113.50, 2001:db8:ff::50
#             |  (client behind NAT)                   |  (outside client)
#   198.51.100.0/24                                    |      thief 203.0.113.66
#             |                                        |        |  (third host)
#   cligw 198.51.100.1 | 203.0.113.20 ----- [ inet: the "internet" bridge ] --+
#     masquerade; drops unsolicited                    |   203.0.113.0/24, 2001:db8:ff::/64
#     inbound (a home router)                          |
#                                    srvgw 203.0.113.10, 2001:db8:ff::1 (wan0)
#                                      DNAT tcp to 203.0.113.10 -> 192.0.2.10
#                                      firewall: forward policy drop
#                                      masquerade outbound; 192.0.2.1, 2001:db8:10::1 (lan0)
#                                                      |
#                                    [ lansw: the server's LAN bridge ]  192.0.2.0/24, 2001:db8:10::/64
#                                         |                     |
#                                    srv 192.0.2.10          lan 192.0.2.100
#                                    2001:db8:10::10         (the server's LAN client)
#
# srvgw forwards every TCP port of its public address to the server (1:1
# NAT) and leaves the decision to its firewall, the forward chain, which lets
# through only: replies
# (ct established), ICMP, new connections to srv on the control port and the
# passive range (IPv4 through the DNAT, IPv6 routed), and new connections
# from the LAN out — from any source port with `--active-sport any` (the
# default), or only from that port (`--active-sport 20` for
# --active-port-20). No FTP conntrack helper is attached anywhere: the
# server has to get the addresses right by itself.
set -euo pipefail

roles=(inet lansw srvgw cligw srv lan home out thief)

script=topology.sh
# shellcheck source=tests/netns/lib.sh
. "$(dirname "$0")/lib.sh"

up() {
    local prefix=$1
    shift
    local control=21 pasv=50000-50003 active=any
    while (($#)); do
        case $1 in
            --control-port) control=$2 ;;
            --pasv-ports) pasv=$2 ;;
            --active-sport) active=$2 ;;
            *) die "unknown option $1" ;;
        esac
        shift 2 || die "$1 needs a value"
    done
    [[ $control =~ ^[0-9]+$ ]] || die "--control-port $control: not a port"
    [[ $pasv =~ ^[0-9]+-[0-9]+$ ]] || die "--pasv-ports $pasv: expected LO-HI"
    [[ $active == any || $active =~ ^[0-9]+$ ]] || die "--active-sport $active: any or a port"
    command -v nft >/dev/null || die "nft (nftables) is not installed"
    local n="$prefix" role
    add_namespaces "$n"
    for role in "${roles[@]}"; do
        # No duplicate address detection: addresses are usable at once.
        ip netns exec "$n-$role" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
    done
    for role in srvgw cligw; do
        ip netns exec "$n-$role" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    done
    for sw in inet lansw; do
        ip -n "$n-$sw" link add br0 type bridge
        ip -n "$n-$sw" link set br0 up
    done

    # The internet: routers' WAN sides, the outside client, the third host.
    local host
    for host in srvgw cligw out thief; do
        local port=p-$host
        if [ "$host" = srvgw ] || [ "$host" = cligw ]; then
            link "$n-inet" "$port" "$n-$host" wan0
        else
            link "$n-inet" "$port" "$n-$host" eth0
        fi
        ip -n "$n-inet" link set "$port" master br0
    done
    # The server's LAN.
    link "$n-lansw" p-srvgw "$n-srvgw" lan0
    link "$n-lansw" p-srv "$n-srv" eth0
    link "$n-lansw" p-lan "$n-lan" eth0
    for port in p-srvgw p-srv p-lan; do ip -n "$n-lansw" link set "$port" master br0; done
    # The client's home LAN: one cable to its router.
    link "$n-cligw" lan0 "$n-home" eth0

    addr() { ip -n "$n-$1" addr add "$3" dev "$2" ${4:+nodad}; }
    addr srvgw wan0 203.0.113.10/24
    addr srvgw wan0 2001:db8:ff::1/64 v6
    addr srvgw lan0 192.0.2.1/24
    addr srvgw lan0 2001:db8:10::1/64 v6
    addr cligw wan0 203.0.113.20/24
    addr cligw lan0 198.51.100.1/24
    addr srv eth0 192.0.2.10/24
    addr srv eth0 2001:db8:10::10/64 v6
    addr lan eth0 192.0.2.100/24
    addr home eth0 198.51.100.100/24
    addr out eth0 203.0.113.50/24
    addr out eth0 2001:db8:ff::50/64 v6
    addr thief eth0 203.0.113.66/24
    addr thief eth0 2001:db8:ff::66/64 v6
    ip -n "$n-srv" route add default via 192.0.2.1
    ip -n "$n-srv" -6 route add default via 2001:db8:10::1
    ip -n "$n-lan" route add default via 192.0.2.1
    ip -n "$n-home" route add default via 198.51.100.1
    # Hosts on the internet know no private network: a reply pointing at
    # 192.0.2.10 is unreachable for them, as on the real internet. Only
    # IPv6 is routed to the server's LAN (no NAT there).
    for host in out thief; do
        ip -n "$n-$host" -6 route add 2001:db8:10::/64 via 2001:db8:ff::1
    done

    local lo=${pasv%-*} hi=${pasv#*-} only_sport=""
    [ "$active" = any ] || only_sport="tcp sport $active"
    ip netns exec "$n-srvgw" nft -f - <<NFT
table inet ringftp {
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "wan0" ip daddr 203.0.113.10 meta l4proto tcp dnat ip to 192.0.2.10
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" ip saddr 192.0.2.0/24 masquerade
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        ct state invalid drop
        meta l4proto { icmp, ipv6-icmp } accept
        iifname "wan0" oifname "lan0" ip daddr 192.0.2.10 tcp dport $control ct state new counter accept comment "control"
        iifname "wan0" oifname "lan0" ip daddr 192.0.2.10 tcp dport $lo-$hi ct state new counter accept comment "passive"
        iifname "wan0" oifname "lan0" ip6 daddr 2001:db8:10::10 tcp dport { $control, $lo-$hi } ct state new counter accept comment "control+passive v6"
        iifname "lan0" oifname "wan0" $only_sport ct state new counter accept comment "outbound"
        counter comment "dropped"
    }
}
NFT
    ip netns exec "$n-cligw" nft -f - <<NFT
table inet ringftp {
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan0" ip saddr 198.51.100.0/24 masquerade
    }
    chain input {
        type filter hook input priority filter; policy drop;
        ct state established,related accept
        iifname { "lo", "lan0" } accept
        meta l4proto icmp accept
        counter comment "unsolicited"
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
        ct state established,related accept
        iifname "lan0" oifname "wan0" accept
        counter comment "forward dropped"
    }
}
NFT
    # The third host counts every connection attempt it receives (the
    # bounce test checks that none arrived).
    ip netns exec "$n-thief" nft -f - <<NFT
table inet ringftp {
    chain input {
        type filter hook input priority filter; policy accept;
        tcp flags & (syn | ack) == syn counter comment "syn-in"
    }
}
NFT
    trap - EXIT INT TERM
    echo "topology $n up"
}

cmd=${1:-}
shift || true
case $cmd in
    up)
        (($#)) || die "up needs a PREFIX"
        up "$@"
        ;;
    down)
        (($#)) || die "down needs a PREFIX"
        down "$1"
        ;;
    gc) gc rf inet ;;
    *) die "usage: topology.sh up PREFIX [--control-port N] [--pasv-ports LO-HI] [--active-sport any|N] | down PREFIX | gc" ;;
esac
