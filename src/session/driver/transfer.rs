//! What every transfer shares: make the data connection while the control
//! channel is watched, send the 150, move the bytes (zero-copy for binary
//! downloads and uploads, a copy loop for ASCII, a buffer for listings)
//! under the rate caps, close the data connection, then give the final
//! reply chosen by [`crate::session::outcome`] and log the transfer
//! (tracing, and the xferlog).

use std::cell::Cell;
use std::future::Future;
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::control::Raced;
use super::list::Prepared;
use super::{log_text, Conn, Flow, Loud};
use crate::data::transfer::{self, Channel, TransferError};
use crate::engine::splice::{Pacer, Progress, TransferCtx};
use crate::engine::sys;
use crate::metrics::counters::{Dir, TransferOutcome};
use crate::proto::Reply;
use crate::session::outcome::{self, Direction, Ended, Failure, Final};
use crate::session::step::DataMode;
use crate::vfs::{path, VfsError};
use crate::xferlog;

/// What a transfer moves once the data connection is up.
pub(super) enum Job {
    /// RETR of `file` (`size` bytes) from `offset`; `residency` says how
    /// to tell whether its bytes are cached. Shared: the RETR keeps a
    /// handle, so that the file is closed after the 226, not before it.
    File {
        file: sys::FdRef,
        size: u64,
        offset: u64,
        residency: sys::Residency,
    },
    /// LIST/NLST/MLSD: one line, or a directory streamed chunk by chunk.
    Listing(Prepared),
    /// STOR/APPE/STOU into `file` from `offset`; with `cut`, the file is
    /// first cut at `offset` (a resumed upload, [`Upload::cuts`]), once
    /// the data connection is up.
    ///
    /// [`Upload::cuts`]: crate::vfs::write::Upload::cuts
    Upload {
        file: Rc<OwnedFd>,
        offset: u64,
        cut: bool,
    },
}

/// One transfer command being carried out: what the logs, the xferlog and
/// the final reply need to know about it.
pub(super) struct Transfer {
    /// The command (for the logs).
    pub(super) verb: &'static str,
    pub(super) direction: Direction,
    /// The virtual path as logged (an upload's final name).
    pub(super) path: Vec<u8>,
    /// TYPE A: converted line ends.
    pub(super) ascii: bool,
    /// How the data connection is made.
    pub(super) data: DataMode,
    pub(super) started: Instant,
    /// Said in the 226 of a complete transfer (a listing cut short).
    pub(super) note: Option<String>,
}

impl Transfer {
    pub(super) fn new(
        verb: &'static str,
        direction: Direction,
        path: Vec<u8>,
        ascii: bool,
        data: DataMode,
    ) -> Transfer {
        Transfer {
            verb,
            direction,
            path,
            ascii,
            data,
            started: Instant::now(),
            note: None,
        }
    }
}

/// How a transfer ended, as the driver saw it.
#[derive(Debug)]
pub(super) enum Outcome {
    /// No data connection was made, or its TLS handshake failed. The
    /// replies that say so are not sent yet: [`Conn::finish`] sends them,
    /// after an upload has removed the file it made (a client told 425 or
    /// 522 must not find it).
    NoConnection(Final),
    /// The data connection was made; `bytes` moved before it `ended`.
    /// `held`: the 150, when the transfer ended before it had to wait for
    /// anything and the 150 goes out with the final reply.
    Connected {
        ended: Ended,
        bytes: u64,
        held: Option<Reply>,
    },
}

impl Outcome {
    pub(super) fn is_complete(&self) -> bool {
        matches!(
            self,
            Outcome::Connected {
                ended: Ended::Complete,
                ..
            }
        )
    }
}

/// A full disk or quota (452), a server out of fds or memory (451,
/// transient), else another local error.
fn failure(e: &TransferError) -> Failure {
    match e {
        TransferError::Local(e)
            if matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT)) =>
        {
            Failure::NoSpace
        }
        TransferError::Local(_) => Failure::Local,
        TransferError::Exhausted(_) => Failure::Exhausted,
        TransferError::Network(_) => Failure::Network,
        TransferError::Timeout => Failure::Timeout,
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Conn {
    /// Runs a transfer: connect the data channel, send `opening` (150),
    /// move the bytes, close the data channel. [`Conn::finish`] gives the
    /// final reply for every outcome, a data connection never made (or
    /// whose TLS failed) included.
    pub(super) async fn run_transfer(&mut self, t: &Transfer, opening: Reply, job: Job) -> Outcome {
        let connect = std::pin::pin!(self.open_data(t.data));
        let conn = match self.race_before_opening(connect).await {
            Raced::Done(Ok(c)) => c,
            Raced::Done(Err(e)) => {
                self.transfer_ended(t, TransferOutcome::NoConnection, None);
                let reply = outcome::no_connection();
                // A client that never connects is the client's business; a
                // server out of fds or memory is the operator's.
                let loud = self.loud_if_exhausted(VfsError::exhausts(&e));
                self.log_refusal(
                    loud,
                    reply.code,
                    Some(&t.path),
                    format_args!("data connection failed: {e}"),
                );
                return Outcome::NoConnection(Final::send(vec![reply]));
            }
            Raced::Aborted => {
                self.transfer_ended(t, TransferOutcome::Aborted, None);
                self.log_cut(
                    t,
                    0,
                    "aborted by the client (ABOR) before the data connection",
                );
                return Outcome::NoConnection(Final::send(outcome::aborted()));
            }
            Raced::ControlClosed => {
                self.transfer_ended(t, TransferOutcome::ControlClosed, None);
                return Outcome::NoConnection(Final::close());
            }
            Raced::ShutDown => {
                self.transfer_ended(t, TransferOutcome::Shutdown, None);
                return Outcome::Connected {
                    ended: Ended::ShutDown,
                    bytes: 0,
                    held: None,
                };
            }
        };
        // The 150 goes out before the transfer waits for anything. A plain
        // download or listing that ends without waiting (a cached file the
        // socket takes whole: most of a mirror's files; a listing that fits
        // the socket buffer) sends its 150 with the 226, in one write: one
        // send and one client wake-up fewer, and the client reads the 150
        // before the data as ever. Not for uploads
        // (the race must see a control close before the data's end, see
        // `race`) nor under PROT P (the client starts the data connection's
        // TLS handshake after the 150).
        let holds = matches!(t.direction, Direction::Download | Direction::Listing);
        let opening = if holds && !self.session.protect_data() {
            Some(opening)
        } else if self.reply(opening).await == Flow::Close {
            self.transfer_ended(t, TransferOutcome::ControlClosed, None);
            return Outcome::Connected {
                ended: Ended::ControlClosed,
                bytes: 0,
                held: None,
            };
        } else {
            None
        };
        // PROT P: the data connection's TLS handshake comes after the 150,
        // when clients start it (RFC 4217 section 9).
        let conn = if self.session.protect_data() {
            match Box::pin(self.secure_data(conn, &job)).await {
                Ok(c) => c,
                Err(unsent) => {
                    self.transfer_ended(t, TransferOutcome::NoConnection, None);
                    return Outcome::NoConnection(unsent);
                }
            }
        } else {
            conn
        };
        let progress = Progress::default();
        self.progress = Some(progress.clone());
        self.progress_word = match t.direction {
            Direction::Upload => "received",
            Direction::Download | Direction::Listing => "sent",
        };
        self.row
            .transfer_started(&t.path, t.direction.into(), t.started, progress.clone());
        let ctx = self.ctx.clone();
        let timeout = ctx.config.data_timeout;
        let ascii = t.ascii;
        let account = self.session.account();
        let down_rate = account.and_then(|a| a.max_download_rate);
        let up_rate = account.and_then(|a| a.max_upload_rate);
        let pacer = match job {
            // Downloads: the account's cap, --max-rate-per-session and the
            // server-wide --max-rate (shared by all shards), whichever binds.
            Job::File { .. } | Job::Listing(_) => Pacer::for_caps(
                [down_rate, ctx.config.max_rate_per_session],
                ctx.limits.download.clone(),
            ),
            // ASCII uploads are not paced (a copy loop, as before).
            Job::Upload { .. } if ascii => None,
            Job::Upload { .. } => up_rate.map(Pacer::new),
        };
        let residency = match &job {
            Job::File { residency, .. } => *residency,
            _ => sys::Residency::Probes,
        };
        let session = self.counters.clone();
        let closing = Rc::new(Cell::new(None));
        let closing_slot = closing.clone();
        let uploaded = Rc::new(Cell::new(None));
        let uploaded_slot = uploaded.clone();
        let plain = !self.session.protect_data();
        let moved = matches!(job, Job::Upload { .. }).then(|| progress.clone());
        let fut = async move {
            let mut ch = Channel {
                conn: &conn,
                ctx: TransferCtx {
                    pool: &ctx.pipes,
                    tls_buffers: &ctx.tls_buffers,
                    metrics: &ctx.metrics,
                    session: &session,
                    progress,
                    pacer,
                    residency,
                },
            };
            let r = transfer::guarded(&conn, timeout, moved, async {
                match job {
                    Job::File {
                        file, size, offset, ..
                    } if !ascii => {
                        let len = size.saturating_sub(offset);
                        ch.send_binary(file, offset, len).await
                    }
                    Job::File {
                        file, size, offset, ..
                    } => ch.send_ascii(file, offset, size).await,
                    Job::Listing(Prepared::Bytes(bytes)) => {
                        let sent = ch.send_bytes(bytes).await?;
                        ch.close().await?;
                        Ok(sent)
                    }
                    Job::Listing(Prepared::Stream(mut stream)) => {
                        let mut sent = 0;
                        while let Some(chunk) = stream.next().await? {
                            sent += ch.send_bytes(chunk).await?;
                        }
                        ch.close().await?;
                        Ok(sent)
                    }
                    Job::Upload { file, offset, cut } => {
                        if cut {
                            crate::vfs::write::truncate(&file, offset)
                                .map_err(TransferError::Local)?;
                        }
                        if ascii {
                            ch.recv_ascii(file, offset).await
                        } else {
                            ch.recv_binary(file, offset).await
                        }
                    }
                }
            })
            .await;
            if matches!(&r, Err(e) if failure(e) == Failure::NoSpace) {
                // Let the client finish sending, so it reads our 452
                // instead of a reset.
                ch.discard_rest(timeout).await;
            }
            drop(ch);
            if r.is_ok() && holds {
                // A download sent whole: end it (the client reads to
                // end-of-file, then the 226), but close it only at the
                // next command, so that input from the client cannot reset
                // what it has yet to read (see `finish_sending`).
                closing_slot.set(Some(conn.finish_sending()));
            } else if r.is_ok() && plain {
                // An upload received whole: the client has ended its side
                // and waits for the 226, so the close (a FIN exchange the
                // loopback runs in this thread) waits until the 226 is out
                // (see `Conn::store`).
                uploaded_slot.set(Some(conn));
            } else {
                // Close the data connection before the final reply goes
                // out: a failed transfer's, or a TLS one's close_notify.
                drop(conn);
            }
            r
        };
        let mut fut = std::pin::pin!(fut);
        let mut held = None;
        let raced = match opening {
            None => self.race(fut).await,
            Some(opening) => {
                match std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await {
                    Poll::Ready(r) => {
                        held = Some(opening);
                        Raced::Done(r)
                    }
                    Poll::Pending => {
                        if self.reply(opening).await == Flow::Close {
                            Raced::ControlClosed
                        } else {
                            self.race(fut).await
                        }
                    }
                }
            }
        };
        self.closing = closing.take();
        self.uploaded = uploaded.take();
        let progress = self.progress.take().unwrap_or_default();
        let moved = progress.get();
        self.counters.add_transfer();
        let (ended, bytes) = match raced {
            Raced::Done(Ok(n)) => (Ended::Complete, n),
            Raced::Done(Err(e)) => {
                let why = failure(&e);
                let ended = Ended::Failed(why);
                let code = outcome::final_replies(t.direction, ended)
                    .replies
                    .first()
                    .map_or(0, |r| r.code);
                // A full disk or quota is the operator's to fix: a warning.
                let loud = match why {
                    Failure::NoSpace => Loud::Warn,
                    _ => self.loud_if_exhausted(why == Failure::Exhausted),
                };
                self.log_refusal(
                    loud,
                    code,
                    Some(&t.path),
                    format_args!("failed after {moved} bytes: {e}"),
                );
                (ended, moved)
            }
            Raced::Aborted => (Ended::Aborted, moved),
            Raced::ControlClosed => {
                self.log_cut(t, moved, "the client closed the control connection");
                (Ended::ControlClosed, moved)
            }
            Raced::ShutDown => (Ended::ShutDown, moved),
        };
        self.transfer_ended(t, ended.into(), progress.first_byte());
        Outcome::Connected { ended, bytes, held }
    }

    /// Logs a transfer the client cut short after `bytes`, and how.
    /// Rate-limited per client address with the refusal lines (see
    /// [`crate::logging::limit`]): a client that starts and aborts
    /// downloads in a loop does not fill the log either.
    fn log_cut(&self, t: &Transfer, bytes: u64, how: &str) {
        let Some(suppressed) = self
            .ctx
            .refusal_log
            .allow(self.peer.ip(), std::time::Instant::now())
        else {
            return;
        };
        tracing::info!(
            user = %self.session.user().unwrap_or("-"),
            command = t.verb,
            path = %log_text(&t.path),
            "{} cut after {bytes} bytes: {how}{}",
            t.verb,
            crate::logging::limit::Suppressed(suppressed)
        );
    }

    /// Counts a transfer command that ended with `outcome`: by direction
    /// and outcome, and in the duration and time-to-first-byte histograms
    /// (`first_byte`: when its first data byte moved, if one did).
    fn transfer_ended(&self, t: &Transfer, outcome: TransferOutcome, first_byte: Option<Instant>) {
        let m = &self.ctx.metrics;
        let dir = Dir::from(t.direction);
        m.transfer(dir, outcome);
        if outcome != TransferOutcome::NoConnection {
            m.duration[dir.index()].observe(t.started.elapsed());
        }
        if let Some(at) = first_byte {
            m.first_byte[dir.index()].observe(at.saturating_duration_since(t.started));
        }
    }

    /// The final replies of a transfer (see [`outcome::final_replies`]).
    pub(super) async fn finish(&self, t: &Transfer, outcome: Outcome) -> Flow {
        let (ended, bytes, held) = match outcome {
            Outcome::NoConnection(f) => {
                let flow = self.send_replies(f.replies).await;
                return if f.close { Flow::Close } else { flow };
            }
            Outcome::Connected { ended, bytes, held } => (ended, bytes, held),
        };
        match ended {
            Ended::Aborted => self.log_cut(t, bytes, "aborted by the client (ABOR)"),
            Ended::ShutDown => {
                tracing::warn!(
                    user = %self.session.user().unwrap_or("-"),
                    command = t.verb,
                    path = %log_text(&t.path),
                    "{} cut after {bytes} bytes: the shutdown grace period is over",
                    t.verb
                );
                tracing::info!("server shutting down; closing the session");
            }
            _ => {}
        }
        let mut f = outcome::final_replies(t.direction, ended);
        if let (Ended::Complete, Some(note)) = (ended, &t.note) {
            f.replies = vec![outcome::complete_noting(note)];
        }
        // Why it ended was logged where it ended.
        let flow = self.send_replies(held.into_iter().chain(f.replies)).await;
        if f.close {
            Flow::Close
        } else {
            flow
        }
    }

    /// Logs a file transfer: a debug line (the xferlog records every
    /// transfer, and an incomplete one has had its info line where it
    /// ended), and the xferlog line when enabled.
    pub(super) async fn log_transfer(&self, t: &Transfer, bytes: u64, complete: bool) {
        let elapsed = t.started.elapsed();
        let rate = bytes as f64 / elapsed.as_secs_f64().max(1e-6) / (1 << 20) as f64;
        // Why an incomplete transfer ended was logged where it ended.
        tracing::debug!(
            path = %log_text(&t.path),
            bytes,
            ms = elapsed.as_millis() as u64,
            "{} {} ({rate:.1} MiB/s)",
            t.verb,
            if complete { "complete" } else { "incomplete" }
        );
        let Some(log) = &self.ctx.xferlog else { return };
        let host = self.peer.ip().to_string();
        let user = self.session.user().unwrap_or("");
        let account = self.session.account();
        let anonymous = account.map(|a| a.anonymous).unwrap_or(true);
        let real;
        let path: &[u8] = if self.ctx.config.xferlog_real_path {
            let home = account.map(|a| a.home.as_slice()).unwrap_or(b"/");
            real = real_path(&self.ctx.config.root, home, &t.path);
            &real
        } else {
            &t.path
        };
        let written = log
            .write(&xferlog::Record {
                now: unix_now(),
                seconds: elapsed.as_secs(),
                remote_host: &host,
                bytes,
                path,
                ascii: t.ascii,
                outgoing: t.direction == Direction::Download,
                anonymous,
                user,
                complete,
            })
            .await;
        if written.is_err() {
            self.ctx.metrics.xferlog_errors.inc();
        }
    }
}

/// The server-side path of `vpath` (absolute from the user's `/`) for an
/// account whose home is `home` (a virtual path under `root`).
fn real_path(root: &std::path::Path, home: &[u8], vpath: &[u8]) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let rel = &vpath[vpath.iter().position(|&b| b != b'/').unwrap_or(vpath.len())..];
    let under_root = path::join(home, rel);
    let mut out = root.as_os_str().as_bytes().to_vec();
    if under_root != b"/" {
        if out.ends_with(b"/") {
            out.pop();
        }
        out.extend_from_slice(&under_root);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::real_path;
    use std::path::Path;

    #[test]
    fn real_paths() {
        let root = Path::new("/srv/ftp");
        assert_eq!(real_path(root, b"/", b"/pub/a.iso"), b"/srv/ftp/pub/a.iso");
        assert_eq!(
            real_path(root, b"/home/alice", b"/in/x y"),
            b"/srv/ftp/home/alice/in/x y"
        );
        assert_eq!(real_path(Path::new("/"), b"/", b"/a"), b"/a");
        assert_eq!(real_path(root, b"/", b"/"), b"/srv/ftp");
    }
}
