# shellcheck shell=bash
# What the test networks of tests/netns (topology.sh, balancer.sh) share:
# creating and removing a set of network namespaces PREFIX-<role>, veth
# links between them, and the clean-up of sets whose test process is gone.
# Sourced; the script sets `roles` (its namespaces' roles) and `script`
# (its name, for messages) first.

die() {
    echo "$script: $*" >&2
    exit 2
}

# Removes the namespaces PREFIX-<role>, killing anything a test left
# running in them (a server, a client, HAProxy), by pid.
down() {
    local prefix=$1 role ns pid
    for role in "${roles[@]}"; do
        ns="$prefix-$role"
        [ -e "/run/netns/$ns" ] || continue
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
        rm -rf "/etc/netns/$ns"
    done
}

# gc TAG ROLE: removes the sets of earlier runs (named TAG<pid>-<n>, found
# by their ROLE namespace) whose test process no longer exists: a test
# binary killed with SIGKILL cannot run its cleanup.
gc() {
    local tag=$1 anchor=$2 f name pid
    for f in /run/netns/"$tag"*-*-"$anchor"; do
        [ -e "$f" ] || continue
        name=${f#/run/netns/}
        pid=${name#"$tag"}
        pid=${pid%%-*}
        [[ $pid =~ ^[0-9]+$ ]] || continue
        [ -d "/proc/$pid" ] && continue
        down "${name%-"$anchor"}"
    done
}

# A veth between $1:$2 and $3:$4, created inside the namespaces so the
# host's interface names are never involved (parallel runs cannot clash).
link() {
    ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
    ip -n "$1" link set "$2" up
    ip -n "$3" link set "$4" up
}

# Creates PREFIX-<role> for every role, loopback up and no DNS, after
# checking for root and iproute2. Until `trap - EXIT INT TERM`, whatever
# stops the caller half-way (a failed command, die, a signal) removes
# what it made.
add_namespaces() {
    local n=$1 role
    command -v ip >/dev/null || die "ip (iproute2) is not installed"
    [ "$(id -u)" = 0 ] || die "must run as root to create network namespaces (uid $(id -u))"
    building=$n
    trap 'down "$building"' EXIT
    trap 'exit 130' INT TERM
    for role in "${roles[@]}"; do
        ip netns add "$n-$role" || die "cannot create network namespace $n-$role (ip netns add failed: namespaces forbidden here?)"
        ip -n "$n-$role" link set lo up
        # No DNS in here: `ip netns exec` shows /etc/netns/NS/resolv.conf
        # as /etc/resolv.conf, and a nameserver on the namespace's own
        # loopback, where nothing listens, refuses a query at once. The
        # machine's nameserver would be routed into the test network and
        # dropped there, and every lookup would wait out the resolver's
        # 5 s timeout.
        mkdir -p "/etc/netns/$n-$role"
        echo "nameserver 127.0.0.1" >"/etc/netns/$n-$role/resolv.conf"
    done
}
