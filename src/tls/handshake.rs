//! Driving a rustls handshake with the shard's own io_uring ops: rustls'
//! buffered `ServerConnection` takes what a non-blocking `recv` read after
//! an io_uring POLL said the socket is readable (`read_tls`,
//! `process_new_packets`), and what it wants to send goes out with an
//! io_uring SEND (`write_tls`). No thread blocks and no second runtime
//! runs; the caller bounds the whole handshake in time.
//!
//! On a data connection the handshake reads *exactly* the records it
//! needs — each record's 5-byte header, then its body — so not one byte
//! of what the client sends after its Finished (an upload's first data)
//! is left inside rustls when its keys are taken out for the kernel or
//! the in-place record layer.

use std::io;

use rustix::net::RecvFlags;
use rustls::ServerConnection;

use super::record::{record_len, HEADER};
use crate::engine::sys::{self, FdRef};

/// How a handshake failed.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    /// The peer closed or the socket failed.
    Io(io::Error),
    /// The peer spoke, but not acceptable TLS (rustls' reason).
    Tls(rustls::Error),
}

impl std::fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HandshakeError::Io(e) => write!(f, "{e}"),
            HandshakeError::Tls(e) => write!(f, "{e}"),
        }
    }
}

/// Sends everything rustls has queued (handshake flights, tickets, alerts).
pub(crate) async fn flush(conn: &mut ServerConnection, sock: &FdRef) -> io::Result<()> {
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)?;
    }
    if out.is_empty() {
        return Ok(());
    }
    sys::send_all(sock.clone(), out).await
}

/// Reads into `buf` what the socket has, up to `buf.len()`, waiting on the
/// ring for readability; 0 means end of stream.
async fn recv_some(sock: &FdRef, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match rustix::net::recv(sock, &mut *buf, RecvFlags::DONTWAIT) {
            Ok((n, _)) => return Ok(n),
            Err(rustix::io::Errno::AGAIN) => sys::poll_readable(sock.clone()).await?,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reads exactly `buf.len()` bytes.
async fn recv_exact(sock: &FdRef, buf: &mut [u8]) -> io::Result<()> {
    let mut at = 0;
    while at < buf.len() {
        match recv_some(sock, &mut buf[at..]).await? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => at += n,
        }
    }
    Ok(())
}

/// Hands `bytes` to rustls and processes them; on a TLS error the alert
/// rustls queued is sent before the error is returned.
async fn feed(
    conn: &mut ServerConnection,
    sock: &FdRef,
    mut bytes: &[u8],
) -> Result<(), HandshakeError> {
    while !bytes.is_empty() {
        conn.read_tls(&mut bytes).map_err(HandshakeError::Io)?;
        if let Err(e) = conn.process_new_packets() {
            let _ = flush(conn, sock).await;
            return Err(HandshakeError::Tls(e));
        }
    }
    Ok(())
}

/// Runs the server side of the handshake on `sock` until rustls says it
/// is done, and sends what it still has queued (TLS 1.3 tickets).
/// `early` holds bytes already read from the socket that belong to the
/// handshake (a control line reader's leftovers after AUTH TLS).
/// `exact`: read record by record, never past the handshake (data
/// connections).
pub(crate) async fn run(
    conn: &mut ServerConnection,
    sock: &FdRef,
    early: &[u8],
    exact: bool,
) -> Result<(), HandshakeError> {
    feed(conn, sock, early).await?;
    let mut buf = vec![0u8; if exact { HEADER } else { 16 * 1024 }];
    while conn.is_handshaking() {
        flush(conn, sock).await.map_err(HandshakeError::Io)?;
        if !conn.is_handshaking() {
            break;
        }
        if exact {
            buf.resize(HEADER, 0);
            recv_exact(sock, &mut buf[..HEADER])
                .await
                .map_err(HandshakeError::Io)?;
            let len = record_len(&buf)
                .map_err(HandshakeError::Io)?
                .unwrap_or(HEADER);
            buf.resize(len, 0);
            recv_exact(sock, &mut buf[HEADER..])
                .await
                .map_err(HandshakeError::Io)?;
            feed(conn, sock, &buf).await?;
        } else {
            let n = recv_some(sock, &mut buf)
                .await
                .map_err(HandshakeError::Io)?;
            if n == 0 {
                return Err(HandshakeError::Io(io::ErrorKind::UnexpectedEof.into()));
            }
            feed(conn, sock, &buf[..n]).await?;
        }
    }
    flush(conn, sock).await.map_err(HandshakeError::Io)?;
    Ok(())
}
