//! The control channel as the driver reads it: on demand, and during
//! transfers.
//!
//! [`ControlReader`] reads only when the driver wants the next line: a
//! POLL op waits for readability — holding no buffer, so an idle session
//! costs almost nothing — then a non-blocking recv drains the socket into
//! a shard-wide scratch buffer and the line reader. Nothing is read that
//! the driver has not asked for, so a client that floods commands is simply
//! not read further and TCP pushes back.
//!
//! During a transfer, [`Conn::race`] keeps reading: ABOR stops the transfer
//! at once (426 then 226), STAT reports progress, and any other command
//! waits its turn, as RFC 959 orders.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use rustix::net::RecvFlags;
use socket2::Socket;

use super::{Conn, Flow};
use crate::engine::sys::{self, FdRef};
use crate::proto::codes::FILE_STATUS;
use crate::proto::{parse, Command, LineEvent, LineReader, Reply, MAX_LINE};
use crate::shutdown::{self, Phase};

/// Scratch buffer a shard reads control connections into.
const SCRATCH: usize = 16 * 1024;
/// Commands queued behind a running transfer.
const MAX_PENDING: usize = 32;

/// One thing read from the control connection.
#[derive(Debug)]
pub(super) enum Event {
    Line(Vec<u8>),
    TooLong,
    Closed,
}

thread_local! {
    /// The shard's control-read buffer: sessions borrow it for one
    /// synchronous recv at a time, so none needs a buffer of its own.
    static SCRATCH_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH]);
}

/// Reads control lines on demand. Cancel-safe: the only await is the POLL
/// op, and bytes received go straight into `lines`, which the reader owns.
pub(super) struct ControlReader {
    sock: Rc<Socket>,
    lines: LineReader,
    /// The client closed its side (or the socket failed).
    pub(super) closed: bool,
}

impl ControlReader {
    pub(super) fn new(sock: Rc<Socket>) -> ControlReader {
        ControlReader {
            sock,
            lines: LineReader::new(MAX_LINE),
            closed: false,
        }
    }

    /// The next control event: a line, a too-long line, or end of stream.
    pub(super) async fn next(&mut self) -> Event {
        loop {
            match self.lines.next_event() {
                Some(LineEvent::Line(l)) => return Event::Line(l),
                Some(LineEvent::TooLong) => return Event::TooLong,
                None => {}
            }
            if self.closed {
                return Event::Closed;
            }
            let got = SCRATCH_BUF.with(|b| {
                let mut b = b.borrow_mut();
                // Never blocks: WouldBlock when nothing is there yet.
                let r = rustix::net::recv(&*self.sock, &mut b[..], RecvFlags::DONTWAIT)
                    .map(|(n, _)| n)
                    .map_err(std::io::Error::from);
                if let Ok(n) = r {
                    self.lines.feed(&b[..n]);
                }
                r
            });
            match got {
                Ok(0) => self.closed = true,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if sys::poll_readable(self.sock.clone() as FdRef)
                        .await
                        .is_err()
                    {
                        self.closed = true;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
    }
}

/// How racing an operation against the control channel ended.
pub(super) enum Raced<T> {
    Done(T),
    Aborted,
    ControlClosed,
    /// The shutdown grace period ended.
    ShutDown,
}

impl Conn {
    /// Runs `fut` while serving the control channel: ABOR ends it, STAT
    /// reports progress, anything else is queued for afterwards.
    pub(super) async fn race<T>(&mut self, fut: impl Future<Output = T>) -> Raced<T> {
        tokio::pin!(fut);
        let mut watch = self.shutdown.clone();
        loop {
            if self.pending.len() >= MAX_PENDING {
                // The queue is full: stop reading the control channel (TCP
                // pushes back on the client) until the transfer ends.
                return tokio::select! {
                    r = &mut fut => Raced::Done(r),
                    _ = shutdown::reached(&mut watch, Phase::Closing) => Raced::ShutDown,
                };
            }
            tokio::select! {
                // The control channel first: when a client dies, its
                // control connection's FIN can arrive together with the
                // data connection's, and the upload must then count as
                // broken, not complete.
                biased;
                ev = self.reader.next() => match ev {
                    Event::Closed => return Raced::ControlClosed,
                    Event::Line(line) => match parse(&line) {
                        Ok(Command::Abor) => {
                            self.ctx.metrics.command(Some("ABOR"));
                            return Raced::Aborted;
                        }
                        Ok(Command::Stat(None)) => {
                            self.ctx.metrics.command(Some("STAT"));
                            let sent = self.progress.as_ref().map(|p| p.get()).unwrap_or(0);
                            let r = Reply::new(FILE_STATUS, format!("Transfer in progress: {sent} bytes sent."));
                            if self.reply(r).await == Flow::Close {
                                return Raced::ControlClosed;
                            }
                        }
                        _ => self.pending.push_back(Event::Line(line)),
                    },
                    ev => self.pending.push_back(ev),
                },
                r = &mut fut => return Raced::Done(r),
                _ = shutdown::reached(&mut watch, Phase::Closing) => return Raced::ShutDown,
            }
        }
    }
}
