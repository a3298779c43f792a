#!/usr/bin/env bash
# The whole test suite: installs the FTP clients the integration tests
# drive (curl, lftp, wget, python3, tnftp (Debian's ftp), ncftp;
# pyftpdlib for the load-generator tests)
# the network tools of the NAT tests (iproute2, nftables), and systemd
# (systemd-analyze verify on dist/ringftp.service) when missing,
# builds the release binary, then runs every unit and integration test
# against it. Used as is by .ci/run. The NAT tests (tests/nat.rs) build
# network namespaces and need root.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for tool in curl lftp wget tnftp ncftpget python3 timeout sha256sum ip ss nft systemd-analyze setpriv; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if ((${#need[@]})); then
    pkgs=()
    for tool in "${need[@]}"; do
        case "$tool" in
            timeout | sha256sum) pkgs+=(coreutils) ;;
            python3) pkgs+=(python3 python3-pip) ;;
            # tests/conformance_listing.rs: mget and ncftpget with wildcards.
            ncftpget) pkgs+=(ncftp) ;;
            ip | ss) pkgs+=(iproute2) ;;
            nft) pkgs+=(nftables) ;;
            # tests/service.rs: the unit file check and an unprivileged start.
            systemd-analyze) pkgs+=(systemd) ;;
            setpriv) pkgs+=(util-linux) ;;
            *) pkgs+=("$tool") ;;
        esac
    done
    echo "tests/run.sh: installing ${pkgs[*]}"
    SUDO=()
    if [ "$(id -u)" != 0 ]; then SUDO=(sudo); fi
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" apt-get update -qq
    "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi

# fincore (util-linux-extra on Debian 12) lets tests/zero_copy.rs confirm
# that a file really left the page cache; optional, so a failed install is
# not fatal.
if ! command -v fincore >/dev/null 2>&1; then
    echo "tests/run.sh: installing util-linux-extra (fincore), if the archive has it"
    SUDO=()
    if [ "$(id -u)" != 0 ]; then SUDO=(sudo); fi
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends util-linux-extra \
        >/dev/null 2>&1 || echo "tests/run.sh: no fincore; the page-cache test trusts posix_fadvise"
fi

# rclone (Debian's package) for the FTPS test with explicit_tls; optional:
# tests/ftps.rs skips that one test without it.
if ! command -v rclone >/dev/null 2>&1; then
    echo "tests/run.sh: installing rclone, if the archive has it"
    SUDO=()
    if [ "$(id -u)" != 0 ]; then SUDO=(sudo); fi
    DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends rclone \
        >/dev/null 2>&1 || echo "tests/run.sh: no rclone; its FTPS test is skipped"
fi

if ! python3 -c 'import pyftpdlib' 2>/dev/null; then
    echo "tests/run.sh: installing pyftpdlib"
    # pip as is (pyenv, venv), else past PEP 668 (Debian's python3), else
    # Debian's own package.
    python3 -m pip install -q pyftpdlib 2>/dev/null ||
        python3 -m pip install -q --break-system-packages pyftpdlib 2>/dev/null ||
        {
            SUDO=()
            if [ "$(id -u)" != 0 ]; then SUDO=(sudo); fi
            export DEBIAN_FRONTEND=noninteractive
            "${SUDO[@]}" apt-get update -qq
            "${SUDO[@]}" apt-get install -y -qq --no-install-recommends python3-pyftpdlib >/dev/null
        }
fi

cargo build --release
cargo test --release --no-fail-fast
