//! The zero-copy data paths: RETR (file -> socket) and STOR (socket ->
//! pipe -> file), driven from the shard's io_uring.
//!
//! RETR sends from a non-blocking socket and waits for room with POLLOUT
//! on the ring. A chunk whose pages are all in the page cache goes out by
//! `sendfile(2)` on the shard thread (it cannot block on the disk then); a
//! chunk that is not goes through a pipe: an io_uring SPLICE file -> pipe,
//! which io-wq workers run so the disk read never stalls the shard, then
//! pipe -> socket here. Both routes hand page references to TCP, never a
//! copy — but for a download of at most [`SMALL`] bytes, which goes whole
//! by one read and one send when cached (see [`send_small`]), and a long
//! download's first [`WARM`] bytes on a path of large segments. Measured
//! on loopback with the server on one core (see docs/benchmarks.md), the
//! earlier design (two SPLICE SQEs per chunk, both run by io-wq workers,
//! two 1 MiB pipes alternating) sent ~2.0 GiB/s where a plain sendfile(2)
//! loop sent ~3.1; this one sends ~3.1.
//!
//! STOR has no sendfile-like call (socket -> file needs a pipe): it
//! splices socket -> pipe -> file with two SPLICE SQEs per chunk, two
//! pipes alternating so the socket and disk sides overlap. Pipes come from
//! a per-shard pool and go back only after a clean transfer, when they are
//! known to be empty; after an error they are dropped (an op still in
//! flight keeps its own handle on them).

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::AsFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::net::{RecvFlags, SendFlags};
use rustix::pipe::SpliceFlags;

use crate::engine::sys::{self, FdRef, Pipe};
use crate::limits::{self, SharedRate, RATE_SLACK};
use crate::metrics::counters::{BytePath, Dir};
use crate::metrics::ShardMetrics;

/// Pipe size requested with F_SETPIPE_SZ (the default pipe-max-size).
pub(crate) const PIPE_SIZE: u32 = 1 << 20;

/// Most idle pipes a shard keeps (two per concurrent transfer).
const POOL_MAX: usize = 128;

/// How often a shard closes its idle pipes if it took none meanwhile
/// (see [`PipePool::trim_if_idle`]).
pub(crate) const PIPE_TRIM: std::time::Duration = std::time::Duration::from_secs(5);

/// A shard's pipes, reused across transfers to save two syscalls and the
/// pipe's page allocations per file.
#[derive(Default)]
pub(crate) struct PipePool {
    pipes: RefCell<Vec<Pipe>>,
    /// A pipe was taken since the last [`PipePool::trim_if_idle`].
    used: std::cell::Cell<bool>,
}

impl PipePool {
    pub(crate) fn take(&self) -> io::Result<Pipe> {
        self.used.set(true);
        match self.pipes.borrow_mut().pop() {
            Some(p) => Ok(p),
            None => Pipe::new(PIPE_SIZE),
        }
    }

    /// Returns an empty pipe to the pool.
    pub(crate) fn give(&self, pipe: Pipe) {
        let mut pipes = self.pipes.borrow_mut();
        if pipes.len() < POOL_MAX {
            pipes.push(pipe);
        }
    }

    /// Closes every idle pipe (two fds each) and returns how many there
    /// were. For when the process runs out of fds: a pool sized by the
    /// last burst of disk reads (up to [`POOL_MAX`] per shard) would
    /// otherwise keep those fds from the sessions for good.
    pub(crate) fn release_all(&self) -> usize {
        let idle = std::mem::take(&mut *self.pipes.borrow_mut());
        idle.len()
    }

    /// Closes the idle pipes if none was taken since the last call, and
    /// returns how many; called every [`PIPE_TRIM`] by each shard, so a
    /// shard that has stopped reading from disk gives its pipes' fds back
    /// within two periods (an fd failure on any shard empties every pool
    /// at once instead; see `ShardCtx::out_of_fds`).
    pub(crate) fn trim_if_idle(&self) -> usize {
        if self.used.replace(false) {
            0
        } else {
            self.release_all()
        }
    }
}

/// A shard's spare buffers for FTPS transfers encrypted in userspace
/// (download record slots, upload receive buffers) and small downloads
/// sent from a copy ([`send_small`]), reused across transfers so memory
/// follows the transfers in flight.
#[derive(Default)]
pub(crate) struct BufPool(RefCell<Vec<Vec<u8>>>);

impl BufPool {
    /// A buffer of length `len` (reused bytes, or zeroes where it grew).
    pub(crate) fn take(&self, len: usize) -> Vec<u8> {
        let mut b = self.0.borrow_mut().pop().unwrap_or_default();
        b.resize(len, 0);
        b
    }

    /// Gives a buffer back (at most `POOL_MAX` are kept).
    pub(crate) fn give(&self, b: Vec<u8>) {
        let mut pool = self.0.borrow_mut();
        if pool.len() < POOL_MAX {
            pool.push(b);
        }
    }
}

/// One session's byte counters; `STAT` shows a session its own, so a
/// user (or a test) can see which path moved its bytes. (The shard's,
/// for every session, are in [`ShardMetrics`].)
#[derive(Default, Debug)]
pub(crate) struct Counters {
    /// Bytes moved between file and socket without a userspace copy
    /// (splice, or sendfile for downloads the page cache holds).
    pub spliced: Cell<u64>,
    /// Of those, download bytes read past the page cache: through a pipe,
    /// the disk read done by io-wq workers.
    pub from_disk: Cell<u64>,
    /// Bytes moved through a userspace buffer (ASCII mode, listings,
    /// small cached downloads, a long download's copied start).
    pub copied: Cell<u64>,
    /// FTPS: file bytes encrypted or decrypted in place in userspace.
    pub tls_userspace: Cell<u64>,
    /// FTPS: file bytes sent zero-copy through kernel TLS (kTLS); also
    /// counted in `spliced`.
    pub tls_kernel: Cell<u64>,
    pub transfers: Cell<u64>,
}

impl Counters {
    /// One more transfer ended.
    pub(crate) fn add_transfer(&self) {
        self.transfers.set(self.transfers.get() + 1);
    }

    pub(crate) fn add_spliced(&self, n: u64) {
        self.spliced.set(self.spliced.get() + n);
    }

    pub(crate) fn add_from_disk(&self, n: u64) {
        self.from_disk.set(self.from_disk.get() + n);
    }

    pub(crate) fn add_copied(&self, n: u64) {
        self.copied.set(self.copied.get() + n);
    }

    pub(crate) fn add_encrypted(&self, n: u64) {
        self.tls_userspace.set(self.tls_userspace.get() + n);
    }

    pub(crate) fn add_kernel_tls(&self, n: u64) {
        self.tls_kernel.set(self.tls_kernel.get() + n);
    }
}

/// Bytes a transfer has moved so far, and when the first of them moved,
/// shared with whoever reports it (STAT during a transfer, the live
/// session table, the time-to-first-byte histogram). Grows as bytes land,
/// so a transfer that fails part-way still says what it delivered.
#[derive(Clone, Default, Debug)]
pub(crate) struct Progress(Rc<ProgressCells>);

#[derive(Default, Debug)]
struct ProgressCells {
    bytes: Cell<u64>,
    first_byte: Cell<Option<Instant>>,
}

impl Progress {
    pub(crate) fn get(&self) -> u64 {
        self.0.bytes.get()
    }

    /// When the first byte moved, if one has.
    pub(crate) fn first_byte(&self) -> Option<Instant> {
        self.0.first_byte.get()
    }

    pub(crate) fn set(&self, n: u64) {
        if n > 0 && self.0.first_byte.get().is_none() {
            self.0.first_byte.set(Some(Instant::now()));
        }
        self.0.bytes.set(n);
    }

    pub(crate) fn add(&self, n: u64) {
        self.set(self.get() + n);
    }
}

/// What the byte-moving loops of one transfer share: the shard's pipe pool,
/// the shard's and the session's counters, where the transfer's progress
/// goes, and the pacer of its rate caps (if any).
pub(crate) struct TransferCtx<'a> {
    pub pool: &'a PipePool,
    /// FTPS and small-download buffers (see [`BufPool`]).
    pub tls_buffers: &'a BufPool,
    /// The shard's counters (every session's transfers).
    pub metrics: &'a ShardMetrics,
    /// This session's own.
    pub session: &'a Counters,
    pub progress: Progress,
    pub pacer: Option<Pacer>,
    /// How a download tells whether its file's bytes are cached
    /// ([`sys::Residency::for_file`]).
    pub residency: sys::Residency,
}

impl TransferCtx<'_> {
    /// `n` bytes of a `dir` transfer moved by `path` (and made progress).
    pub(crate) fn landed(&self, dir: Dir, path: BytePath, n: u64) {
        self.metrics.bytes(dir, path, n);
        match path {
            BytePath::Sendfile | BytePath::Splice => self.session.add_spliced(n),
            BytePath::Copied => self.session.add_copied(n),
            BytePath::Tls => {}
        }
        self.progress.add(n);
    }

    /// `n` bytes of a `dir` transfer moved through a userspace buffer
    /// (without progress: the caller reports that in its own unit).
    pub(crate) fn copied(&self, dir: Dir, n: u64) {
        self.metrics.bytes(dir, BytePath::Copied, n);
        self.session.add_copied(n);
    }

    /// `n` file bytes of a `dir` transfer encrypted or decrypted in place
    /// in userspace (FTPS; the `tls` path).
    pub(crate) fn encrypted(&self, dir: Dir, n: u64) {
        self.metrics.bytes(dir, BytePath::Tls, n);
        self.session.add_encrypted(n);
    }

    /// `n` file bytes sent through kernel TLS (FTPS). They were counted by
    /// the path that moved them (sendfile or splice) as they landed.
    pub(crate) fn kernel_tls(&self, n: u64) {
        self.metrics.kernel_tls.add(n);
        self.session.add_kernel_tls(n);
    }
}

/// Which side of a transfer failed.
#[derive(Debug)]
pub(crate) enum SpliceError {
    /// Reading failed: the file (download) or the socket (upload).
    Source(io::Error),
    /// Writing failed: the socket (download) or the file (upload; ENOSPC).
    Sink(io::Error),
}

/// Paces a transfer to byte rates without leaving the zero-copy path: it
/// shrinks the splice chunks and sleeps between them. A transfer may be
/// held to its own rate (an account's cap, `--max-rate-per-session`) and to
/// the server-wide `--max-rate` at once; it waits for whichever is later.
pub(crate) struct Pacer {
    /// Its own cap: bytes per second and when the bytes so far are due.
    own: Option<(u64, Instant)>,
    /// The schedule shared with every other download on every shard.
    shared: Option<Arc<SharedRate>>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer")
            .field("own", &self.own.map(|(r, _)| r))
            .field("shared", &self.shared.as_ref().map(|s| s.rate()))
            .finish()
    }
}

impl Pacer {
    /// `rate` in bytes per second (above zero).
    pub(crate) fn new(rate: u64) -> Pacer {
        Pacer {
            own: Some((rate.max(1), Instant::now())),
            shared: None,
        }
    }

    /// A pacer for the caps that apply: the lowest of the `own` rates, and
    /// the `shared` schedule. `None` when nothing caps the transfer.
    pub(crate) fn for_caps(
        own: impl IntoIterator<Item = Option<u64>>,
        shared: Option<Arc<SharedRate>>,
    ) -> Option<Pacer> {
        let own = own.into_iter().flatten().min();
        if own.is_none() && shared.is_none() {
            return None;
        }
        Some(Pacer {
            own: own.map(|r| (r.max(1), Instant::now())),
            shared,
        })
    }

    /// The largest chunk to move at once: about 1/8 s of traffic at the
    /// lowest rate, so the rate holds over short windows too, and at least
    /// [`limits::PACE_MIN_CHUNK`]. (The floor was 4 KiB: at 1,500 bytes a
    /// second the pauses between chunks, 2.7 s, outlasted a 2 s
    /// `--data-timeout` and the watchdog aborted the download.)
    fn chunk(&self, max: u32) -> u32 {
        let rate = [
            self.own.map(|(r, _)| r),
            self.shared.as_ref().map(|s| s.rate()),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(u64::MAX);
        (rate / 8).clamp(
            limits::PACE_MIN_CHUNK,
            (max as u64).max(limits::PACE_MIN_CHUNK),
        ) as u32
    }

    /// Accounts `n` bytes just moved and sleeps until every schedule allows
    /// more.
    async fn account(&mut self, n: u64) {
        let now = Instant::now();
        let mut due = now;
        if let Some((rate, next)) = &mut self.own {
            // The same GCRA step as the shared schedule, on an Instant.
            let floor = now.checked_sub(RATE_SLACK).unwrap_or(now);
            *next = (*next).max(floor) + Duration::from_nanos(limits::cost_ns(n, *rate));
            due = due.max(*next);
        }
        if let Some(shared) = &self.shared {
            due = due.max(shared.reserve(n, now));
        }
        if due > now {
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

async fn pace(pacer: &mut Option<Pacer>, n: u64) {
    if let Some(p) = pacer {
        p.account(n).await;
    }
}

/// Paces `n` bytes moved outside the splice loops (ASCII downloads copy).
pub(crate) async fn pace_copied(pacer: &mut Option<Pacer>, n: u64) {
    pace(pacer, n).await
}

/// The chunk size a copy loop should use under `pacer`.
pub(crate) fn paced_chunk(pacer: &Option<Pacer>, max: u32) -> u32 {
    match pacer {
        Some(p) => p.chunk(max),
        None => max,
    }
}

/// One splice of up to `want` bytes of `file` at `offset` into an empty
/// pipe, on the ring (io-wq runs it: a file read may wait for the disk);
/// 0 means end of input. It may move less
/// than asked, and that is fine: from a file at an unaligned offset `want`
/// bytes can span one page more than the pipe has slots — asking again for
/// the rest would wait forever for a drain that only starts after this
/// fill. (Sockets are filled by `fill_from_socket`, on the shard.)
async fn fill(file: &FdRef, offset: u64, pipe: &Pipe, want: u32) -> io::Result<u32> {
    sys::splice(file.clone(), Some(offset), pipe.write_end(), want).await
}

/// Splices what has arrived on the non-blocking socket `sock` (up to
/// `want` bytes) into the empty `pipe`, on this thread: a socket never
/// waits for a disk, so the splice needs no io-wq worker. While nothing
/// has arrived the shard waits on its ring (POLLIN) and serves its other
/// sessions. 0 at the end of the stream (the client closed its side).
///
/// TCP urgent data: a splice stops at the urgent mark and moves nothing
/// there, although the socket polls readable. The socket is set
/// SO_OOBINLINE (see [`recv_file`]), so when a splice finds nothing right
/// after the POLL said there was something, a one-byte recv takes the
/// byte at the mark as ordinary data and it goes into the pipe in its
/// place: every byte the client sent lands in the file, in order.
async fn fill_from_socket(sock: &FdRef, pipe: &Pipe, want: u32) -> io::Result<u32> {
    let mut polled = false;
    loop {
        match rustix::pipe::splice(
            sock,
            None,
            pipe.write_fd(),
            None,
            want as usize,
            SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
        ) {
            Ok(n) if n > 0 => return Ok(n as u32),
            // 0 is the end of the stream, or the urgent mark with the end
            // behind it: the recv says which.
            Ok(_) => return urgent_byte(sock, pipe).map(|n| n.unwrap_or(0)),
            // The pipe is empty when a fill starts, so EAGAIN is the socket.
            Err(rustix::io::Errno::AGAIN) if polled => match urgent_byte(sock, pipe)? {
                Some(n) => return Ok(n),
                None => sys::poll_readable(sock.clone()).await?,
            },
            Err(rustix::io::Errno::AGAIN) => {
                sys::poll_readable(sock.clone()).await?;
                polled = true;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Where a splice from `sock` moved nothing: takes the next byte with a
/// recv (the one at the urgent mark, inline under SO_OOBINLINE) and puts
/// it into the empty `pipe`. Some(1) for a byte, Some(0) at the end of
/// the stream, None when nothing has arrived after all.
fn urgent_byte(sock: &FdRef, pipe: &Pipe) -> io::Result<Option<u32>> {
    let mut byte = [0u8; 1];
    match rustix::net::recv(sock, &mut byte, RecvFlags::DONTWAIT) {
        Ok((0, _)) => Ok(Some(0)),
        Ok(_) => {
            rustix::io::write(pipe.write_fd(), &byte)?;
            Ok(Some(1))
        }
        Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Splices `len` bytes out of a pipe into `file` at `offset` (uploads).
/// The progress grows with every byte that lands, so a transfer that fails
/// part-way still reports what it delivered.
async fn drain_to_file(
    ctx: &TransferCtx<'_>,
    pipe: &Pipe,
    file: &FdRef,
    offset: u64,
    len: u32,
) -> io::Result<()> {
    let mut left = len;
    while left > 0 {
        let at = offset + (len - left) as u64;
        let n = sys::splice_to_offset(pipe.read_end(), file.clone(), at, left).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        ctx.landed(Dir::Upload, BytePath::Splice, n as u64);
        left -= n;
    }
    Ok(())
}

/// Runs `op`, one non-blocking send into `sock`, until it does not report
/// WouldBlock: while the socket is full the shard waits on its ring for
/// room (and serves its other sessions); EINTR is retried.
async fn when_writable<T>(sock: &FdRef, mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                sys::poll_writable(sock.clone()).await?
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            done => return done,
        }
    }
}

/// Sends `len` bytes of `file` starting at `offset` into `sock`; the
/// context's progress grows as bytes land.
///
/// The socket is made non-blocking and the shard thread never blocks on
/// it: it sends what the socket takes and waits on the ring (POLLOUT) for
/// room. Each chunk takes one of two zero-copy routes:
/// - resident in the page cache (`cachestat`): `sendfile(2)` right here,
///   which cannot block on the disk;
/// - not resident: an io_uring SPLICE file -> pipe, run by the kernel's
///   io-wq workers (the disk read never stalls the shard), then pipe ->
///   socket on this thread.
///
/// Except: a download of at most [`SMALL`] bytes goes from a copy when
/// the page cache holds it ([`send_small`]); a download over
/// [`WARM_MIN_LEN`] on a path of [`large_segments`] sends its first
/// [`WARM`] bytes by copy when the page cache holds them (see [`WARM`]).
/// Copies count as copied bytes.
///
/// `fin_follows`: the caller shuts the socket for sending as soon as this
/// returns (a plain download's `finish_sending`), so a small download's
/// bytes may wait in the socket for that FIN and leave with it. False for
/// kTLS, where a close_notify follows: its downloads, small ones too, stay
/// zero-copy through the kernel's TLS.
pub(crate) async fn send_file(
    ctx: &mut TransferCtx<'_>,
    file: FdRef,
    offset: u64,
    len: u64,
    sock: FdRef,
    fin_follows: bool,
) -> Result<u64, SpliceError> {
    if len == 0 {
        return Ok(0);
    }
    let mut pos = offset;
    let end = offset + len;
    // The first chunk may learn that no probe answers for this file.
    let mut residency = ctx.residency;
    // Whether the bytes at `pos` are known not to be in the page cache.
    let mut missing = false;
    if len <= SMALL && ctx.pacer.is_none() && fin_follows {
        match send_small(ctx, &file, pos, len, &sock, &mut residency)? {
            Small::Sent(n) => pos += n,
            Small::NotCached => missing = true,
        }
        if pos == end {
            return Ok(len);
        }
    }
    // O_NONBLOCK with one FIONBIO ioctl, as std's set_nonblocking does.
    rustix::io::ioctl_fionbio(&sock, true).map_err(|e| SpliceError::Sink(e.into()))?;
    let mut chunk = PIPE_SIZE;
    if let Some(p) = &ctx.pacer {
        chunk = p.chunk(chunk);
    }
    let mut pipe: Option<Pipe> = None;
    // A long download's first bytes by copy where zero-copy segments
    // would keep a late reader's window shut (see WARM); only when the
    // page cache holds them (pread on this thread should not wait for the
    // disk: exact with cachestat; with the probes, as good as they are for
    // sendfile, a page evicted between two probes is read from the disk
    // here, as sendfile would), and not under a rate cap, which paces
    // chunk by chunk anyway.
    if len > WARM_MIN_LEN
        && ctx.pacer.is_none()
        && large_segments(&sock)
        && sys::page_cache_holds(file.as_fd(), pos, WARM, &mut residency)
    {
        pos += warm_window(ctx, &file, pos, WARM, &sock).await?;
    }
    while pos < end {
        let want = (chunk as u64).min(end - pos);
        let cached = !std::mem::take(&mut missing)
            && sys::page_cache_holds(file.as_fd(), pos, want, &mut residency);
        let moved = if cached {
            sendfile_chunk(ctx, &file, pos, want, &sock).await?
        } else {
            let p = match &pipe {
                Some(p) => p,
                None => pipe.insert(ctx.pool.take().map_err(SpliceError::Source)?),
            };
            let want = want.min(p.capacity as u64) as u32;
            let filled = fill(&file, pos, p, want)
                .await
                .map_err(SpliceError::Source)?;
            if filled > 0 {
                ctx.session.add_from_disk(filled as u64);
                drain_to_socket(ctx, p, &sock, filled)
                    .await
                    .map_err(SpliceError::Sink)?;
            }
            filled as u64
        };
        if moved == 0 {
            break; // end of file: it shrank while we sent it
        }
        pos += moved;
        pace(&mut ctx.pacer, moved).await;
    }
    if let Some(p) = pipe {
        ctx.pool.give(p);
    }
    let done = pos - offset;
    if done < len {
        // The file shrank while we sent it: the client must not take the
        // short copy for the whole file.
        return Err(SpliceError::Source(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("file shrank during the transfer ({done} of {len} bytes sent)"),
        )));
    }
    Ok(done)
}

/// A download of at most this many bytes (the whole of it, from its
/// offset) is sent from a copy when the page cache holds it (see
/// [`send_small`]): about 4 syscalls and, below the MSS, one packet fewer
/// per file in the mirror; its CPU per file against a probe and a
/// sendfile was within this machine's noise from one-page files to 64 KiB
/// (docs/benchmarks.md, nineteenth pass), so larger files stay zero-copy.
const SMALL: u64 = 64 << 10;

/// What [`send_small`] did.
enum Small {
    /// Sent this many bytes (perhaps fewer than asked; perhaps none).
    Sent(u64),
    /// Nothing: the first page is not in the page cache.
    NotCached,
}

/// Sends a small download (`len` bytes of `file` from `pos`, `len` <=
/// [`SMALL`]) from a copy: one `preadv2(RWF_NOWAIT)` read, which is at
/// once the residency probe and the read, and one non-blocking send(2)
/// with MSG_MORE: the caller shuts the socket for sending right after, so
/// the data waits for that FIN and both leave in one segment (one packet,
/// one wake-up of the client fewer per file than a sendfile and a FIN).
/// The buffer is never held across a wait: what the socket did not take
/// (a full send buffer), or what the read did not get (a later page not
/// cached, the file shrank), is left to the caller's zero-copy loop.
fn send_small(
    ctx: &TransferCtx<'_>,
    file: &FdRef,
    pos: u64,
    len: u64,
    sock: &FdRef,
    residency: &mut sys::Residency,
) -> Result<Small, SpliceError> {
    let mut buf = ctx.tls_buffers.take(len as usize);
    let read = sys::read_cached(file.as_fd(), &mut buf, pos, residency);
    let sent = match read {
        Ok(Some(n)) if n > 0 => {
            let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL | SendFlags::MORE;
            match rustix::net::send(sock, &buf[..n], flags) {
                Ok(sent) => Ok(Small::Sent(sent as u64)),
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => Ok(Small::Sent(0)),
                Err(e) => Err(SpliceError::Sink(e.into())),
            }
        }
        // At or past the end (the file shrank): the caller's loop sees it.
        Ok(Some(_)) => Ok(Small::Sent(0)),
        Ok(None) => Ok(Small::NotCached),
        Err(e) => Err(SpliceError::Source(e)),
    };
    ctx.tls_buffers.give(buf);
    if let Ok(Small::Sent(n)) = sent {
        if n > 0 {
            ctx.landed(Dir::Download, BytePath::Copied, n);
        }
    }
    sent
}

/// A download longer than this (bytes) starts with [`WARM`] copied bytes
/// on a path of [`large_segments`]: at most half of it is copied. A
/// late reader (2 ms between reads) took 12 against 8 ms for 384 KiB,
/// 15 against 9 for 512 KiB and 28 against 8 for 1 MiB, sendfile against
/// the copied start (docs/benchmarks.md, seventeenth pass).
const WARM_MIN_LEN: u64 = 512 << 10;

/// Bytes a long download sends by copy (pread + send) before it goes
/// zero-copy, on a path of [`large_segments`]. Measured on Linux 6.18's
/// loopback (MTU 65,536, and 9,000 in a namespace): against a reader whose
/// first reads come late (a client sharing the CPUs), sendfile's segments
/// leave its receive window at two segments for the whole file in most
/// transfers (16 MiB in ~390 ms against ~55 ms), and its kernel never
/// grows the buffer; with the first 256 KiB copied, none of 6 did; with
/// 64 KiB most did, with 128 KiB some (`loadtest/loopback_window.py
/// --methods`, docs/benchmarks.md, seventeenth pass). At an Ethernet MTU
/// neither way stalls. Not the page cache: zero-copy sends of anonymous
/// memory (vmsplice) are as slow; segments of 4 KiB page fragments sent
/// in 64 KiB pieces, zero-copy or copied with the kernel held to single
/// pages (`net.core.high_order_alloc_disable=1`), take twice as long and
/// sometimes stall, and one large first send avoids it even then
/// (eighteenth pass; why, not traced). The mirror at MTU 9,000 needs the
/// copy as much as the loopback's 65,536 (files over 1 MiB p99 825
/// against 225 ms at 200 clients without it).
const WARM: u64 = 256 << 10;

/// Whether the data connection's segments are 8 KiB or more (TCP_MAXSEG:
/// the loopback, jumbo frames), where [`WARM`] applies; 1,500-byte paths
/// (MSS 1,448 or less) do not stall.
fn large_segments(sock: &FdRef) -> bool {
    socket2::SockRef::from(sock)
        .mss()
        .is_ok_and(|m| m >= 8 << 10)
}

/// Sends `want` bytes of `file` from `pos` by pread(2) and send(2): the
/// caller checked that the page cache holds them. Returns the bytes sent
/// (less than `want` at end of file).
async fn warm_window(
    ctx: &TransferCtx<'_>,
    file: &FdRef,
    pos: u64,
    want: u64,
    sock: &FdRef,
) -> Result<u64, SpliceError> {
    let mut buf: Vec<u8> = Vec::with_capacity(want as usize);
    // spare_capacity sets the Vec's length to what was read.
    let n = rustix::io::pread(file, rustix::buffer::spare_capacity(&mut buf), pos)
        .map_err(|e| SpliceError::Source(e.into()))?;
    // As a listing's chunk goes (DataConn::write_all): one non-blocking
    // send, the ring for what the socket did not take.
    if !sys::send_now(sock, &mut buf).map_err(SpliceError::Sink)? {
        sys::send_all(sock.clone(), buf)
            .await
            .map_err(SpliceError::Sink)?;
    }
    ctx.landed(Dir::Download, BytePath::Copied, n as u64);
    Ok(n as u64)
}

/// `sendfile(2)`s `want` bytes of `file` from `pos` into the non-blocking
/// `sock`, waiting on the ring whenever the socket is full. Returns the
/// bytes sent: less than `want` only at end of file.
async fn sendfile_chunk(
    ctx: &TransferCtx<'_>,
    file: &FdRef,
    pos: u64,
    want: u64,
    sock: &FdRef,
) -> Result<u64, SpliceError> {
    let mut off = pos;
    let end = pos + want;
    while off < end {
        let left = (end - off) as usize;
        // WouldBlock when the socket has no room; 0 at end of file. Only
        // for a range the page cache holds, or it may block on the disk.
        let sent_now = when_writable(sock, || {
            Ok(rustix::fs::sendfile(sock, file, Some(&mut off), left)?)
        })
        .await;
        match sent_now {
            Ok(0) => break,
            Ok(n) => ctx.landed(Dir::Download, BytePath::Sendfile, n as u64),
            // The file's side: a read error, or a file that stopped being
            // readable this way.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EIO | libc::EOVERFLOW | libc::EINVAL)
                ) =>
            {
                return Err(SpliceError::Source(e))
            }
            Err(e) => return Err(SpliceError::Sink(e)),
        }
    }
    Ok(off - pos)
}

/// Splices `len` bytes out of a pipe into the non-blocking socket `to`, on
/// this thread, waiting on the ring whenever the socket is full.
async fn drain_to_socket(
    ctx: &TransferCtx<'_>,
    pipe: &Pipe,
    to: &FdRef,
    len: u32,
) -> io::Result<()> {
    let mut left = len;
    while left > 0 {
        let n = when_writable(to, || {
            // Null offsets: the only legal ones for a pipe and a socket.
            let n = rustix::pipe::splice(
                pipe.read_fd(),
                None,
                to,
                None,
                left as usize,
                SpliceFlags::MOVE | SpliceFlags::NONBLOCK,
            )?;
            Ok(n as u32)
        })
        .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        ctx.landed(Dir::Download, BytePath::Splice, n as u64);
        left -= n;
    }
    Ok(())
}

/// Receives from `sock` until the client closes the data connection and
/// writes it into `file` from `offset` (uploads: socket -> pipe -> file).
/// Returns the bytes received.
pub(crate) async fn recv_file(
    ctx: &mut TransferCtx<'_>,
    sock: FdRef,
    file: FdRef,
    offset: u64,
) -> Result<u64, SpliceError> {
    // O_NONBLOCK: the socket side of each splice never waits; urgent data
    // inline, so it reaches the file (see fill_from_socket).
    rustix::io::ioctl_fionbio(&sock, true).map_err(|e| SpliceError::Source(e.into()))?;
    rustix::net::sockopt::set_socket_oobinline(&sock, true)
        .map_err(|e| SpliceError::Source(e.into()))?;
    let mut cur = ctx.pool.take().map_err(SpliceError::Sink)?;
    let mut next = ctx.pool.take().map_err(SpliceError::Sink)?;
    let mut chunk = cur.capacity.min(next.capacity);
    if let Some(p) = &ctx.pacer {
        chunk = p.chunk(chunk);
    }
    let mut pos = offset;
    let mut filled = fill_from_socket(&sock, &cur, chunk)
        .await
        .map_err(SpliceError::Source)?;
    while filled > 0 {
        // Write this pipe into the file while the next one fills from the
        // socket; a full disk ends the transfer without waiting for more.
        let at = pos;
        let (_, refilled) = tokio::try_join!(
            async {
                drain_to_file(ctx, &cur, &file, at, filled)
                    .await
                    .map_err(SpliceError::Sink)
            },
            async {
                fill_from_socket(&sock, &next, chunk)
                    .await
                    .map_err(SpliceError::Source)
            },
        )?;
        pos += filled as u64;
        pace(&mut ctx.pacer, filled as u64).await;
        filled = refilled;
        std::mem::swap(&mut cur, &mut next);
    }
    ctx.pool.give(cur);
    ctx.pool.give(next);
    Ok(pos - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Given-back pipes are kept for the next transfer until the pool is
    /// released, which closes them all (an fd shortage's cure).
    #[test]
    fn released_pipes_leave_the_pool() {
        let pool = PipePool::default();
        let pipes: Vec<Pipe> = (0..3).map(|_| pool.take().unwrap()).collect();
        for p in pipes {
            pool.give(p);
        }
        assert_eq!(pool.pipes.borrow().len(), 3);
        let reused = pool.take().unwrap();
        assert_eq!(pool.pipes.borrow().len(), 2);
        pool.give(reused);
        assert_eq!(pool.release_all(), 3);
        assert_eq!(pool.release_all(), 0);
        assert!(pool.pipes.borrow().is_empty());
    }

    /// A pool that was used since the last trim keeps its pipes; one that
    /// was not gives them back.
    #[test]
    fn an_unused_pool_is_trimmed() {
        let pool = PipePool::default();
        let p = pool.take().unwrap();
        pool.give(p);
        assert_eq!(pool.trim_if_idle(), 0);
        assert_eq!(pool.pipes.borrow().len(), 1);
        assert_eq!(pool.trim_if_idle(), 1);
        assert!(pool.pipes.borrow().is_empty());
        assert_eq!(pool.trim_if_idle(), 0);
    }
}
