//! The zero-copy RETR path: file -> pipe -> socket with io_uring splice.
//!
//! io_uring has no sendfile opcode; sendfile is splice through a pipe under
//! the hood, so we do the same with two SPLICE SQEs on the shard's ring.
//! Two pipes of 1 MiB alternate: while one drains into the socket the other
//! fills from the page cache, so disk-side and socket-side work overlap
//! (a serial fill/drain loop measured ~0.85 of a sendfile loop; small
//! chunks far less). Pipes come from a per-shard pool and go back only
//! after a clean transfer, when they are known to be empty; after an error
//! they are dropped (an op still in flight keeps its own handle on them).

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::sys::{self, FdRef, Pipe};
use crate::limits::{self, SharedRate, RATE_SLACK};

/// Pipe size requested with F_SETPIPE_SZ (the default pipe-max-size).
pub const PIPE_SIZE: u32 = 1 << 20;

/// Most idle pipes a shard keeps (two per concurrent transfer).
const POOL_MAX: usize = 128;

/// A shard's pipes, reused across transfers to save two syscalls and the
/// pipe's page allocations per file.
#[derive(Default)]
pub struct PipePool {
    pipes: RefCell<Vec<Pipe>>,
}

impl PipePool {
    pub fn take(&self) -> io::Result<Pipe> {
        match self.pipes.borrow_mut().pop() {
            Some(p) => Ok(p),
            None => Pipe::new(PIPE_SIZE),
        }
    }

    /// Returns an empty pipe to the pool.
    pub fn give(&self, pipe: Pipe) {
        let mut pipes = self.pipes.borrow_mut();
        if pipes.len() < POOL_MAX {
            pipes.push(pipe);
        }
    }

    pub fn idle(&self) -> usize {
        self.pipes.borrow().len()
    }
}

/// Per-shard byte counters; `STAT` shows them, so a user (or a test) can
/// see which path moved the bytes.
#[derive(Default, Debug)]
pub struct Counters {
    /// Bytes moved file -> socket by splice (zero-copy).
    pub spliced: Cell<u64>,
    /// Bytes moved through a userspace buffer (ASCII mode, listings).
    pub copied: Cell<u64>,
    pub transfers: Cell<u64>,
}

impl Counters {
    pub fn add_spliced(&self, n: u64) {
        self.spliced.set(self.spliced.get() + n);
    }

    pub fn add_copied(&self, n: u64) {
        self.copied.set(self.copied.get() + n);
    }
}

/// Which side of a transfer failed.
#[derive(Debug)]
pub enum SpliceError {
    /// Reading failed: the file (download) or the socket (upload).
    Source(io::Error),
    /// Writing failed: the socket (download) or the file (upload; ENOSPC).
    Sink(io::Error),
}

/// Paces a transfer to byte rates without leaving the zero-copy path: it
/// shrinks the splice chunks and sleeps between them. A transfer may be
/// held to its own rate (an account's cap, `--max-rate-per-session`) and to
/// the server-wide `--max-rate` at once; it waits for whichever is later.
pub struct Pacer {
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
    pub fn new(rate: u64) -> Pacer {
        Pacer {
            own: Some((rate.max(1), Instant::now())),
            shared: None,
        }
    }

    /// A pacer for the caps that apply: the lowest of the `own` rates, and
    /// the `shared` schedule. `None` when nothing caps the transfer.
    pub fn for_caps(
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
    /// lowest rate, so the rate holds over short windows too.
    fn chunk(&self, max: u32) -> u32 {
        let rate = [
            self.own.map(|(r, _)| r),
            self.shared.as_ref().map(|s| s.rate()),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(u64::MAX);
        (rate / 8).clamp(4096, max as u64) as u32
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
pub async fn pace_copied(pacer: &mut Option<Pacer>, n: u64) {
    pace(pacer, n).await
}

/// The chunk size a copy loop should use under `pacer`.
pub fn paced_chunk(pacer: &Option<Pacer>, max: u32) -> u32 {
    match pacer {
        Some(p) => p.chunk(max),
        None => max,
    }
}

/// One splice of up to `want` bytes from `from` (at `offset` when given)
/// into an empty pipe; 0 means end of input. It may move less than asked,
/// and that is fine: from a socket it returns what has arrived, and from a
/// file at an unaligned offset `want` bytes can span one page more than
/// the pipe has slots — asking again for the rest would wait forever for a
/// drain that only starts after this fill.
async fn fill(from: &FdRef, offset: Option<u64>, pipe: &Pipe, want: u32) -> io::Result<u32> {
    sys::splice(from.clone(), offset, pipe.write_end(), want).await
}

/// Splices `len` bytes out of a pipe into `to` (at `offset` when given).
/// `moved` grows with every byte that lands, so a transfer that fails
/// part-way still reports what it delivered.
async fn drain(
    pipe: &Pipe,
    to: &FdRef,
    offset: Option<u64>,
    len: u32,
    counters: &Counters,
    moved: &Cell<u64>,
) -> io::Result<()> {
    let mut left = len;
    while left > 0 {
        let n = match offset {
            Some(o) => {
                sys::splice_to_offset(pipe.read_end(), to.clone(), o + (len - left) as u64, left)
                    .await?
            }
            None => sys::splice(pipe.read_end(), None, to.clone(), left).await?,
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        counters.add_spliced(n as u64);
        moved.set(moved.get() + n as u64);
        left -= n;
    }
    Ok(())
}

/// Sends `len` bytes of `file` starting at `offset` into `sock`. `sent`
/// grows as chunks complete, for STAT while the transfer runs.
#[allow(clippy::too_many_arguments)]
pub async fn send_file(
    pool: &PipePool,
    counters: &Counters,
    file: FdRef,
    offset: u64,
    len: u64,
    sock: FdRef,
    sent: Rc<Cell<u64>>,
    mut pacer: Option<Pacer>,
) -> Result<u64, SpliceError> {
    if len == 0 {
        return Ok(0);
    }
    let mut cur = pool.take().map_err(SpliceError::Source)?;
    let mut next = pool.take().map_err(SpliceError::Source)?;
    let mut chunk = cur.capacity.min(next.capacity);
    if let Some(p) = &pacer {
        chunk = p.chunk(chunk);
    }
    let chunk = chunk as u64;
    let mut pos = offset;
    let end = offset + len;

    let mut filled = fill(&file, Some(pos), &cur, chunk.min(end - pos) as u32)
        .await
        .map_err(SpliceError::Source)?;
    while filled > 0 {
        pos += filled as u64;
        let want = chunk.min(end - pos) as u32;
        let refilled = if want == 0 {
            drain(&cur, &sock, None, filled, counters, &sent)
                .await
                .map_err(SpliceError::Sink)?;
            0
        } else {
            // Drain this pipe into the socket while the next one fills
            // from the page cache; the first error ends both.
            tokio::try_join!(
                async {
                    drain(&cur, &sock, None, filled, counters, &sent)
                        .await
                        .map_err(SpliceError::Sink)
                },
                async {
                    fill(&file, Some(pos), &next, want)
                        .await
                        .map_err(SpliceError::Source)
                },
            )?
            .1
        };
        pace(&mut pacer, filled as u64).await;
        filled = refilled;
        std::mem::swap(&mut cur, &mut next);
    }
    pool.give(cur);
    pool.give(next);
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

/// Receives from `sock` until the client closes the data connection and
/// writes it into `file` from `offset` (uploads: socket -> pipe -> file).
/// Returns the bytes received.
pub async fn recv_file(
    pool: &PipePool,
    counters: &Counters,
    sock: FdRef,
    file: FdRef,
    offset: u64,
    received: Rc<Cell<u64>>,
    mut pacer: Option<Pacer>,
) -> Result<u64, SpliceError> {
    let mut cur = pool.take().map_err(SpliceError::Sink)?;
    let mut next = pool.take().map_err(SpliceError::Sink)?;
    let mut chunk = cur.capacity.min(next.capacity);
    if let Some(p) = &pacer {
        chunk = p.chunk(chunk);
    }
    let mut pos = offset;
    let mut filled = fill(&sock, None, &cur, chunk)
        .await
        .map_err(SpliceError::Source)?;
    while filled > 0 {
        // Write this pipe into the file while the next one fills from the
        // socket; a full disk ends the transfer without waiting for more.
        let at = pos;
        let (_, refilled) = tokio::try_join!(
            async {
                drain(&cur, &file, Some(at), filled, counters, &received)
                    .await
                    .map_err(SpliceError::Sink)
            },
            async {
                fill(&sock, None, &next, chunk)
                    .await
                    .map_err(SpliceError::Source)
            },
        )?;
        pos += filled as u64;
        pace(&mut pacer, filled as u64).await;
        filled = refilled;
        std::mem::swap(&mut cur, &mut next);
    }
    pool.give(cur);
    pool.give(next);
    Ok(pos - offset)
}
