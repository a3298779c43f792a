//! The control channel as the driver reads it: on demand, and during
//! transfers.
//!
//! [`ControlReader`] reads only when the driver wants the next line: it
//! waits for readability — a POLL op holding no buffer while the session
//! is quiet, so an idle session costs almost nothing; tokio's reactor
//! while commands come in quick succession (see
//! [`ControlReader::wait_readable`]) — then a non-blocking recv drains the
//! socket into a shard-wide scratch buffer and the line reader. Nothing is
//! read that the driver has not asked for, so a client that floods
//! commands is simply not read further and TCP pushes back.
//!
//! During a transfer, [`Conn::race`] keeps reading: ABOR stops the transfer
//! at once (426 then 226), STAT reports progress, and any other command
//! waits its turn, as RFC 959 orders.
//!
//! TLS sits between the socket and the line reader: after AUTH TLS (or
//! from the first byte on an implicit listener) what the recv brings goes
//! into rustls' buffered `ServerConnection` (`read_tls`,
//! `process_new_packets`) and the plaintext it yields into the same line
//! reader; replies are sealed by the same connection ([`ControlReader::seal`])
//! before the io_uring send. The scratch buffer stays shard-wide; a TLS
//! session holds rustls' own state (its buffers and keys) instead.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use std::io::{Read, Write};
use std::os::fd::AsFd;

use rustix::net::RecvFlags;
use rustls::ServerConnection;
use socket2::Socket;

use super::{Conn, Flow};
use crate::engine::sys::{self, FdRef};
use crate::proto::codes::FILE_STATUS;
use crate::proto::{parse, Command, LineEvent, LineReader, Reply, MAX_LINE};
use crate::shutdown::{self, Phase};

/// Scratch buffer a shard reads control connections into.
const SCRATCH: usize = 16 * 1024;
/// Commands queued behind a running transfer, at most: this many, or
/// [`MAX_PENDING_BYTES`] of them, whichever comes first. Past that the
/// control channel is not read until the transfer ends, and an ABOR sent
/// after them waits with them; a client that pipelines (lftp, a script)
/// queues a handful, so ABOR is seen behind any it would send.
const MAX_PENDING: usize = 1024;
/// The bytes of the commands queued behind a running transfer, at most
/// (see [`MAX_PENDING`]): what one session may make the server hold.
const MAX_PENDING_BYTES: usize = 64 * 1024;
/// The period after which a session that waits for a command gives up
/// its reactor registration (one to two of these, see
/// [`ControlReader::wait_readable`]): longer than the gap between a sync
/// tool's operations, short enough that idle sessions hold none.
const HOT_FOR: std::time::Duration = std::time::Duration::from_millis(250);
/// Sessions a shard keeps registered with its reactor at most; the others
/// wait on the ring. Bounds the registrations' memory (a few hundred bytes
/// each) when thousands of sessions log in at once.
const HOT_MAX: usize = 256;

thread_local! {
    /// This shard's sessions registered with its reactor now.
    static HOT_NOW: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A control socket registered with the shard's reactor, counted in
/// [`HOT_NOW`] for as long as it lives.
struct Hot {
    readiness: sys::ReadReadiness,
    /// Fires every [`HOT_FOR`] while the registration lives (see
    /// [`ControlReader::wait_readable`]).
    quiet: Pin<Box<tokio::time::Sleep>>,
    /// A wait began since `quiet` last fired.
    waited: bool,
}

impl Hot {
    /// Registers `sock`, unless the shard has [`HOT_MAX`] already or the
    /// reactor refuses it (the session then keeps the ring).
    fn register(sock: FdRef) -> Option<Box<Hot>> {
        if HOT_NOW.get() >= HOT_MAX {
            return None;
        }
        let readiness = sys::ReadReadiness::register(sock).ok()?;
        HOT_NOW.set(HOT_NOW.get() + 1);
        Some(Box::new(Hot {
            readiness,
            quiet: Box::pin(tokio::time::sleep(HOT_FOR)),
            waited: false,
        }))
    }
}

impl Drop for Hot {
    fn drop(&mut self) {
        HOT_NOW.set(HOT_NOW.get() - 1);
    }
}

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

/// Reads control lines on demand. Cancel-safe: the only await is the
/// wait for readability, and bytes received go straight into `lines`,
/// which the reader owns.
pub(super) struct ControlReader {
    sock: Rc<Socket>,
    lines: LineReader,
    /// The client closed its side (or the socket failed).
    pub(super) closed: bool,
    /// Each read says what it left queued (TCP_INQ): a read that leaves
    /// nothing marks the socket drained without a second, EAGAIN, recv.
    inq: bool,
    /// The socket is known to be empty: the next read waits first (see
    /// [`ControlReader::next`] for when a read says so).
    drained: bool,
    /// The last read's count (TCP_INQ) said bytes were left: an EAGAIN
    /// now does not mean empty (see [`ControlReader::next`]).
    unread: bool,
    /// The next wait must be level-triggered (a POLL op), which sees data
    /// already queued; the reactor's edge for it has come and gone.
    level_wait: bool,
    /// Registered with tokio's reactor while commands follow each other
    /// closely (see [`ControlReader::wait_readable`]); None when quiet.
    /// Boxed, so a quiet session carries one pointer, not the registration.
    hot: Option<Box<Hot>>,
    /// The TLS layer, once the control connection is in TLS. Boxed so a
    /// plain session does not carry its size; borrowed only between
    /// awaits (the writer seals replies with it too).
    tls: Option<Box<RefCell<ServerConnection>>>,
}

impl ControlReader {
    pub(super) fn new(sock: Rc<Socket>) -> ControlReader {
        let inq = sys::enable_inq(sock.as_fd()).is_ok();
        ControlReader {
            sock,
            lines: LineReader::new(MAX_LINE),
            closed: false,
            inq,
            // A new client sends nothing before the 220 greeting.
            drained: true,
            unread: false,
            level_wait: false,
            hot: None,
            tls: None,
        }
    }

    /// Drops whatever was read but not yet taken as a command: after AUTH
    /// TLS nothing sent in clear may be taken as part of the TLS session
    /// (the STARTTLS command-injection attack). Returns the bytes dropped.
    pub(super) fn discard_buffered(&mut self) -> usize {
        let n = self.lines.buffered();
        self.lines = LineReader::new(MAX_LINE);
        n
    }

    /// From now on the connection is read and written through `conn`
    /// (its handshake done).
    pub(super) fn start_tls(&mut self, conn: ServerConnection) {
        let tls = RefCell::new(conn);
        // The client's first command may have come with its last handshake
        // record: rustls holds it as plaintext already.
        let mut plain = [0u8; 1024];
        self.feed_tls(&tls, &[], &mut plain);
        self.tls = Some(Box::new(tls));
        // The handshake read the socket by other means: look again.
        self.drained = false;
    }

    /// "TLSv1_3 TLS13_AES_256_GCM_SHA384" once in TLS.
    pub(super) fn tls_description(&self) -> Option<String> {
        let conn = self.tls.as_ref()?.borrow();
        Some(format!(
            "{:?} {:?}",
            conn.protocol_version()?,
            conn.negotiated_cipher_suite()?.suite()
        ))
    }

    /// The wire bytes of `plain` (a reply): itself on a plain connection,
    /// TLS records (with anything rustls had queued before them) in TLS.
    pub(super) fn seal(&self, plain: Vec<u8>) -> std::io::Result<Vec<u8>> {
        let Some(tls) = &self.tls else {
            return Ok(plain);
        };
        let mut conn = tls.borrow_mut();
        let mut out = Vec::with_capacity(plain.len() + plain.len() / 512 + 64);
        // Piece by piece: rustls takes at most its buffer limit (64 KiB)
        // of plaintext before its records are drained, and a longer
        // reply (STAT of a large directory) written whole was cut there.
        let mut rest = &plain[..];
        loop {
            let taken = conn.writer().write(rest)?;
            rest = &rest[taken..];
            while conn.wants_write() {
                conn.write_tls(&mut out)?;
            }
            if rest.is_empty() {
                return Ok(out);
            }
            if taken == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "TLS took no more of the reply",
                ));
            }
        }
    }

    /// The close_notify record to end a TLS session with (nothing on a
    /// plain connection).
    pub(super) fn close_notify(&self) -> Option<Vec<u8>> {
        let mut conn = self.tls.as_ref()?.borrow_mut();
        conn.send_close_notify();
        let mut out = Vec::new();
        while conn.wants_write() {
            if conn.write_tls(&mut out).is_err() {
                break;
            }
        }
        Some(out)
    }

    /// Hands `bytes` read from the socket to the TLS layer and moves the
    /// plaintext it yields into the line reader. A TLS error, or the
    /// client's close_notify, closes the reader.
    fn feed_tls(&mut self, tls: &RefCell<ServerConnection>, mut bytes: &[u8], plain: &mut [u8]) {
        let mut conn = tls.borrow_mut();
        let mut first = true;
        while first || !bytes.is_empty() {
            first = false;
            if !bytes.is_empty() {
                if let Err(e) = conn.read_tls(&mut bytes) {
                    tracing::info!("control connection: {e}");
                    self.closed = true;
                    return;
                }
            }
            if let Err(e) = conn.process_new_packets() {
                tracing::info!("control connection: TLS error: {e}");
                self.closed = true;
                return;
            }
            loop {
                match conn.reader().read(plain) {
                    Ok(0) => {
                        // close_notify: the client ended the session.
                        self.closed = true;
                        return;
                    }
                    Ok(n) => self.lines.feed(&plain[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::info!("control connection: {e}");
                        self.closed = true;
                        return;
                    }
                }
            }
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
            if self.drained {
                if let Err(e) = self.wait_readable().await {
                    tracing::debug!("control connection: {e}");
                    self.closed = true;
                    continue;
                }
                self.drained = false;
            }
            let tls = self.tls.take();
            let got = SCRATCH_BUF.with(|b| {
                let mut b = b.borrow_mut();
                let (read, plain) = b.split_at_mut(SCRATCH / 2);
                // Never blocks: WouldBlock when nothing is there yet.
                let r = if self.inq {
                    sys::recv_noting_inq(self.sock.as_fd(), &mut read[..])
                } else {
                    rustix::net::recv(&*self.sock, &mut read[..], RecvFlags::DONTWAIT)
                        .map(|(n, _)| (n, None))
                        .map_err(std::io::Error::from)
                };
                match (&r, &tls) {
                    (Ok((n, _)), Some(t)) if *n > 0 => self.feed_tls(t, &read[..*n], plain),
                    (Ok((n, _)), None) => self.lines.feed(&read[..*n]),
                    _ => {}
                }
                r
            });
            self.tls = tls;
            match got {
                Ok((0, _)) => {
                    self.closed = true;
                    self.unread = false;
                }
                // The kernel said what the read left queued (TCP_INQ):
                // nothing, so the next read waits first. That count
                // includes what lies beyond an urgent mark (TCP stops a
                // read there; ftplib sends ABOR with MSG_OOB) and the end
                // of stream, so it never says empty too soon.
                Ok((_, Some(left))) => {
                    self.drained = left == 0;
                    self.unread = left > 0;
                }
                // Without the count: a read that returned less than it
                // asked for emptied the socket, as far as a POLL op
                // (level-triggered) is concerned: should data remain
                // beyond an urgent mark, the POLL completes at once. The
                // reactor is edge-triggered and no new edge announces
                // what lies beyond the mark: while registered, only EAGAIN
                // says the socket is empty.
                Ok((n, None)) => self.drained = self.hot.is_none() && n < SCRATCH / 2,
                // A read at an urgent mark that has copied nothing yet
                // answers EAGAIN while a signal is pending (tcp_recvmsg),
                // as io_uring's task work for this thread makes it: after
                // a count that said bytes were left, that EAGAIN is not
                // "empty", and no new edge would come for those bytes, so
                // the next wait is the POLL op, which sees them at once.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.drained = true;
                    self.level_wait = std::mem::take(&mut self.unread);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
    }

    /// Waits until the socket is readable (or has hung up or failed: the
    /// next recv says which).
    ///
    /// Two ways, by how busy the session is. A quiet session waits with an
    /// io_uring POLL op, which holds nothing while it waits (ten thousand
    /// idle sessions cost their memory target). Its completion reaches
    /// the shard the long way, though: it interrupts the epoll_wait that
    /// tokio-uring parks in (task work), and a second park sees it (two
    /// io_uring_enter and two epoll_wait per wait, docs/benchmarks.md).
    /// So once a command has come, the session registers the socket with
    /// tokio's reactor, where the wake-up comes straight from epoll_wait,
    /// for as long as commands keep coming — a sync tool's run of
    /// operations — and drops the registration (its few hundred bytes)
    /// when a wait outlasts one to two [`HOT_FOR`] periods. At most
    /// [`HOT_MAX`] sessions of a shard are registered at once. Should an
    /// edge ever be missed, the wait falls back to the level-triggered
    /// POLL op when the session is taken for quiet: a late read, never a
    /// lost one.
    ///
    /// Neither the clock nor the timer is touched per wait: the quiet
    /// timer fires every [`HOT_FOR`], and a session none of whose waits
    /// began in the last period is quiet.
    async fn wait_readable(&mut self) -> std::io::Result<()> {
        if std::mem::take(&mut self.level_wait) {
            return sys::poll_readable(self.sock.clone() as FdRef).await;
        }
        if let Some(hot) = &mut self.hot {
            hot.waited = true;
            loop {
                tokio::select! {
                    biased;
                    done = hot.readiness.wait() => return done,
                    _ = hot.quiet.as_mut() => {
                        if !hot.waited {
                            break;
                        }
                        hot.waited = false;
                        hot.quiet.as_mut().reset(tokio::time::Instant::now() + HOT_FOR);
                    }
                }
            }
            // Quiet now: back to the ring.
            self.hot = None;
        }
        sys::poll_readable(self.sock.clone() as FdRef).await?;
        self.hot = Hot::register(self.sock.clone() as FdRef);
        Ok(())
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
    /// reports progress, anything else is queued for afterwards. For a
    /// transfer whose 150 is out (or a command that has no 150).
    ///
    /// `fut` comes pinned by the caller (`std::pin::pin!`), so it lives
    /// once, in the caller's frame: taken by value, an async fn holds its
    /// argument and its pinned copy both (rust-lang/rust#62958), and a
    /// transfer's futures are kilobytes.
    pub(super) fn race<'a, T: 'a, F: Future<Output = T> + 'a>(
        &'a mut self,
        fut: Pin<&'a mut F>,
    ) -> impl Future<Output = Raced<T>> + 'a {
        self.race_with(fut, true)
    }

    /// [`Conn::race`] for the wait before a transfer's 150 (its data
    /// connection): a STAT is queued like any other command, not
    /// answered, since its reply would reach the client before the
    /// transfer command's first reply (RFC 959 section 4.2: a command's
    /// replies come in the order of the commands; vsftpd and pure-ftpd do
    /// not read the control connection there at all).
    pub(super) fn race_before_opening<'a, T: 'a, F: Future<Output = T> + 'a>(
        &'a mut self,
        fut: Pin<&'a mut F>,
    ) -> impl Future<Output = Raced<T>> + 'a {
        self.race_with(fut, false)
    }

    /// Answers a STAT during a transfer: the bytes moved so far (RFC 959
    /// section 4.1.3, "the status of the operation in progress").
    async fn stat_progress(&mut self) -> Flow {
        self.ctx.metrics.command(Some("STAT"));
        let moved = self.progress.as_ref().map(|p| p.get()).unwrap_or(0);
        self.reply(Reply::new(
            FILE_STATUS,
            format!(
                "Transfer in progress: {moved} bytes {}.",
                self.progress_word
            ),
        ))
        .await
    }

    /// Whether the commands queued behind a transfer reach
    /// [`MAX_PENDING`] or [`MAX_PENDING_BYTES`].
    fn pending_full(&self) -> bool {
        self.pending.len() >= MAX_PENDING
            || self
                .pending
                .iter()
                .map(|ev| match ev {
                    Event::Line(l) => l.len(),
                    _ => 0,
                })
                .sum::<usize>()
                >= MAX_PENDING_BYTES
    }

    /// [`Conn::race`] and [`Conn::race_before_opening`]: `stat_now` says
    /// whether a STAT is answered at once.
    async fn race_with<T, F: Future<Output = T>>(
        &mut self,
        mut fut: Pin<&mut F>,
        stat_now: bool,
    ) -> Raced<T> {
        let mut watch = self.shutdown.clone();
        if stat_now {
            // STATs read while the data connection was awaited, next in
            // line: the 150 is out, so their progress reports may follow.
            while matches!(self.pending.front(), Some(Event::Line(l)) if matches!(parse(l), Ok(Command::Stat(None))))
            {
                self.pending.pop_front();
                if self.stat_progress().await == Flow::Close {
                    return Raced::ControlClosed;
                }
            }
        }
        loop {
            if self.pending_full() {
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
                        Ok(Command::Stat(None)) if stat_now => {
                            if self.stat_progress().await == Flow::Close {
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
