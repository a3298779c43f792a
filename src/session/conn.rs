//! The session driver: runs a [`Session`] over a real control connection.
//!
//! The control channel is read on demand ([`ControlReader`]): a POLL op
//! waits for readability — holding no buffer, so an idle session costs
//! almost nothing — then a non-blocking recv drains the socket into a
//! shard-wide scratch buffer and the line reader. Nothing is read that the
//! driver has not asked for, so a client that floods commands is simply
//! not read further and TCP pushes back. The driver executes each
//! command's [`Step`], doing the I/O the pure state machine asked for.
//! During a transfer the driver keeps reading the control channel: ABOR
//! stops the transfer at once (426 then 226), STAT reports progress, and
//! any other command waits its turn, as RFC 959 orders.
//!
//! Every wait is bounded: for a command by `--idle-timeout` (and, before
//! login, `--login-timeout` from connect: a client dripping one byte a
//! second never completes a login in time), for a reply to be taken by
//! `--data-timeout`, for a data connection or its progress likewise. On a
//! graceful shutdown a session waiting for a command gets 421 at once; one
//! running a transfer finishes it first, or is cut when the grace period
//! ends.

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::Future;
use std::net::{IpAddr, Shutdown, SocketAddr, SocketAddrV4};
use std::os::fd::OwnedFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use socket2::Socket;
use tracing::Instrument;

use super::{DataMode, ListFormat, Session, Step};
use crate::auth::{password, Perms};
use crate::data::passive::{PassiveError, PassiveListener};
use crate::data::transfer::{self, TransferError};
use crate::data::{active, DataConn};
use crate::engine::splice::Pacer;
use crate::engine::sys::{self, FdRef};
use crate::proto::codes::*;
use crate::proto::{addr, parse, Command, LineEvent, LineReader, Reply, MAX_LINE};
use crate::server::{Places, ShardCtx};
use crate::shutdown::{self, Phase};
use crate::vfs::dir::{self, Links};
use crate::vfs::listing::{self, Entry};
use crate::vfs::write::{self, UploadKind};
use crate::vfs::{path, resolve, Stat, VfsError};
use crate::xferlog;

/// Scratch buffer a shard reads control connections into.
const SCRATCH: usize = 16 * 1024;
/// Commands queued behind a running transfer.
const MAX_PENDING: usize = 32;

#[derive(Debug)]
enum Event {
    Line(Vec<u8>),
    TooLong,
    Closed,
}

#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// How racing an operation against the control channel ended.
enum Raced<T> {
    Done(T),
    Aborted,
    ControlClosed,
    /// The shutdown grace period ended.
    ShutDown,
}

/// What a transfer moves once the data connection is up.
enum Job {
    /// RETR.
    File {
        file: OwnedFd,
        size: u64,
        offset: u64,
        ascii: bool,
    },
    /// LIST/NLST/MLSD, built in memory.
    Listing(Vec<u8>),
    /// STOR/APPE/STOU into `file` from `offset`.
    Upload {
        file: Rc<OwnedFd>,
        offset: u64,
        ascii: bool,
    },
}

/// How a transfer ended.
#[derive(Debug)]
enum Outcome {
    Complete(u64),
    Failed(TransferError),
    Aborted,
    /// No data connection was made; the reply has been sent.
    NoConnection(Flow),
    ControlClosed,
    /// Cut at the end of the shutdown grace period.
    ShutDown,
}

impl Outcome {
    fn is_complete(&self) -> bool {
        matches!(self, Outcome::Complete(_))
    }

    fn had_connection(&self) -> bool {
        !matches!(self, Outcome::NoConnection(_))
    }
}

/// How long after an upload's data connection ends we watch the control
/// connection for the close that marks a killed client (measured here: the
/// second close arrives 65-120 µs after the first).
const KILLED_CLIENT_GRACE: Duration = Duration::from_millis(2);

/// True if the control connection is closed, or closes within
/// [`KILLED_CLIENT_GRACE`]; false at once if the client sends something.
async fn control_closes_soon(sock: &Socket) -> bool {
    let fd = std::os::fd::AsRawFd::as_raw_fd(sock);
    let deadline = Instant::now() + KILLED_CLIENT_GRACE;
    loop {
        match sys::peek(fd) {
            sys::Peek::Closed => return true,
            sys::Peek::Data => return false,
            sys::Peek::Empty if Instant::now() >= deadline => return false,
            sys::Peek::Empty => tokio::time::sleep(Duration::from_micros(500)).await,
        }
    }
}

/// Waits (briefly) until no io_uring op holds `fd` any more.
async fn wait_for_ops(fd: &Rc<OwnedFd>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Rc::strong_count(fd) > 1 {
        if Instant::now() > deadline {
            tracing::warn!("a file operation is still running after 10 s; cleaning up anyway");
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn is_no_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

struct Conn {
    ctx: Rc<ShardCtx>,
    /// The session's `/`: --root for anonymous, the account's home else.
    root: FdRef,
    root_fd: Arc<OwnedFd>,
    /// Whether the logged-in user is anonymous (for the xferlog).
    anonymous: bool,
    /// Per-account (download, upload) caps in bytes per second.
    rates: (Option<u64>, Option<u64>),
    failed_logins: u32,
    sock: Rc<Socket>,
    peer: SocketAddr,
    local: SocketAddr,
    session: Session,
    pasv: Option<PassiveListener>,
    reader: ControlReader,
    pending: VecDeque<Event>,
    /// Bytes sent by the running transfer (for STAT during a transfer).
    progress: Option<Rc<Cell<u64>>>,
    /// Bytes the last transfer moved, complete or not (for the logs).
    moved: u64,
    /// Where a graceful shutdown stands.
    shutdown: shutdown::Watch,
    /// Since when the session has been waiting to log in (connect or REIN):
    /// `--login-timeout` counts from here.
    login_since: Instant,
    /// The session's places in the shard's count and the server's limits,
    /// given back when the session (this state) is dropped.
    _places: Places,
}

/// What waiting for the next control event gave.
enum Next {
    Event(Event),
    Idle,
    LoginTimeout,
    ShuttingDown,
}

/// Serves one control connection until it closes. The session's state is
/// built here, outside the task's future, so the future holds it once.
pub fn run(
    ctx: Rc<ShardCtx>,
    sock: Socket,
    peer: SocketAddr,
    local: SocketAddr,
    places: Places,
) -> impl Future<Output = ()> {
    let span = tracing::info_span!("session", %peer, shard = ctx.id);
    let sock = Rc::new(sock);
    let conn = Conn {
        root: ctx.root.clone(),
        root_fd: ctx.root_fd.clone(),
        anonymous: true,
        rates: (None, None),
        failed_logins: 0,
        session: Session::new(peer, ctx.config.allow_foreign_data),
        shutdown: ctx.shutdown.clone(),
        login_since: Instant::now(),
        _places: places,
        ctx,
        reader: ControlReader::new(sock.clone()),
        sock,
        peer,
        local,
        pasv: None,
        pending: VecDeque::new(),
        progress: None,
        moved: 0,
    };
    conn.serve().instrument(span)
}

thread_local! {
    /// The shard's control-read buffer: sessions borrow it for one
    /// synchronous recv at a time, so none needs a buffer of its own.
    static SCRATCH_BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; SCRATCH]);
}

/// Reads control lines on demand. Cancel-safe: the only await is the POLL
/// op, and bytes received go straight into `lines`, which the reader owns.
struct ControlReader {
    sock: Rc<Socket>,
    lines: LineReader,
    closed: bool,
}

impl ControlReader {
    fn new(sock: Rc<Socket>) -> ControlReader {
        ControlReader {
            sock,
            lines: LineReader::new(MAX_LINE),
            closed: false,
        }
    }

    /// The next control event: a line, a too-long line, or end of stream.
    async fn next(&mut self) -> Event {
        use std::os::fd::AsRawFd;
        loop {
            match self.lines.next_event() {
                Some(LineEvent::Line(l)) => return Event::Line(l),
                Some(LineEvent::TooLong) => return Event::TooLong,
                None => {}
            }
            if self.closed {
                return Event::Closed;
            }
            let fd = self.sock.as_raw_fd();
            let got = SCRATCH_BUF.with(|b| {
                let mut b = b.borrow_mut();
                let r = sys::recv_now(fd, &mut b);
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

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Conn {
    async fn serve(mut self) {
        tracing::debug!(local = %self.local, "connected");
        self.session_loop().await;
        // Ends any POLL op still waiting on the socket, so the fd closes now.
        let _ = self.sock.shutdown(Shutdown::Both);
        tracing::debug!("disconnected");
    }

    async fn session_loop(&mut self) {
        if self
            .reply(Reply::new(SERVICE_READY, "ringftp ready."))
            .await
            == Flow::Close
        {
            return;
        }
        loop {
            // During a shutdown, a session between commands is idle: even
            // commands the client already queued get the 421.
            let queued = match self.pending.pop_front() {
                Some(ev) if self.phase() == Phase::Running => Some(ev),
                _ => None,
            };
            let ev = match queued {
                Some(ev) => ev,
                None => match self.next_event().await {
                    Next::Event(ev) => ev,
                    Next::Idle => {
                        tracing::info!("idle timeout");
                        let _ = self
                            .reply(Reply::new(SERVICE_NOT_AVAILABLE, "Timeout."))
                            .await;
                        break;
                    }
                    Next::LoginTimeout => {
                        tracing::info!("not logged in within --login-timeout; closing");
                        let _ = self
                            .reply(Reply::new(
                                SERVICE_NOT_AVAILABLE,
                                "Login timeout; closing control connection.",
                            ))
                            .await;
                        break;
                    }
                    Next::ShuttingDown => {
                        let _ = self.shutting_down().await;
                        break;
                    }
                },
            };
            // Boxed: the idle task then holds only the connection state and
            // the wait for the next line, not the largest command's future.
            if Box::pin(self.on_event(ev)).await == Flow::Close {
                break;
            }
            // A passive listener lives only while the session is in
            // passive mode: a PORT, a failed PASV or a transfer ends it.
            if self.session.data_mode() != DataMode::Passive {
                self.pasv = None;
            }
        }
    }

    fn phase(&self) -> Phase {
        *self.shutdown.borrow()
    }

    /// Waits for the next control event, at most `--idle-timeout` (and,
    /// before login, until `--login-timeout` after connect or REIN), and no
    /// longer than until a shutdown begins.
    async fn next_event(&mut self) -> Next {
        let now = Instant::now();
        let idle = now + self.ctx.config.idle_timeout;
        let login = (self.session.user().is_none())
            .then(|| self.login_since + self.ctx.config.login_timeout)
            .filter(|l| *l < idle);
        let deadline = login.unwrap_or(idle);
        tokio::select! {
            biased;
            _ = shutdown::reached(&mut self.shutdown, Phase::Draining) => Next::ShuttingDown,
            r = tokio::time::timeout_at(deadline.into(), self.reader.next()) => match r {
                Ok(ev) => Next::Event(ev),
                Err(_) if login.is_some() => Next::LoginTimeout,
                Err(_) => Next::Idle,
            },
        }
    }

    /// The goodbye of a graceful shutdown.
    async fn shutting_down(&self) -> Flow {
        tracing::info!("server shutting down; closing the session");
        let _ = self
            .reply(Reply::new(
                SERVICE_NOT_AVAILABLE,
                "Server shutting down, closing control connection.",
            ))
            .await;
        Flow::Close
    }

    async fn on_event(&mut self, ev: Event) -> Flow {
        match ev {
            Event::Closed => Flow::Close,
            Event::TooLong => {
                self.reply(Reply::new(
                    SYNTAX_ERROR,
                    format!("Command line too long (more than {MAX_LINE} bytes)."),
                ))
                .await
            }
            Event::Line(line) => match parse(&line) {
                Ok(cmd) => {
                    let verb = cmd.verb();
                    match &cmd {
                        Command::Pass(_) => tracing::debug!("PASS ****"),
                        _ => tracing::debug!("{}", lossy(&line)),
                    }
                    let step = self.session.handle(cmd);
                    self.execute(verb, step).await
                }
                Err(e) => {
                    tracing::debug!("unparsed command: {e:?}");
                    self.reply(e.reply()).await
                }
            },
        }
    }

    /// Writes one reply. A client that does not read its replies for
    /// `--data-timeout` is dropped rather than buffered for without bound.
    async fn reply(&self, reply: Reply) -> Flow {
        if reply.code >= 400 {
            tracing::info!("reply {} {}", reply.code, lossy(&reply.text));
        }
        let buf = reply.to_bytes();
        match tokio::time::timeout(
            self.ctx.config.data_timeout,
            sys::send_all(self.sock.clone() as FdRef, buf),
        )
        .await
        {
            Ok(Ok(())) => Flow::Continue,
            Ok(Err(e)) => {
                tracing::debug!("control write failed: {e}");
                Flow::Close
            }
            Err(_) => {
                tracing::info!("client does not read its replies; closing");
                Flow::Close
            }
        }
    }

    async fn replies(&self, replies: impl IntoIterator<Item = Reply>) -> Flow {
        for r in replies {
            if self.reply(r).await == Flow::Close {
                return Flow::Close;
            }
        }
        Flow::Continue
    }

    async fn execute(&mut self, verb: &'static str, step: Step) -> Flow {
        match step {
            Step::Reply(r) => {
                if verb == "REIN" {
                    self.login_since = Instant::now();
                    self.root = self.ctx.root.clone();
                    self.root_fd = self.ctx.root_fd.clone();
                    self.anonymous = true;
                    self.rates = (None, None);
                }
                self.reply(r).await
            }
            Step::Close(r) => {
                let _ = self.reply(r).await;
                Flow::Close
            }
            Step::OpenPassive { extended } => self.open_passive(extended).await,
            Step::Status => self.reply(self.status()).await,
            Step::Abort => {
                self.pasv = None;
                self.reply(Reply::new(DATA_OPEN, "No transfer to ABOR."))
                    .await
            }
            // A login storm boxes thousands of these at once: keep each
            // the size of a login, not of a transfer.
            Step::CheckLogin { user, password } => Box::pin(self.check_login(user, password)).await,
            // Everything that touches the filesystem, a data connection or
            // a password check runs in a boxed future: those futures are
            // large, and inline they would size every idle session's task
            // for the worst case (10,000 idle sessions measured ~3.8 KiB each of RSS growth, peak).
            step => Box::pin(self.execute_io(verb, step)).await,
        }
    }

    async fn execute_io(&mut self, verb: &'static str, step: Step) -> Flow {
        match step {
            Step::ChangeDir(vpath) => match resolve::stat(&self.root, &vpath).await {
                Ok(st) if st.is_dir() => {
                    self.session.cwd_changed(vpath);
                    self.reply(Reply::new(
                        FILE_ACTION_OK,
                        "Directory successfully changed.",
                    ))
                    .await
                }
                Ok(_) => self.refuse(verb, &vpath, VfsError::NotADirectory).await,
                Err(e) => self.refuse(verb, &vpath, e).await,
            },
            Step::Size(vpath) => match resolve::stat(&self.root, &vpath).await {
                Ok(st) if st.is_file() => {
                    self.reply(Reply::new(FILE_STATUS, st.size.to_string()))
                        .await
                }
                Ok(_) => self.refuse(verb, &vpath, VfsError::NotAFile).await,
                Err(e) => self.refuse(verb, &vpath, e).await,
            },
            Step::Mdtm(vpath) => match resolve::stat(&self.root, &vpath).await {
                Ok(st) if st.is_file() => {
                    self.reply(Reply::new(
                        FILE_STATUS,
                        crate::vfs::time::format_mdtm(st.mtime),
                    ))
                    .await
                }
                Ok(_) => self.refuse(verb, &vpath, VfsError::NotAFile).await,
                Err(e) => self.refuse(verb, &vpath, e).await,
            },
            Step::Retr {
                path,
                offset,
                ascii,
                data,
            } => Box::pin(self.retr(verb, path, offset, ascii, data)).await,
            Step::List {
                path,
                shown,
                format,
                all,
                data,
            } => Box::pin(self.list(verb, path, shown, format, all, data)).await,
            Step::Store {
                path,
                kind,
                ascii,
                data,
            } => Box::pin(self.store(verb, path, kind, ascii, data)).await,
            Step::Delete(vpath) => {
                let r = write::delete_file(&self.root, &vpath).await;
                self.changed(
                    verb,
                    &vpath,
                    r,
                    Reply::new(FILE_ACTION_OK, "Delete operation successful."),
                )
                .await
            }
            Step::MakeDir(vpath) => {
                let r = write::make_dir(&self.root, &vpath).await;
                let mut text = crate::proto::reply::quote_path(&vpath);
                text.extend_from_slice(b" created");
                self.changed(verb, &vpath, r, Reply::new(PATH_CREATED, text))
                    .await
            }
            Step::RemoveDir(vpath) => {
                let r = write::remove_dir(&self.root, &vpath).await;
                self.changed(
                    verb,
                    &vpath,
                    r,
                    Reply::new(FILE_ACTION_OK, "Remove directory operation successful."),
                )
                .await
            }
            Step::RenameFrom(vpath) => match write::exists(&self.root, &vpath).await {
                Ok(()) => {
                    self.session.rename_from(vpath);
                    self.reply(Reply::new(FILE_ACTION_PENDING, "Ready for RNTO."))
                        .await
                }
                Err(e) => self.refuse(verb, &vpath, e).await,
            },
            Step::Rename { from, to } => {
                let r = write::rename(&self.root, &from, &to).await;
                if r.is_ok() {
                    tracing::info!(from = %lossy(&from), to = %lossy(&to), "renamed");
                }
                self.changed(
                    verb,
                    &to,
                    r,
                    Reply::new(FILE_ACTION_OK, "Rename successful."),
                )
                .await
            }
            Step::SetTime { path: vpath, time } => {
                let r = write::set_mtime(&self.root, &vpath, time).await;
                let text = format!(
                    "Modify={}; {}",
                    crate::vfs::time::format_mdtm(time),
                    lossy(&vpath)
                );
                self.changed(verb, &vpath, r, Reply::new(FILE_STATUS, text))
                    .await
            }
            Step::Chmod { path: vpath, mode } => {
                let r = write::chmod(&self.root, &vpath, mode).await;
                self.changed(verb, &vpath, r, Reply::new(OK, "SITE CHMOD command ok."))
                    .await
            }
            Step::Mlst(vpath) => self.mlst(verb, vpath).await,
            Step::StatPath(vpath) => self.stat_path(verb, vpath).await,
            Step::Reply(_)
            | Step::Close(_)
            | Step::OpenPassive { .. }
            | Step::Status
            | Step::Abort
            | Step::CheckLogin { .. } => {
                unreachable!("handled by execute")
            }
        }
    }

    /// The reply to a tree change: `ok` on success, else the refusal.
    async fn changed(
        &self,
        verb: &str,
        vpath: &[u8],
        result: Result<(), VfsError>,
        ok: Reply,
    ) -> Flow {
        match result {
            Ok(()) => {
                tracing::info!(path = %lossy(vpath), "{verb} done");
                self.reply(ok).await
            }
            Err(e) => self.refuse(verb, vpath, e).await,
        }
    }

    /// 550 for a path the client may not use, logged with the reason.
    async fn refuse(&self, verb: &str, vpath: &[u8], e: VfsError) -> Flow {
        match e {
            VfsError::Escapes => tracing::warn!("refused {verb} {}: {e}", lossy(vpath)),
            _ => tracing::info!("refused {verb} {}: {e}", lossy(vpath)),
        }
        self.reply(Reply::new(FILE_UNAVAILABLE, e.reply_text()))
            .await
    }

    /// USER/PASS. Anonymous (unless --no-anonymous) is accepted with any
    /// password; accounts are checked with argon2 on the blocking pool so
    /// a login never stalls other sessions on this shard. Failures cost a
    /// growing delay, close the session after --max-login-attempts, and
    /// count towards the address's --login-ban.
    async fn check_login(&mut self, user: String, password: Vec<u8>) -> Flow {
        let ip = self.peer.ip();
        if self.ctx.bans.is_banned(ip, Instant::now()) {
            tracing::warn!(user = %user, "login refused: {ip} is banned after repeated failed logins (--login-ban)");
            let _ = self
                .reply(Reply::new(
                    SERVICE_NOT_AVAILABLE,
                    "Too many failed logins from your address; try again later.",
                ))
                .await;
            return Flow::Close;
        }
        let anonymous = user.eq_ignore_ascii_case("anonymous") || user.eq_ignore_ascii_case("ftp");
        if anonymous && self.ctx.config.anonymous {
            tracing::info!(user = %user, "anonymous login");
            self.root = self.ctx.root.clone();
            self.root_fd = self.ctx.root_fd.clone();
            self.anonymous = true;
            self.rates = (None, None);
            self.session.logged_in(user, Perms::anonymous());
            return self.reply(Reply::new(LOGGED_IN, "Login successful.")).await;
        }
        let account = if anonymous {
            None
        } else {
            self.ctx.users.snapshot().get(&user)
        };
        // Unknown names cost the same argon2 time as known ones, so timing
        // does not tell which accounts exist.
        let hash = account
            .as_ref()
            .map(|a| a.hash.clone())
            .unwrap_or_else(|| password::decoy().to_string());
        let verified = {
            // Waiting here queues this login behind the shard's running
            // checks; other sessions' commands and transfers go on.
            let _permit = self.ctx.password_checks.acquire().await;
            tokio::task::spawn_blocking(move || password::verify(&hash, &password))
                .await
                .unwrap_or(false)
        };
        match account {
            Some(account) if verified => match self.open_home(&account.home).await {
                Ok(home) => {
                    tracing::info!(user = %user, home = %lossy(&account.home), "login");
                    self.root = Rc::new(home.clone());
                    self.root_fd = home;
                    self.anonymous = false;
                    self.rates = (account.max_download_rate, account.max_upload_rate);
                    self.failed_logins = 0;
                    self.session.logged_in(user, account.perms);
                    self.reply(Reply::new(LOGGED_IN, "Login successful.")).await
                }
                Err(e) => {
                    tracing::error!(user = %user, "login refused: home {} unusable: {e}", lossy(&account.home));
                    self.session.login_failed();
                    self.reply(Reply::new(NOT_LOGGED_IN, "Home directory unavailable."))
                        .await
                }
            },
            other => {
                let why = match (&other, anonymous) {
                    (_, true) => "anonymous logins are disabled (--no-anonymous)",
                    (None, false) => "no such user",
                    (Some(_), false) => "wrong password",
                };
                self.login_failure(&user, why).await
            }
        }
    }

    async fn login_failure(&mut self, user: &str, why: &str) -> Flow {
        let ip = self.peer.ip();
        self.failed_logins += 1;
        self.session.login_failed();
        tracing::warn!(user = %user, attempt = self.failed_logins, "failed login from {ip}: {why}");
        let banned = self.ctx.bans.record_failure(ip, Instant::now());
        if banned {
            tracing::warn!("{ip} banned: too many failed logins (--login-ban)");
        }
        if banned || self.failed_logins >= self.ctx.config.max_login_attempts {
            let _ = self
                .reply(Reply::new(
                    SERVICE_NOT_AVAILABLE,
                    "Too many failed login attempts; closing.",
                ))
                .await;
            return Flow::Close;
        }
        // A growing delay makes guessing slow without locking anyone out.
        let delay =
            Duration::from_millis(250 * self.failed_logins as u64).min(Duration::from_secs(3));
        tokio::time::sleep(delay).await;
        self.reply(Reply::new(NOT_LOGGED_IN, "Login incorrect."))
            .await
    }

    /// Opens an account's home under --root, race-free.
    async fn open_home(&self, home: &[u8]) -> Result<Arc<OwnedFd>, VfsError> {
        let rel = path::relative(home).ok_or(VfsError::BadName)?;
        sys::openat2(
            self.ctx.root.clone(),
            rel,
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            resolve::RESOLVE,
        )
        .await
        .map(Arc::new)
        .map_err(VfsError::from_io)
    }

    async fn open_passive(&mut self, extended: bool) -> Flow {
        // A new PASV replaces an unused earlier listener (RFC 959).
        self.pasv = None;
        let announce = if extended {
            None
        } else {
            // A 227 reply carries IPv4 only (RFC 2428 brought EPSV for
            // IPv6), and the listener is bound on the control connection's
            // local address, so PASV needs an IPv4 control connection.
            // The address depends on the client's network (split horizon);
            // one read lock per PASV, and SIGHUP may have re-resolved it.
            match (
                self.local.ip(),
                self.ctx.announce.for_client(self.peer.ip()),
            ) {
                (IpAddr::V4(local), announce) => Some(announce.unwrap_or(local)),
                (IpAddr::V6(v6), announce) => match v6.to_ipv4_mapped() {
                    Some(local) => Some(announce.unwrap_or(local)),
                    None => {
                        return self
                            .reply(Reply::new(
                                CANT_OPEN_DATA,
                                "PASV needs IPv4; use EPSV on IPv6.",
                            ))
                            .await
                    }
                },
            }
        };
        match PassiveListener::bind(&self.ctx.ports, self.local.ip()) {
            Ok(l) => {
                let port = l.addr.port();
                self.pasv = Some(l);
                self.session.passive_opened();
                let text = match announce {
                    Some(ip) => addr::format_pasv_reply(SocketAddrV4::new(ip, port)),
                    None => addr::format_epsv_reply(port),
                };
                let code = if extended {
                    ENTERING_EXTENDED_PASSIVE
                } else {
                    ENTERING_PASSIVE
                };
                self.reply(Reply::new(code, text)).await
            }
            Err(PassiveError::Exhausted) => {
                tracing::warn!(
                    "no free passive port in this shard's slice {} of --pasv-ports",
                    self.ctx.ports.range()
                );
                self.reply(Reply::new(
                    CANT_OPEN_DATA,
                    "No free passive port; try again later.",
                ))
                .await
            }
            Err(PassiveError::Io(e)) => {
                tracing::warn!("cannot open a passive listener: {e}");
                self.reply(Reply::new(
                    CANT_OPEN_DATA,
                    "Cannot open passive connection.",
                ))
                .await
            }
        }
    }

    /// Runs `fut` while serving the control channel: ABOR ends it, STAT
    /// reports progress, anything else is queued for afterwards.
    async fn race<T>(&mut self, fut: impl Future<Output = T>) -> Raced<T> {
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
                        Ok(Command::Abor) => return Raced::Aborted,
                        Ok(Command::Stat(None)) => {
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

    /// Establishes the data connection for `mode`.
    fn open_data(
        &mut self,
        mode: DataMode,
    ) -> impl Future<Output = std::io::Result<DataConn>> + 'static {
        let pasv = self.pasv.take();
        let timeout = self.ctx.config.data_timeout;
        let allow_foreign = self.ctx.config.allow_foreign_data;
        let peer_ip = self.peer.ip();
        let local = self.local;
        let source_port = if self.ctx.config.active_port_20 && local.port() > 1 {
            Some(local.port() - 1)
        } else {
            None
        };
        async move {
            match mode {
                DataMode::Passive => {
                    let l = pasv.ok_or_else(|| std::io::Error::other("no passive listener"))?;
                    match tokio::time::timeout(timeout, l.accept(peer_ip, allow_foreign)).await {
                        Ok(r) => r,
                        Err(_) => Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no data connection within --data-timeout",
                        )),
                    }
                }
                DataMode::Active(target) => {
                    active::connect(target, local.ip(), source_port, timeout).await
                }
                DataMode::None => Err(std::io::Error::other("no data connection set up")),
            }
        }
    }

    /// Runs a transfer: connect the data channel, 150, move the bytes,
    /// close the data channel. Replies itself only when no data connection
    /// was made; the caller gives the final reply for the other outcomes.
    async fn run_transfer(
        &mut self,
        verb: &'static str,
        mode: DataMode,
        opening: Reply,
        job: Job,
    ) -> Outcome {
        let connect = self.open_data(mode);
        let conn = match self.race(connect).await {
            Raced::Done(Ok(c)) => c,
            Raced::Done(Err(e)) => {
                tracing::info!("{verb}: data connection failed: {e}");
                let flow = self
                    .reply(Reply::new(
                        CANT_OPEN_DATA,
                        "Failed to establish connection.",
                    ))
                    .await;
                return Outcome::NoConnection(flow);
            }
            Raced::Aborted => return Outcome::NoConnection(self.aborted().await),
            Raced::ControlClosed => return Outcome::ControlClosed,
            Raced::ShutDown => return Outcome::ShutDown,
        };
        if self.reply(opening).await == Flow::Close {
            return Outcome::ControlClosed;
        }
        let progress = Rc::new(Cell::new(0u64));
        self.progress = Some(progress.clone());
        self.moved = 0;
        let ctx = self.ctx.clone();
        let timeout = ctx.config.data_timeout;
        let (down_rate, up_rate) = self.rates;
        // Downloads: the account's cap, --max-rate-per-session and the
        // server-wide --max-rate (shared by all shards), whichever binds.
        let down_pacer = Pacer::for_caps(
            [down_rate, ctx.config.max_rate_per_session],
            ctx.limits.download.clone(),
        );
        let fut = async move {
            let p = progress;
            let r = transfer::guarded(&conn, timeout, async {
                match job {
                    Job::File {
                        file,
                        size,
                        offset,
                        ascii: false,
                    } => {
                        let len = size.saturating_sub(offset);
                        transfer::send_binary(
                            &ctx.pipes,
                            &ctx.counters,
                            Rc::new(file),
                            offset,
                            len,
                            &conn,
                            p,
                            down_pacer,
                        )
                        .await
                    }
                    Job::File {
                        file,
                        offset,
                        ascii: true,
                        ..
                    } => {
                        transfer::send_ascii(
                            &ctx.counters,
                            Rc::new(file),
                            offset,
                            &conn,
                            p,
                            down_pacer,
                        )
                        .await
                    }
                    Job::Listing(bytes) => transfer::send_bytes(&ctx.counters, &conn, bytes).await,
                    Job::Upload {
                        file,
                        offset,
                        ascii,
                    } => {
                        if ascii {
                            transfer::recv_ascii(&ctx.counters, &conn, file, offset, p).await
                        } else {
                            let pacer = up_rate.map(Pacer::new);
                            transfer::recv_binary(
                                &ctx.pipes,
                                &ctx.counters,
                                &conn,
                                file,
                                offset,
                                p,
                                pacer,
                            )
                            .await
                        }
                    }
                }
            })
            .await;
            // Close the data connection before the 226 goes out: clients
            // read to end-of-file, then the reply.
            drop(conn);
            r
        };
        let outcome = self.race(fut).await;
        self.moved = self.progress.take().map(|p| p.get()).unwrap_or(0);
        self.ctx
            .counters
            .transfers
            .set(self.ctx.counters.transfers.get() + 1);
        match outcome {
            Raced::Done(Ok(n)) => {
                self.moved = n;
                Outcome::Complete(n)
            }
            Raced::Done(Err(e)) => Outcome::Failed(e),
            Raced::Aborted => Outcome::Aborted,
            Raced::ControlClosed => Outcome::ControlClosed,
            Raced::ShutDown => Outcome::ShutDown,
        }
    }

    /// The final reply of a transfer that made a data connection.
    async fn finish(&self, verb: &str, outcome: Outcome, bytes: u64) -> Flow {
        match outcome {
            Outcome::Complete(_) => {
                self.reply(Reply::new(CLOSING_DATA, "Transfer complete."))
                    .await
            }
            Outcome::Failed(e) => {
                tracing::info!("{verb} failed after {bytes} bytes: {e}");
                let r = match e {
                    TransferError::Local(e) if is_no_space(&e) => {
                        Reply::new(INSUFFICIENT_STORAGE, "Insufficient storage space; transfer aborted.")
                    }
                    TransferError::Local(_) if verb == "RETR" => Reply::new(LOCAL_ERROR, "Failure reading local file."),
                    TransferError::Local(_) => Reply::new(LOCAL_ERROR, "Failure writing local file."),
                    TransferError::Network(_) => Reply::new(TRANSFER_ABORTED, "Connection closed; transfer aborted."),
                    TransferError::Timeout => Reply::new(
                        TRANSFER_ABORTED,
                        "Transfer aborted: no progress on the data connection within --data-timeout.",
                    ),
                };
                self.reply(r).await
            }
            Outcome::Aborted => self.aborted().await,
            Outcome::NoConnection(flow) => flow,
            Outcome::ControlClosed => Flow::Close,
            Outcome::ShutDown => {
                tracing::warn!("{verb} cut after {bytes} bytes: the shutdown grace period is over");
                let _ = self
                    .reply(Reply::new(
                        TRANSFER_ABORTED,
                        "Server shutting down; transfer aborted.",
                    ))
                    .await;
                self.shutting_down().await
            }
        }
    }

    /// The two replies to an ABOR that interrupted a transfer (RFC 959).
    async fn aborted(&self) -> Flow {
        tracing::info!("transfer aborted by the client");
        self.replies([
            Reply::new(TRANSFER_ABORTED, "Transfer aborted."),
            Reply::new(CLOSING_DATA, "ABOR successful."),
        ])
        .await
    }

    /// Logs a file transfer (tracing, and xferlog when enabled).
    async fn log_transfer(
        &self,
        verb: &str,
        vpath: &[u8],
        bytes: u64,
        started: Instant,
        ascii: bool,
        complete: bool,
    ) {
        let elapsed = started.elapsed();
        let rate = bytes as f64 / elapsed.as_secs_f64().max(1e-6) / (1 << 20) as f64;
        tracing::info!(
            path = %lossy(vpath),
            bytes,
            ms = elapsed.as_millis() as u64,
            "{verb} {} ({rate:.1} MiB/s)",
            if complete { "complete" } else { "incomplete" }
        );
        let Some(log) = &self.ctx.xferlog else { return };
        let host = self.peer.ip().to_string();
        let user = self.session.user().unwrap_or("");
        log.write(&xferlog::Record {
            now: unix_now(),
            seconds: elapsed.as_secs(),
            remote_host: &host,
            bytes,
            path: vpath,
            ascii,
            outgoing: verb == "RETR",
            anonymous: self.anonymous,
            user,
            complete,
        })
        .await;
    }

    async fn retr(
        &mut self,
        verb: &'static str,
        vpath: Vec<u8>,
        offset: u64,
        ascii: bool,
        data: DataMode,
    ) -> Flow {
        let (file, st) = match resolve::open_file(&self.root, &vpath).await {
            Ok(f) => f,
            Err(e) => return self.refuse(verb, &vpath, e).await,
        };
        if offset > st.size {
            return self
                .reply(Reply::new(
                    FILE_UNAVAILABLE,
                    format!(
                        "Restart offset {offset} is past the end of the file ({} bytes).",
                        st.size
                    ),
                ))
                .await;
        }
        let name = lossy(path::file_name(&vpath));
        let opening = Reply::new(
            FILE_STATUS_OK,
            format!(
                "Opening {} mode data connection for {name} ({} bytes).",
                if ascii { "ASCII" } else { "BINARY" },
                st.size
            ),
        );
        let job = Job::File {
            file,
            size: st.size,
            offset,
            ascii,
        };
        let started = Instant::now();
        let outcome = self.run_transfer(verb, data, opening, job).await;
        if outcome.had_connection() {
            let sent = self.moved;
            self.log_transfer(verb, &vpath, sent, started, ascii, outcome.is_complete())
                .await;
        }
        let bytes = self.moved;
        self.finish(verb, outcome, bytes).await
    }

    /// STOR, APPE, STOU: set the file up first (so a refusal comes before
    /// any data connection), receive, then keep or undo.
    async fn store(
        &mut self,
        verb: &'static str,
        vpath: Vec<u8>,
        kind: UploadKind,
        ascii: bool,
        data: DataMode,
    ) -> Flow {
        let upload =
            match write::begin_upload(&self.root, &vpath, kind, self.ctx.config.atomic_uploads)
                .await
            {
                Ok(u) => u,
                Err(e) => return self.refuse(verb, &vpath, e).await,
            };
        let name = lossy(&upload.name);
        let opening = if kind == UploadKind::Unique {
            // RFC 1123 4.1.2.9: the 150 reply names the file STOU made.
            Reply::new(FILE_STATUS_OK, format!("FILE: {name}"))
        } else {
            Reply::new(
                FILE_STATUS_OK,
                format!(
                    "Ok to send data ({} mode).",
                    if ascii { "ASCII" } else { "BINARY" }
                ),
            )
        };
        let final_vpath = path::join(&path::parent(&vpath), &upload.name);
        let job = Job::Upload {
            file: upload.file.clone(),
            offset: upload.offset,
            ascii,
        };
        let started = Instant::now();
        let start_offset = upload.offset;
        let outcome = self.run_transfer(verb, data, opening, job).await;
        let bytes = self.moved;
        if let Outcome::Complete(n) = outcome {
            return self
                .finish_upload(
                    verb,
                    upload,
                    start_offset + n,
                    &final_vpath,
                    bytes,
                    started,
                    ascii,
                )
                .await;
        }
        // A write into the file may still be in flight (the aborted
        // transfer's future is gone, its io_uring op is not): cutting or
        // deleting the file before it lands would leave a hole or resurrect
        // bytes. Every op holds a reference to the file, so wait for ours to
        // be the last.
        wait_for_ops(&upload.file).await;
        upload.abort(self.ctx.config.keep_partial).await;
        if outcome.had_connection() {
            self.log_transfer(verb, &final_vpath, bytes, started, ascii, false)
                .await;
        }
        self.finish(verb, outcome, bytes).await
    }

    /// An upload whose data connection ended cleanly. In stream mode the
    /// end of the data connection *is* the end of the file, so a client
    /// killed mid-upload looks exactly like one that finished — except that
    /// its control connection closes too, a few tens of microseconds before
    /// or after the data connection (the kernel closes a dead process's
    /// sockets one by one). So before keeping the file we give the control
    /// connection [`KILLED_CLIENT_GRACE`] to show that; a client that is
    /// alive is waiting for our 226 and keeps it open. The file is in place
    /// before the 226 goes out, so a client that checks it right after sees
    /// it.
    #[allow(clippy::too_many_arguments)]
    async fn finish_upload(
        &mut self,
        verb: &'static str,
        upload: write::Upload,
        end: u64,
        vpath: &[u8],
        bytes: u64,
        started: Instant,
        ascii: bool,
    ) -> Flow {
        if self.reader.closed || control_closes_soon(&self.sock).await {
            tracing::info!("{verb}: the client went away with its upload; treating it as broken");
            wait_for_ops(&upload.file).await;
            upload.abort(self.ctx.config.keep_partial).await;
            self.log_transfer(verb, vpath, bytes, started, ascii, false)
                .await;
            return Flow::Close;
        }
        match upload.commit(end).await {
            Ok(()) => {
                self.log_transfer(verb, vpath, bytes, started, ascii, true)
                    .await;
                self.reply(Reply::new(CLOSING_DATA, "Transfer complete."))
                    .await
            }
            Err(e) => {
                tracing::warn!("{verb} {}: finishing the upload failed: {e}", lossy(vpath));
                self.log_transfer(verb, vpath, bytes, started, ascii, false)
                    .await;
                self.reply(Reply::new(e.reply_code(), e.reply_text())).await
            }
        }
    }

    /// Reads the entries of a directory on the blocking pool.
    async fn read_dir(&self, vpath: &[u8], links: Links) -> Result<Vec<Entry>, VfsError> {
        let dir = resolve::open_dir(&self.root, vpath).await?;
        let root = self.root_fd.clone();
        let vp = vpath.to_vec();
        match tokio::task::spawn_blocking(move || dir::read_entries(root, dir, &vp, links)).await {
            Ok(r) => r.map_err(VfsError::from_io),
            Err(e) => Err(VfsError::Io(std::io::Error::other(e.to_string()))),
        }
    }

    /// The listing bytes of `vpath` in `format`, or why not.
    async fn render_listing(
        &self,
        vpath: &[u8],
        shown: Option<&[u8]>,
        format: ListFormat,
        show_hidden: bool,
    ) -> Result<Vec<u8>, VfsError> {
        let st = resolve::stat(&self.root, vpath).await?;
        let now = unix_now();
        let mut out = Vec::new();
        if !st.is_dir() {
            if format == ListFormat::Machine {
                return Err(VfsError::NotADirectory);
            }
            // LIST/NLST of a file: that one file, named as the client typed it.
            let name = shown
                .map(|s| s.to_vec())
                .unwrap_or_else(|| path::file_name(vpath).to_vec());
            match format {
                ListFormat::Long => listing::format_list_line(&st.entry(name, None), now, &mut out),
                _ => {
                    out.extend_from_slice(&name);
                    out.extend_from_slice(b"\r\n");
                }
            }
            return Ok(out);
        }
        let links = if format == ListFormat::Machine {
            Links::Follow
        } else {
            Links::Show
        };
        let entries = self.read_dir(vpath, links).await?;
        // NLST of a named directory returns path names (RFC 959: "a list
        // of file names"; clients such as mget use them as given).
        let prefix = match (format, shown) {
            (ListFormat::Names, Some(s)) if !s.is_empty() => {
                let mut p = s.to_vec();
                while p.len() > 1 && p.ends_with(b"/") {
                    p.pop();
                }
                if !p.ends_with(b"/") {
                    p.push(b'/');
                }
                Some(p)
            }
            _ => None,
        };
        let facts = self.session.facts();
        for e in &entries {
            // A name with CR or LF would end a listing line early and could
            // show the client entries that do not exist: leave it out.
            if e.name.iter().any(|&b| b == b'\r' || b == b'\n') {
                continue;
            }
            // Like ls and vsftpd, dot-files show only with -a (LIST/NLST);
            // MLSD lists everything (RFC 3659).
            if format != ListFormat::Machine && !show_hidden && e.name.first() == Some(&b'.') {
                continue;
            }
            match format {
                ListFormat::Long => listing::format_list_line(e, now, &mut out),
                ListFormat::Names => {
                    if let Some(p) = &prefix {
                        out.extend_from_slice(p);
                    }
                    out.extend_from_slice(&e.name);
                    out.extend_from_slice(b"\r\n");
                }
                ListFormat::Machine => {
                    listing::format_mlsx_line(e, facts, perm_for(e.kind), &mut out)
                }
            }
        }
        Ok(out)
    }

    async fn list(
        &mut self,
        verb: &'static str,
        vpath: Vec<u8>,
        shown: Option<Vec<u8>>,
        format: ListFormat,
        show_hidden: bool,
        data: DataMode,
    ) -> Flow {
        let bytes = match self
            .render_listing(&vpath, shown.as_deref(), format, show_hidden)
            .await
        {
            Ok(b) => b,
            Err(VfsError::NotADirectory) if format == ListFormat::Machine => {
                return self
                    .reply(Reply::new(
                        SYNTAX_ERROR_ARGS,
                        "MLSD needs a directory; use MLST for a file.",
                    ))
                    .await
            }
            Err(e) => return self.refuse(verb, &vpath, e).await,
        };
        let opening = Reply::new(FILE_STATUS_OK, "Here comes the directory listing.");
        let outcome = self
            .run_transfer(verb, data, opening, Job::Listing(bytes))
            .await;
        let n = self.moved;
        self.finish(verb, outcome, n).await
    }

    async fn mlst(&mut self, verb: &'static str, vpath: Vec<u8>) -> Flow {
        let st: Stat = match resolve::stat(&self.root, &vpath).await {
            Ok(st) => st,
            Err(e) => return self.refuse(verb, &vpath, e).await,
        };
        let entry = st.entry(vpath.clone(), None);
        let mut line = vec![b' '];
        listing::format_mlsx_line(
            &entry,
            self.session.facts(),
            perm_for(entry.kind),
            &mut line,
        );
        strip_crlf(&mut line);
        let mut text = b"Listing ".to_vec();
        text.extend_from_slice(&vpath);
        text.push(b'\n');
        text.extend_from_slice(&line);
        text.extend_from_slice(b"\nEnd");
        self.reply(Reply::new(FILE_ACTION_OK, text)).await
    }

    async fn stat_path(&mut self, verb: &'static str, vpath: Vec<u8>) -> Flow {
        let shown = path::file_name(&vpath).to_vec();
        match self
            .render_listing(&vpath, Some(&shown), ListFormat::Long, true)
            .await
        {
            Ok(bytes) => {
                let mut text = b"Status follows:\n".to_vec();
                for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    text.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
                    text.push(b'\n');
                }
                text.extend_from_slice(b"End of status");
                self.reply(Reply::new(FILE_STATUS, text)).await
            }
            Err(e) => self.refuse(verb, &vpath, e).await,
        }
    }

    fn status(&self) -> Reply {
        let c = &self.ctx.counters;
        let text = format!(
            "FTP server status:\n\
             \x20    Connected to {}\n\
             \x20    Logged in as {}\n\
             \x20    TYPE: {}\n\
             \x20    Session timeout in seconds is {}\n\
             \x20    Control connection is plain text\n\
             \x20    Data connections will be plain text\n\
             \x20    ringftp shard {}: {} sessions open ({} since start), {} transfers, {} bytes spliced (zero-copy; {} read from disk through a pipe), {} bytes copied\n\
             End of status",
            self.peer.ip(),
            self.session.user().unwrap_or("(not logged in)"),
            if self.session.is_ascii() { "ASCII" } else { "BINARY" },
            self.ctx.config.idle_timeout.as_secs(),
            self.ctx.id,
            self.ctx.sessions_open.get(),
            self.ctx.sessions_total.get(),
            c.transfers.get(),
            c.spliced.get(),
            c.from_disk.get(),
            c.copied.get(),
        );
        Reply::new(SYSTEM_STATUS, text)
    }
}

/// The RFC 3659 perm fact for a read-only anonymous session: files can be
/// retrieved, directories entered and listed.
fn perm_for(kind: listing::EntryKind) -> &'static str {
    match kind {
        listing::EntryKind::Dir => "el",
        _ => "r",
    }
}

fn strip_crlf(line: &mut Vec<u8>) {
    while matches!(line.last(), Some(b'\r') | Some(b'\n')) {
        line.pop();
    }
}
