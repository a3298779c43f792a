//! Active data channels (PORT/EPRT): the server connects to the client.
//!
//! The RFC 2577 bounce check (target must be the control peer, port >=
//! 1024) is made by the session before we get here. The connect runs on
//! the shard's ring from a socket bound to the control connection's local
//! address and, with `--active-port-20`, to port L-1 of the control
//! listener as RFC 959 describes.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::DataConn;
use crate::engine::sys;

/// Connects to `target` from `local_ip` (and `source_port` if given; when
/// that bind fails — no CAP_NET_BIND_SERVICE below 1024 — it is logged and
/// an ephemeral port is used). Gives up after `timeout`.
pub(crate) async fn connect(
    target: SocketAddr,
    local_ip: IpAddr,
    source_port: Option<u16>,
    timeout: Duration,
) -> io::Result<DataConn> {
    let sock = Socket::new(
        Domain::for_address(target),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    if target.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    if let Some(port) = source_port {
        // SO_REUSEADDR: several sessions may connect out from port L-1 at
        // once (their 4-tuples differ), and right after one closed.
        sock.set_reuse_address(true)?;
        let from = SocketAddr::new(local_ip, port);
        if let Err(e) = sock.bind(&from.into()) {
            tracing::warn!("--active-port-20: cannot bind {from} ({e}); connecting from an ephemeral port instead");
            return connect_from(
                Socket::new(
                    Domain::for_address(target),
                    Type::STREAM,
                    Some(Protocol::TCP),
                )?,
                target,
                local_ip,
                timeout,
            )
            .await;
        }
        return finish(sock, target, timeout).await;
    }
    connect_from(sock, target, local_ip, timeout).await
}

async fn connect_from(
    sock: Socket,
    target: SocketAddr,
    local_ip: IpAddr,
    timeout: Duration,
) -> io::Result<DataConn> {
    // Bind the local address (port 0) so the client sees the data
    // connection come from the address it reached the control port on.
    // The port is left to connect(2): a bind that picks it must find one
    // no connection from this address holds, TIME_WAIT included, and
    // every download's connection (which the server closes first) leaves
    // one in TIME_WAIT for 60 s: under churn each bind took milliseconds
    // on the shard and the range ran out (425 "Address already in use").
    // connect shares ports between destinations and reuses TIME_WAIT.
    if let Err(e) = sys::bind_address_no_port(sock.as_fd()) {
        tracing::debug!("IP_BIND_ADDRESS_NO_PORT: {e}");
    }
    sock.bind(&SocketAddr::new(local_ip, 0).into())?;
    finish(sock, target, timeout).await
}

async fn finish(sock: Socket, target: SocketAddr, timeout: Duration) -> io::Result<DataConn> {
    // A DataConn from the start: dropped while the connect is still in
    // flight (the timeout below, an ABOR, the control connection closed,
    // a shutdown: whatever drops this wait), it shuts the socket down,
    // which aborts a connect in SYN_SENT, so the ring's op completes and
    // the fd is released now, not when the kernel's SYN retries give up
    // (about two minutes with `tcp_syn_retries` 6).
    let conn = DataConn::new(sock, target);
    match tokio::time::timeout(timeout, sys::connect(conn.fd(), target)).await {
        Ok(Ok(())) => Ok(conn),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "data connection timed out",
        )),
    }
}
