//! One FTP control connection, client side: connect, read replies, send
//! commands, log in. Every wait is bounded by the plan's timeout, so a
//! server that stops answering costs a counted `timeout`, never a hang.
//!
//! The socket is a tokio-uring `TcpStream`: reads and writes are io_uring
//! ops on the shard's own ring. It is connected through `engine::sys::connect`
//! (an io_uring CONNECT of a socket2 socket) rather than
//! `TcpStream::connect` because active mode needs the connection's local
//! address, which tokio-uring's stream does not expose.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};
use tokio_uring::net::TcpStream;

use super::failure::{within, Failure};
use super::reply::{self, Reply};
use super::tls::{self, SessionTls, TlsMode};
use crate::engine::sys;
use crate::proto::reply::codes;

/// Bytes asked of the kernel per control read; replies are short.
const READ_CHUNK: usize = 4096;

pub(crate) struct Control {
    stream: TcpStream,
    /// Bytes received and not yet consumed as replies.
    inbox: Vec<u8>,
    /// Scratch buffer lent to the kernel for each read (None while a read
    /// that timed out still owns it).
    scratch: Option<Vec<u8>>,
    /// This end of the connection: active-mode listeners bind its address.
    pub local: SocketAddr,
    /// The server's end: EPSV data connections go to its address.
    pub peer: SocketAddr,
    /// SO_RCVBUF for this session's data connections (`--rcvbuf`); None
    /// leaves them to the kernel's tuning.
    pub data_rcvbuf: Option<u64>,
    timeout: Duration,
    /// FTPS (`--tls`): the session's TLS configuration, and the control
    /// connection's TLS once it is up.
    tls: Option<(SessionTls, Option<Box<rustls::ClientConnection>>)>,
}

/// Opens a TCP connection on the shard's ring, bounded by `timeout`, and
/// returns it with its local address. `rcvbuf`: a fixed SO_RCVBUF in
/// bytes, set before the SYN so the window scale can cover it.
pub(crate) async fn connect_tcp(
    addr: SocketAddr,
    timeout: Duration,
    rcvbuf: Option<u64>,
) -> Result<(TcpStream, SocketAddr), Failure> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )
    .map_err(|e| Failure::io(e, "socket"))?;
    if let Some(n) = rcvbuf {
        set_rcvbuf(&socket, n)?;
    }
    let socket = Rc::new(socket);
    within(timeout, "connect", async {
        sys::connect(socket.clone(), addr)
            .await
            .map_err(|e| Failure::io(e, "connect"))
    })
    .await?;
    // The op dropped its reference when it completed; a timed-out op keeps
    // its own until the kernel lets go, and we never get here then.
    let socket =
        Rc::try_unwrap(socket).map_err(|_| Failure::Io("connect: socket still in use".into()))?;
    let local = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| Failure::Io("connect: no local address".into()))?;
    // Commands wait for their replies anyway; Nagle would only add delay
    // where a client writes two small commands in a row.
    socket
        .set_nodelay(true)
        .map_err(|e| Failure::io(e, "setsockopt"))?;
    Ok((TcpStream::from_std(socket.into()), local))
}

/// Sets a fixed SO_RCVBUF of `bytes` on `socket` (Linux caps it at
/// net.core.rmem_max, and stops tuning the buffer: tcp(7)).
pub(crate) fn set_rcvbuf(socket: &Socket, bytes: u64) -> Result<(), Failure> {
    let n = usize::try_from(bytes).unwrap_or(usize::MAX);
    socket
        .set_recv_buffer_size(n)
        .map_err(|e| Failure::io(e, "setsockopt SO_RCVBUF"))
}

/// The receive buffer Linux grants a socket asked for `bytes` of
/// SO_RCVBUF, in the same terms (it doubles the value for its own
/// bookkeeping, and caps the request at net.core.rmem_max). None when no
/// socket could be made to ask.
pub(crate) fn granted_rcvbuf(bytes: u64) -> Option<u64> {
    let s = Socket::new(Domain::IPV4, Type::STREAM.cloexec(), Some(Protocol::TCP)).ok()?;
    set_rcvbuf(&s, bytes).ok()?;
    Some(s.recv_buffer_size().ok()? as u64 / 2)
}

impl Control {
    /// Connects to `addr` (without reading the greeting).
    pub(crate) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Control, Failure> {
        let (stream, local) = connect_tcp(addr, timeout, None).await?;
        let mut c = Control {
            stream,
            inbox: Vec::with_capacity(512),
            scratch: Some(Vec::with_capacity(READ_CHUNK)),
            local,
            peer: addr,
            data_rcvbuf: None,
            timeout,
            tls: tls::settings().map(|s| (s.session(), None)),
        };
        if tls::settings().is_some_and(|s| s.mode == TlsMode::Implicit) {
            c.start_tls().await?;
        }
        Ok(c)
    }

    /// The TLS handshake on the control connection (implicit, or after
    /// AUTH TLS).
    async fn start_tls(&mut self) -> Result<(), Failure> {
        let Some((session, slot)) = &mut self.tls else {
            return Ok(());
        };
        let mut conn = session.connection()?;
        let early = tls::handshake(&mut conn, &self.stream, self.timeout).await?;
        self.inbox.extend_from_slice(&early);
        *slot = Some(Box::new(conn));
        Ok(())
    }

    /// The session's TLS for data connections (PROT P), under `--tls`.
    pub(crate) fn data_tls(&self) -> Option<SessionTls> {
        self.tls.as_ref().map(|(s, _)| s.clone())
    }

    /// The next complete reply, within the timeout.
    pub(crate) async fn reply(&mut self) -> Result<Reply, Failure> {
        within(self.timeout, "reply", self.reply_unbounded()).await
    }

    async fn reply_unbounded(&mut self) -> Result<Reply, Failure> {
        loop {
            match reply::parse(&self.inbox) {
                Ok(Some((r, used))) => {
                    self.inbox.drain(..used);
                    return Ok(r);
                }
                Ok(None) => {}
                Err(e) => return Err(Failure::Protocol(e.0)),
            }
            // A read dropped by a timeout keeps its buffer; the session is
            // dropped after a timeout anyway, so a fresh one is only a guard.
            let mut buf = self
                .scratch
                .take()
                .unwrap_or_else(|| Vec::with_capacity(READ_CHUNK));
            buf.clear();
            if let Some((_, Some(conn))) = &mut self.tls {
                let inbox = &mut self.inbox;
                let (n, buf) = tls::read_some(conn, &self.stream, buf, |p| {
                    inbox.extend_from_slice(p);
                    Ok(())
                })
                .await?;
                if n == 0 {
                    return Err(Failure::Closed);
                }
                self.scratch = Some(buf);
                continue;
            }
            let (res, buf) = self.stream.read(buf).await;
            let n = res.map_err(|e| Failure::io(e, "control read"))?;
            if n == 0 {
                return Err(Failure::Closed);
            }
            self.inbox.extend_from_slice(&buf[..n]);
            self.scratch = Some(buf);
        }
    }

    /// Sends one command line (CRLF added), within the timeout.
    pub(crate) async fn send(&mut self, line: &str) -> Result<(), Failure> {
        let bytes = format!("{line}\r\n").into_bytes();
        within(self.timeout, "command write", async {
            if let Some((_, Some(conn))) = &mut self.tls {
                use std::io::Write;
                conn.writer()
                    .write_all(&bytes)
                    .map_err(|e| Failure::io(e, "control write"))?;
                return tls::flush(conn, &self.stream).await;
            }
            let (res, _) = self.stream.write_all(bytes).await;
            res.map_err(|e| Failure::io(e, "control write"))
        })
        .await
    }

    /// Sends a command and returns its reply, whatever the code.
    pub(crate) async fn command(&mut self, line: &str) -> Result<Reply, Failure> {
        self.send(line).await?;
        self.reply().await
    }

    /// Sends a command and wants a 2xx reply; any other is a failure.
    pub(crate) async fn expect_ok(&mut self, line: &str) -> Result<Reply, Failure> {
        positive(self.command(line).await?)
    }

    /// Reads the greeting: 220, after any number of 120 ("ready in n
    /// minutes") notices.
    pub(crate) async fn greeting(&mut self) -> Result<(), Failure> {
        loop {
            let r = self.reply().await?;
            match r.code {
                codes::SERVICE_READY => return Ok(()),
                codes::SERVICE_READY_SOON => continue,
                _ => return Err(negative(r)),
            }
        }
    }

    /// USER, then PASS when asked (331); 230 (or 202) is success.
    pub(crate) async fn login(&mut self, user: &str, password: &str) -> Result<(), Failure> {
        // Explicit FTPS: AUTH TLS before the credentials (RFC 4217).
        if matches!(&self.tls, Some((_, None))) {
            let r = self.command("AUTH TLS").await?;
            if r.code != codes::SECURITY_DATA_EXCHANGE_COMPLETE {
                return Err(negative(r));
            }
            self.start_tls().await?;
        }
        let r = self.command(&format!("USER {user}")).await?;
        let r = match r.code {
            codes::LOGGED_IN | codes::NOT_IMPLEMENTED_SUPERFLUOUS => None,
            codes::NEED_PASSWORD => Some(self.command(&format!("PASS {password}")).await?),
            _ => return Err(negative(r)),
        };
        if let Some(r) = r {
            if !matches!(
                r.code,
                codes::LOGGED_IN | codes::NOT_IMPLEMENTED_SUPERFLUOUS
            ) {
                return Err(negative(r));
            }
        }
        if self.tls.is_some() {
            self.expect_ok("PBSZ 0").await?;
            self.expect_ok("PROT P").await?;
        }
        Ok(())
    }

    /// Says QUIT and waits briefly for 221; a server that just closes is
    /// fine too. Errors here are not the server's latency problem, so they
    /// are returned only for the login-storm scenario to count.
    pub(crate) async fn quit(mut self) -> Result<(), Failure> {
        self.send("QUIT").await?;
        match self.reply().await {
            Ok(r) if r.is_success() => Ok(()),
            Ok(r) => Err(negative(r)),
            Err(Failure::Closed) | Err(Failure::Reset(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A reply that is not what the client wanted, as a failure.
pub(crate) fn negative(r: Reply) -> Failure {
    Failure::Reply {
        code: r.code,
        text: r.text,
    }
}

/// `Ok(r)` for a 2xx reply, else the failure.
pub(crate) fn positive(r: Reply) -> Result<Reply, Failure> {
    if r.is_success() {
        Ok(r)
    } else {
        Err(negative(r))
    }
}
