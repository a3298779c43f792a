//! The session driver: runs a [`Session`] over a real control connection.
//!
//! The driver only drives. It reads the next command (`control`), hands
//! it to the state machine, and carries out the [`Step`] it gets back,
//! each family of steps in its own file:
//!
//! - `login`: USER/PASS through [`crate::auth::login`], the account's home;
//! - `channel`: PASV/EPSV listeners and the data connection itself;
//! - `transfer`: what every transfer shares (150, moving bytes while the
//!   control channel is watched, the final reply, xferlog);
//! - `retrieve`, `store`, `list`: RETR; STOR/APPE/STOU; LIST, NLST,
//!   MLSD, MLST and STAT with a path;
//! - `files`: CWD, SIZE, MDTM and the file-management verbs;
//! - `status`: STAT alone;
//! - `tls`: FTPS: AUTH TLS and implicit handshakes on the control
//!   connection, PROT P handshakes and the session-reuse check on data
//!   connections.
//!
//! Every wait is bounded: for a command by `--idle-timeout` (and, before
//! login, `--login-timeout` from connect: a client dripping one byte a
//! second never completes a login in time), for a reply to be taken by
//! `--data-timeout`, for a data connection or its progress likewise. On a
//! graceful shutdown a session waiting for a command gets 421 at once; one
//! running a transfer finishes it first, or is cut when the grace period
//! ends.

mod channel;
mod control;
mod files;
mod list;
mod login;
mod retrieve;
mod status;
mod store;
mod tls;
mod transfer;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt::Display;
use std::future::Future;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use socket2::Socket;
use tracing::Instrument;

use self::control::{ControlReader, Event};
use super::outcome;
use super::state::{Rules, Session, Wait};
use super::step::{DataMode, Step};
use crate::data::passive::{KeptListener, PassiveListener};
use crate::engine::splice::Counters;
use crate::engine::sys::{self, FdRef};
use crate::logging::limit::Suppressed;
use crate::logging::Field;
use crate::metrics::sessions::Registration;
use crate::proto::codes::*;
use crate::proto::{parse, Command, Reply, MAX_LINE};
use crate::shard::{Places, ShardCtx};
use crate::shutdown::{self, Phase};
use crate::vfs::VfsError;

/// Whether the session goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Close,
}

/// What waiting for the next control event gave.
enum Next {
    Event(Event),
    Timeout(Wait),
    ShuttingDown,
}

/// An account's home, opened at login: the session's `/`.
struct Home {
    /// For openat2 on the shard's ring.
    ring: FdRef,
    /// The same fd, for blocking-pool work (listings).
    blocking: Arc<OwnedFd>,
}

struct Conn {
    ctx: Rc<ShardCtx>,
    /// The open home of a logged-in account; `None` means `--root` (before
    /// login, after REIN, and for anonymous sessions).
    home: Option<Home>,
    sock: Rc<Socket>,
    /// The client: the socket's peer, or the PROXY header's source.
    peer: SocketAddr,
    /// The socket's own local address (passive listeners bind on it,
    /// active connections leave from it).
    local: SocketAddr,
    /// What the client connected to: `local`, or the PROXY header's
    /// destination (the balancer's VIP); a 227 without a configured
    /// address announces it.
    reached: SocketAddr,
    session: Session,
    pasv: Option<PassiveListener>,
    /// The listener of the last passive transfer, for the next PASV/EPSV
    /// (made at the first passive transfer).
    kept: Option<Rc<KeptListener>>,
    /// The last download's data connection, shut for sending, closed once
    /// the next command has been answered ([`crate::data::Closing`]).
    closing: Option<crate::data::Closing>,
    /// A plain upload's data connection, received whole: closed once its
    /// 226 is out ([`Conn::store`]), not before.
    uploaded: Option<crate::data::DataConn>,
    reader: ControlReader,
    /// Control events that arrived during a transfer, in order.
    pending: VecDeque<Event>,
    /// Bytes moved by the running transfer (for STAT during a transfer).
    progress: Option<crate::engine::splice::Progress>,
    /// How STAT names that movement: "received" for an upload, "sent"
    /// otherwise.
    progress_word: &'static str,
    /// This session's transfer counters (STAT shows them).
    counters: Rc<Counters>,
    /// Where a graceful shutdown stands.
    shutdown: shutdown::Watch,
    /// The command being carried out, as refusal lines name it.
    current: Option<Current>,
    /// The session's row in the shard's session table (`/sessions`).
    row: Registration,
    /// The session's places in the shard's count and the server's limits,
    /// given back when the session (this state) is dropped.
    _places: Places,
    /// Accepted on an implicit FTPS listener: TLS from the first byte.
    implicit: bool,
    /// FTPS: the random token binding this session's data connections to
    /// its control connection's TLS session (see [`crate::tls::binding`]).
    tls_token: Option<crate::tls::binding::Token>,
    /// How the last TLS data connection was encrypted (for STAT).
    last_data_tls: Option<String>,
    /// Directories this (anonymous) session found world-searchable.
    searched: crate::vfs::world::Searched,
}

/// The command a session is carrying out, for its log lines.
struct Current {
    /// The canonical verb; for a line the parser refused, its first word.
    command: Cow<'static, str>,
    /// The path argument resolved against the working directory (absolute
    /// from the user's `/`), for commands that take one.
    path: Option<Vec<u8>>,
}

/// How loud a refusal line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loud {
    /// Ordinary: a missing file, a permission, a bad argument.
    Info,
    /// Worth a look: an escape attempt, a failed login, a ban.
    Warn,
}

/// At most this much of an unparsed line's first word goes into a log line.
const MAX_LOGGED_VERB: usize = 16;

/// A control connection's addresses and age, as the accept loop admitted
/// it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Endpoints {
    /// The client: the socket's peer, or with `--proxy-protocol` the
    /// PROXY header's source. Every rule, log line and limit uses it.
    pub peer: SocketAddr,
    /// The socket's own local address.
    pub local: SocketAddr,
    /// The address the client connected to: `local`, or the PROXY
    /// header's destination.
    pub reached: SocketAddr,
    /// When the connection was accepted: `--login-timeout` counts from
    /// here (a PROXY header's wait included).
    pub since: Instant,
}

/// Serves one control connection until it closes. The session's state is
/// built here, outside the task's future, so the future holds it once.
pub(crate) fn run(
    ctx: Rc<ShardCtx>,
    sock: Rc<Socket>,
    ends: Endpoints,
    places: Places,
    implicit: bool,
) -> impl Future<Output = ()> {
    let Endpoints {
        peer,
        local,
        reached,
        since,
    } = ends;
    let span = tracing::info_span!("session", %peer, shard = ctx.id);
    let rules = Rules {
        allow_foreign_data: ctx.config.allow_foreign_data,
        idle_timeout: ctx.config.idle_timeout,
        login_timeout: ctx.config.login_timeout,
        show_dotfiles: ctx.config.show_dotfiles,
        tls: ctx.config.tls_rules,
    };
    let row = ctx.session_table.register(peer);
    let conn = Conn {
        home: None,
        current: None,
        row,
        session: Session::new(peer, rules, since),
        shutdown: ctx.shutdown.clone(),
        _places: places,
        ctx,
        reader: ControlReader::new(sock.clone()),
        sock,
        peer,
        local,
        reached,
        pasv: None,
        kept: None,
        closing: None,
        uploaded: None,
        pending: VecDeque::new(),
        progress: None,
        progress_word: "sent",
        implicit,
        tls_token: None,
        last_data_tls: None,
        searched: Default::default(),
        counters: Rc::default(),
    };
    conn.serve().instrument(span)
}

/// Bytes [`Conn::send_replies`] reserves up front: a 150 naming a long
/// file name and its 226 fit.
const REPLY_ROOM: usize = 512;

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A name or path for a reply's text, as listings show it: a name that is
/// not UTF-8 decoded from `--legacy-charset` (see `vfs::names`), not
/// garbled into U+FFFD.
fn shown(b: &[u8]) -> String {
    lossy(&crate::vfs::names::display(b))
}

/// Client bytes as they may go into a log line: invalid UTF-8 replaced,
/// control characters (ESC, CR, BEL, C1...) written as `\x1b` or
/// `\u{9b}`, bidirectional controls, separators and invisible format
/// characters as `\u{202e}`, so a client cannot send terminal escape
/// sequences to an operator tailing the log, nor reorder, split or hide
/// what it shows ([`crate::logging::is_hidden_format`]).
fn log_text(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for c in String::from_utf8_lossy(b).chars() {
        match c {
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || crate::logging::is_hidden_format(c) => {
                out.extend(c.escape_unicode())
            }
            c => out.push(c),
        }
    }
    out
}

impl Conn {
    /// The session's task: the whole life of one control connection.
    ///
    /// Not an `async fn`: an `async fn` moves a by-value argument into a
    /// second slot of its future (rust-lang/rust#62958), and the
    /// session's state would then sit in every session's task twice
    /// (2,208 bytes each; `-Zprint-type-sizes`). The `async move` block
    /// captures it once and works on it in place. The implicit-FTPS
    /// handshake is boxed for the same reason: what an idle session's
    /// task holds is the state and the wait for the next line
    /// (docs/benchmarks.md, "Twenty-first pass").
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would hold the session's state twice"
    )]
    fn serve(mut self) -> impl Future<Output = ()> {
        async move {
            tracing::debug!(local = %self.local, "connected");
            if !self.implicit || Box::pin(self.begin_tls()).await {
                self.session_loop().await;
            }
            // A TLS session ends with close_notify (best effort, briefly).
            if let Some(bytes) = self.reader.close_notify() {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_secs(1),
                    sys::send_all(self.sock.clone() as FdRef, bytes),
                )
                .await;
            }
            // Ends any POLL op still waiting on the socket, so the fd
            // closes now.
            let _ = self.sock.shutdown(Shutdown::Both);
            tracing::debug!("disconnected");
        }
    }

    async fn session_loop(&mut self) {
        let banner = self.ctx.live.snapshot().banner.clone();
        if self.reply(Reply::new(SERVICE_READY, banner)).await == Flow::Close {
            return;
        }
        // The timer of every wait for a command (see `next_event`), in the
        // task itself, as a per-wait timeout was.
        let (first, _) = self.session.deadline(self.row.last_activity());
        let timer = tokio::time::sleep_until(first.into());
        tokio::pin!(timer);
        loop {
            // During a shutdown, a session between commands is idle: even
            // commands the client already queued get the 421.
            let queued = match self.pending.pop_front() {
                Some(ev) if self.phase() == Phase::Running => Some(ev),
                _ => None,
            };
            let ev = match queued {
                Some(ev) => ev,
                None => match self.next_event(timer.as_mut()).await {
                    Next::Event(ev) => ev,
                    Next::Timeout(Wait::Idle) => {
                        tracing::info!("idle timeout");
                        let _ = self
                            .send_reply(Reply::new(SERVICE_NOT_AVAILABLE, "Timeout."))
                            .await;
                        break;
                    }
                    Next::Timeout(Wait::Login) => {
                        tracing::info!("not logged in within --login-timeout; closing");
                        let _ = self
                            .send_reply(Reply::new(
                                SERVICE_NOT_AVAILABLE,
                                "Login timeout; closing control connection.",
                            ))
                            .await;
                        break;
                    }
                    Next::ShuttingDown => {
                        self.shutting_down().await;
                        break;
                    }
                },
            };
            // Boxed: the idle task then holds only the connection state and
            // the wait for the next line, not the largest command's future.
            if Box::pin(self.on_event(ev)).await == Flow::Close {
                break;
            }
            // The driver's resources follow the session's state: a passive
            // listener lives only while the session is in passive mode (a
            // PORT, a failed PASV or a transfer ends it), an account's home
            // only while it is logged in (REIN ends it).
            if self.session.data_mode() != DataMode::Passive {
                self.pasv = None;
            }
            if self.session.account().is_none() {
                self.home = None;
                self.row.set_user(None);
            }
        }
    }

    fn phase(&self) -> Phase {
        *self.shutdown.borrow()
    }

    /// The session's `/` for openat2 on the ring.
    fn root(&self) -> &FdRef {
        self.home
            .as_ref()
            .map(|h| &h.ring)
            .unwrap_or(&self.ctx.root)
    }

    /// The session's `/` for blocking-pool work.
    fn root_fd(&self) -> &Arc<OwnedFd> {
        self.home
            .as_ref()
            .map(|h| &h.blocking)
            .unwrap_or(&self.ctx.root_fd)
    }

    /// Waits for the next control event until the session's deadline
    /// (see [`Session::deadline`]), and no longer than until a shutdown
    /// begins.
    ///
    /// The session keeps one timer for these waits (`timer`, owned by
    /// the session loop) and moves it only when the deadline comes
    /// closer (the login deadline after REIN). A later deadline, each
    /// command's, is taken up when the timer fires early: a command costs
    /// no timer update, an idle session one early wake per idle timeout.
    async fn next_event(&mut self, mut timer: Pin<&mut tokio::time::Sleep>) -> Next {
        // The wait begins when the last command ended (or the session
        // connected): the row's time, so the clock is read once a command.
        let (deadline, wait) = self.session.deadline(self.row.last_activity());
        let deadline = tokio::time::Instant::from_std(deadline);
        if deadline < timer.deadline() {
            timer.as_mut().reset(deadline);
        }
        loop {
            tokio::select! {
                biased;
                _ = shutdown::reached(&mut self.shutdown, Phase::Draining) => return Next::ShuttingDown,
                ev = self.reader.next() => return Next::Event(ev),
                _ = timer.as_mut() => {
                    if tokio::time::Instant::now() >= deadline {
                        return Next::Timeout(wait);
                    }
                    timer.as_mut().reset(deadline);
                }
            }
        }
    }

    /// The goodbye of a graceful shutdown.
    async fn shutting_down(&self) {
        tracing::info!("server shutting down; closing the session");
        let _ = self.send_reply(outcome::shutting_down()).await;
    }

    async fn on_event(&mut self, ev: Event) -> Flow {
        // The client has moved on from its last download: its connection
        // is closed, but only once this command has been answered, so the
        // close (a recv and a TCP close, a few µs) is not part of what the
        // client waits for (docs/benchmarks.md, "Eleventh pass").
        let _moved_on = self.closing.take();
        let flow = match ev {
            Event::Closed => return Flow::Close,
            Event::TooLong => {
                self.ctx.metrics.command(None);
                self.session.line_refused(b"");
                self.current = Some(Current {
                    command: Cow::Borrowed("-"),
                    path: None,
                });
                self.reply(Reply::new(
                    SYNTAX_ERROR,
                    format!("Command line too long (more than {MAX_LINE} bytes)."),
                ))
                .await
            }
            Event::Line(line) => match parse(&line) {
                Ok(cmd) => {
                    let now = Instant::now();
                    let verb = cmd.verb();
                    self.ctx.metrics.command(Some(verb));
                    self.current = Some(Current {
                        command: Cow::Borrowed(verb),
                        path: cmd.path_arg().map(|p| self.session.resolve(p)),
                    });
                    match &cmd {
                        Command::Pass(_) => {
                            tracing::debug!("PASS ****");
                            self.row.command_started(b"PASS ****".to_vec(), now);
                        }
                        // RFC 959's account information: a second secret
                        // on some systems.
                        Command::Acct(_) => {
                            tracing::debug!("ACCT ****");
                            self.row.command_started(b"ACCT ****".to_vec(), now);
                        }
                        _ => {
                            tracing::debug!("{}", log_text(&line));
                            self.row.command_started(line, now);
                        }
                    }
                    let step = self.session.handle(cmd, now);
                    self.execute(verb, step).await
                }
                Err(e) => {
                    self.ctx.metrics.command(None);
                    // A malformed PASS (`PASS<TAB>secret`, no space) is
                    // still a password: only its verb is logged.
                    let secret = line.len() >= 4
                        && (line[..4].eq_ignore_ascii_case(b"PASS")
                            || line[..4].eq_ignore_ascii_case(b"ACCT"));
                    let word = match secret {
                        true => &line[..4],
                        false => line.split(|&b| b == b' ').next().unwrap_or_default(),
                    };
                    let word = &word[..word.len().min(MAX_LOGGED_VERB)];
                    self.current = Some(Current {
                        command: Cow::Owned(log_text(word).to_ascii_uppercase()),
                        path: None,
                    });
                    match secret {
                        true => tracing::debug!("unparsed command: {} ****", log_text(word)),
                        false => tracing::debug!("unparsed command: {e:?}"),
                    }
                    self.session.line_refused(word);
                    self.reply(e.reply()).await
                }
            },
        };
        self.current = None;
        self.row.command_ended(Instant::now());
        flow
    }

    /// Carries out one step. The only match on [`Step`]: everything that
    /// touches the filesystem, a data connection or a password check runs
    /// in a boxed future, since those futures are large and inline they
    /// would size every idle session's task for the worst case (10,000
    /// idle sessions measured ~3.8 KiB each of RSS growth, peak).
    async fn execute(&mut self, verb: &'static str, step: Step) -> Flow {
        match step {
            Step::Reply(r) => self.reply(r).await,
            Step::Close(r) => {
                let _ = self.reply(r).await;
                Flow::Close
            }
            Step::StartTls(r) => Box::pin(self.start_tls(r)).await,
            Step::Status => self.reply(self.status()).await,
            Step::Abort => {
                self.pasv = None;
                self.reply(Reply::new(DATA_OPEN, "No transfer to ABOR."))
                    .await
            }
            Step::OpenPassive { extended } => self.open_passive(extended).await,
            Step::CheckLogin { user, password } => Box::pin(self.check_login(user, password)).await,
            Step::ChangeDir(path) => Box::pin(self.change_dir(path)).await,
            Step::Size(path) => Box::pin(self.size(path)).await,
            Step::Mdtm(path) => Box::pin(self.mdtm(path)).await,
            Step::Retr {
                path,
                offset,
                ascii,
                data,
            } => Box::pin(self.retr(verb, path, offset, ascii, data)).await,
            Step::List { listing, data } => Box::pin(self.list(verb, listing, data)).await,
            Step::Store {
                path,
                kind,
                ascii,
                data,
            } => Box::pin(self.store(verb, path, kind, ascii, data)).await,
            Step::Delete(path) => Box::pin(self.delete(verb, path)).await,
            Step::MakeDir(path) => Box::pin(self.make_dir(verb, path)).await,
            Step::RemoveDir(path) => Box::pin(self.remove_dir(verb, path)).await,
            Step::RenameFrom { path, directory } => {
                Box::pin(self.rename_from(path, directory)).await
            }
            Step::Rename {
                from,
                to,
                directory,
            } => Box::pin(self.rename(verb, from, to, directory)).await,
            Step::SetTime { path, time } => Box::pin(self.set_time(verb, path, time)).await,
            Step::Chmod { path, mode } => Box::pin(self.chmod(verb, path, mode)).await,
            Step::Mlst(path) => Box::pin(self.mlst(path)).await,
            Step::StatPath(listing) => Box::pin(self.stat_path(listing)).await,
            Step::NeedDirectory { path, then } => {
                match Box::pin(self.need_directory(&path)).await {
                    Some(refused) => refused,
                    None => Box::pin(self.execute(verb, *then)).await,
                }
            }
        }
    }

    /// Writes one reply; a refusal (4xx, 5xx) is logged first, naming the
    /// command, its path and the reply as the reason.
    async fn reply(&self, reply: Reply) -> Flow {
        if reply.code >= 400 {
            self.log_refusal(Loud::Info, reply.code, None, lossy(&reply.text));
        }
        self.send_reply(reply).await
    }

    /// Writes one reply without logging it (the caller logged why); see
    /// [`Conn::send_replies`].
    async fn send_reply(&self, reply: Reply) -> Flow {
        self.send_replies([reply]).await
    }

    /// Writes replies in order, in one write, without logging them (the
    /// caller logged why): a 150 held back with its 226, or ABOR's 426 +
    /// 226, reach the client together. In TLS they are sealed first; then
    /// one non-blocking send() when the socket has room (almost always: no
    /// io_uring round trip for the common case), the ring only for what it
    /// did not take. A client that does not read its replies for
    /// `--data-timeout` is dropped rather than buffered for without bound.
    async fn send_replies(&self, replies: impl IntoIterator<Item = Reply>) -> Flow {
        // Room for a 150 and its 226 (or a 227) in one allocation; a
        // longer text (a FEAT, a STAT) grows it.
        let mut plain = Vec::with_capacity(REPLY_ROOM);
        for r in replies {
            self.ctx.metrics.reply(r.code);
            r.encode(&mut plain);
        }
        if plain.is_empty() {
            return Flow::Continue;
        }
        let mut buf = match self.reader.seal(plain) {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!("control write failed: {e}");
                return Flow::Close;
            }
        };
        match sys::send_now(&*self.sock, &mut buf) {
            Ok(true) => return Flow::Continue,
            Ok(false) => {}
            Err(e) => {
                tracing::debug!("control write failed: {e}");
                return Flow::Close;
            }
        }
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

    /// Logs a refusal of the current command: who (the span has the peer
    /// and shard; the user, `-` before login), what (command, and `path`
    /// or else the command's own path), the reply code and why.
    /// Rate-limited per client address (see [`crate::logging::limit`]);
    /// the line after a gap says how many were left out.
    fn log_refusal(&self, loud: Loud, code: u16, path: Option<&[u8]>, reason: impl Display) {
        self.log_refusal_of(self.session.user(), loud, code, path, reason);
    }

    /// [`Conn::log_refusal`] naming `user` (a login names the user who
    /// tried, not yet the session's).
    fn log_refusal_of(
        &self,
        user: Option<&str>,
        loud: Loud,
        code: u16,
        path: Option<&[u8]>,
        reason: impl Display,
    ) {
        let Some(suppressed) = self.ctx.refusal_log.allow(self.peer.ip(), Instant::now()) else {
            return;
        };
        let user = log_text(user.unwrap_or("-").as_bytes());
        let command = self.current.as_ref().map_or("-", |c| c.command.as_ref());
        let path = path
            .or_else(|| self.current.as_ref().and_then(|c| c.path.as_deref()))
            .map(log_text);
        let suppressed = Suppressed(suppressed);
        // Client-given, so quoted where they could pose as more fields.
        let user = Field(&user);
        let path = path.as_deref().map(|p| tracing::field::display(Field(p)));
        match loud {
            Loud::Info => tracing::info!(
                %user,
                %command,
                path,
                code,
                "refused {command}: {reason}{suppressed}"
            ),
            Loud::Warn => tracing::warn!(
                %user,
                %command,
                path,
                code,
                "refused {command}: {reason}{suppressed}"
            ),
        }
    }

    /// How loud a failure is logged: a server out of fds or memory
    /// (`exhausted`) is the operator's business, a warning, and the shard
    /// gives back its idle pipes ([`ShardCtx::out_of_fds`]); anything else
    /// is the client's or the file's, information.
    fn loud_if_exhausted(&self, exhausted: bool) -> Loud {
        if exhausted {
            self.ctx.out_of_fds();
            Loud::Warn
        } else {
            Loud::Info
        }
    }

    /// Refuses a path the client may not use (550; 452 for a full disk,
    /// 451 for a server out of descriptors or memory: see
    /// [`VfsError::reply_code`]), logged with the reason: as a warning for
    /// an escape attempt, a full disk or an exhausted server, which the
    /// operator should see.
    async fn refuse(&self, vpath: &[u8], e: VfsError) -> Flow {
        let loud = match e {
            VfsError::Escapes | VfsError::NoSpace => Loud::Warn,
            _ => self.loud_if_exhausted(matches!(e, VfsError::Exhausted(_))),
        };
        let code = e.reply_code();
        self.log_refusal(loud, code, Some(vpath), &e);
        self.send_reply(Reply::new(code, e.reply_text().into_owned()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::log_text;

    #[test]
    fn log_text_escapes_what_a_terminal_would_obey() {
        let table: &[(&[u8], &str)] = &[
            (b"RETR a.txt", "RETR a.txt"),
            (b"\x1b[2J", "\\x1b[2J"),
            (b"a\rb\x07", "a\\x0db\\x07"),
            (b"\x7f", "\\x7f"),
            ("\u{9b}31m".as_bytes(), "\\u{9b}31m"),
            ("café".as_bytes(), "café"),
            ("RETR \u{202e}gpj.exe".as_bytes(), "RETR \\u{202e}gpj.exe"),
            ("\u{2066}x\u{2069}".as_bytes(), "\\u{2066}x\\u{2069}"),
            (
                "a\u{2028}b\u{200b}c\u{feff}".as_bytes(),
                "a\\u{2028}b\\u{200b}c\\u{feff}",
            ),
            (b"\xff", "\u{fffd}"),
        ];
        for (raw, want) in table {
            assert_eq!(log_text(raw), *want, "{raw:?}");
        }
    }
}
