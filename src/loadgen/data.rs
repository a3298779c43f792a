//! Data channels, client side: opening them in each mode, and moving bytes
//! over them as fast as the machine allows.
//!
//! - Passive (`PASV`, `EPSV`): the server announces a port, the client
//!   connects to it before sending the transfer command.
//! - Active (`PORT`, `EPRT`): the client listens on the control
//!   connection's local address (ephemeral port), announces it, sends the
//!   transfer command, then accepts the server's connection. The listener is
//!   built with socket2 *without* SO_REUSEPORT (tokio-uring's own `bind`
//!   sets it, which lets two sockets share a port) and accepts one
//!   connection only.
//!
//! **The reader.** Each read is an io_uring READ into a reused 1 MiB buffer.
//! Measured on this machine's loopback against a plain `sendfile(2)` sender
//! (benches/reader_bench.rs, docs/loadgen.md), it beat tokio's epoll
//! readiness plus non-blocking `recv` (about 2.4 vs 1.9 GiB/s, same run),
//! so the generator reads the way the server writes: on its ring. Buffers
//! come from a per-shard pool, so memory follows the transfers in flight,
//! not the number of clients.

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::{TcpListener, TcpStream};

use super::client::{connect_tcp, negative, set_rcvbuf, Control};
use super::failure::{within, Failure};
use super::scenario::Mode;
use crate::proto::addr;
use crate::proto::reply::codes;

/// Read buffer size: large reads are what make a loopback stream fast.
pub(crate) const READ_BUF: usize = 1 << 20;
/// Bytes handed to one io_uring WRITE on uploads.
const WRITE_CHUNK: usize = 1 << 20;

/// A shard's spare read buffers.
#[derive(Default, Clone)]
pub(crate) struct BufPool(Rc<RefCell<Vec<Vec<u8>>>>);

impl BufPool {
    fn take(&self) -> Vec<u8> {
        self.0
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(READ_BUF))
    }

    fn give(&self, mut buf: Vec<u8>) {
        buf.clear();
        self.0.borrow_mut().push(buf);
    }
}

/// A data channel on its way up: connected already (passive), or waiting
/// for the server to connect (active).
pub(crate) enum Pending {
    Connected(TcpStream),
    Listening(TcpListener),
}

/// Asks for a data channel in `mode`. Passive modes connect before
/// returning; active ones return the listener to accept from once the
/// transfer command is sent.
pub(crate) async fn open(
    ctrl: &mut Control,
    mode: Mode,
    timeout: Duration,
) -> Result<Pending, Failure> {
    match mode {
        Mode::Pasv => {
            let r = ctrl.command("PASV").await?;
            if r.code != codes::ENTERING_PASSIVE {
                return Err(negative(r));
            }
            let announced = addr::parse_pasv_reply(&r.text)
                .ok_or_else(|| Failure::Protocol(format!("cannot parse 227 reply {:?}", r.text)))?;
            // A server that announces 0.0.0.0 is reached at the control
            // peer's address, as curl and lftp do; any other address is
            // taken as announced (it may be a --pasv-address on purpose).
            let ip = if announced.ip().is_unspecified() {
                ctrl.peer.ip()
            } else {
                IpAddr::V4(*announced.ip())
            };
            connect_data(SocketAddr::new(ip, announced.port()), ctrl, timeout).await
        }
        Mode::Epsv => {
            let r = ctrl.command("EPSV").await?;
            if r.code != codes::ENTERING_EXTENDED_PASSIVE {
                return Err(negative(r));
            }
            let port = addr::parse_epsv_reply(&r.text)
                .ok_or_else(|| Failure::Protocol(format!("cannot parse 229 reply {:?}", r.text)))?;
            connect_data(SocketAddr::new(ctrl.peer.ip(), port), ctrl, timeout).await
        }
        Mode::Port | Mode::Eprt => {
            let listener = listen(SocketAddr::new(ctrl.local.ip(), 0), ctrl.data_rcvbuf)?;
            let local = listener
                .local_addr()
                .map_err(|e| Failure::io(e, "data listener"))?;
            let line = match (mode, local) {
                (Mode::Port, SocketAddr::V4(v4)) => format!("PORT {}", addr::format_port(v4)),
                (Mode::Port, SocketAddr::V6(_)) => {
                    return Err(Failure::Protocol(
                        "PORT cannot carry an IPv6 address; use eprt".into(),
                    ))
                }
                _ => format!("EPRT {}", addr::format_eprt(local)),
            };
            let r = ctrl.command(&line).await?;
            if !r.is_success() {
                return Err(negative(r));
            }
            Ok(Pending::Listening(listener))
        }
    }
}

async fn connect_data(
    addr: SocketAddr,
    ctrl: &Control,
    timeout: Duration,
) -> Result<Pending, Failure> {
    let (stream, _) = connect_tcp(addr, timeout, ctrl.data_rcvbuf).await?;
    Ok(Pending::Connected(stream))
}

/// The active-mode listener; its `rcvbuf` is inherited by the connection
/// it accepts (and sizes the window scale of its SYN-ACK).
fn listen(addr: SocketAddr, rcvbuf: Option<u64>) -> Result<TcpListener, Failure> {
    let fail = |e| Failure::io(e, "data listener");
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )
    .map_err(fail)?;
    if let Some(n) = rcvbuf {
        set_rcvbuf(&socket, n)?;
    }
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(1).map_err(fail)?;
    Ok(TcpListener::from_std(socket.into()))
}

impl Pending {
    /// The connected data stream: accepts the server's connection in active
    /// mode (within `timeout`).
    pub(crate) async fn established(self, timeout: Duration) -> Result<TcpStream, Failure> {
        match self {
            Pending::Connected(s) => Ok(s),
            Pending::Listening(l) => {
                within(timeout, "data connection from the server", async {
                    let (s, _) = l.accept().await.map_err(|e| Failure::io(e, "accept"))?;
                    Ok(s)
                })
                .await
            }
        }
    }
}

/// What a download saw.
pub(crate) struct Received {
    pub bytes: u64,
    /// When the first byte arrived (None for an empty transfer).
    pub first_byte: Option<Instant>,
}

/// Reads the stream to its end, handing every chunk (and its offset) to
/// `sink`, which may reject it (a `--verify` mismatch). Each read waits at
/// most `timeout`.
pub(crate) async fn read_to_end(
    stream: &TcpStream,
    pool: &BufPool,
    timeout: Duration,
    mut sink: impl FnMut(u64, &[u8]) -> Result<(), Failure>,
) -> Result<Received, Failure> {
    let mut buf = pool.take();
    let mut got = Received {
        bytes: 0,
        first_byte: None,
    };
    loop {
        // If the timeout fires, the kernel still owns `buf`: tokio-uring
        // keeps it alive until the cancelled read completes, and the pool
        // simply makes a new one next time.
        let (res, b) = match tokio::time::timeout(timeout, stream.read(buf)).await {
            Ok(r) => r,
            Err(_) => return Err(Failure::Timeout("data")),
        };
        buf = b;
        let n = match res {
            Ok(n) => n,
            Err(e) => {
                pool.give(buf);
                return Err(Failure::io(e, "data read"));
            }
        };
        if n == 0 {
            pool.give(buf);
            return Ok(got);
        }
        if got.first_byte.is_none() {
            got.first_byte = Some(Instant::now());
        }
        if let Err(e) = sink(got.bytes, &buf[..n]) {
            pool.give(buf);
            return Err(e);
        }
        got.bytes += n as u64;
        buf.clear();
    }
}

/// Writes all of `data` (in 1 MiB ops, each within `timeout`), then closes
/// the sending side so the server sees the end of the file.
pub(crate) async fn write_all(
    stream: &TcpStream,
    data: &'static [u8],
    timeout: Duration,
    mut progress: impl FnMut(u64),
) -> Result<(), Failure> {
    let mut at = 0;
    while at < data.len() {
        let end = (at + WRITE_CHUNK).min(data.len());
        let (res, _) = within(timeout, "data write", async {
            let (res, slice) = stream.write_all(data.slice(at..end)).await;
            Ok((res, slice))
        })
        .await?;
        res.map_err(|e| Failure::io(e, "data write"))?;
        progress((end - at) as u64);
        at = end;
    }
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(|e| Failure::io(e, "data shutdown"))
}
