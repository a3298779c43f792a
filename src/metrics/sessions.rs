//! The live session table behind `/sessions` (and `ringftp who`), the way
//! `pure-ftpwho` lists who is connected and what they are doing.
//!
//! Each shard keeps a table of its own sessions ([`LiveTable`], shard-local:
//! `Rc` and `Cell`, no lock). A session updates its row on command
//! boundaries only: the command line when it starts, the time when it
//! ends, the user at login, the transfer when one starts. Bytes and rate
//! of a running transfer are not copied anywhere while it runs: the row
//! holds the transfer's [`Progress`], read when someone asks.
//!
//! Asking is a message: the scrape thread sends each shard's
//! [`Inspector`] a request; a small task on the shard ([`answer`]) builds
//! the rows on the shard thread and sends them back. A shard busy for
//! longer than the scrape is willing to wait is left out of that answer
//! (`shards_answered` says so); nothing on the shards waits for the scrape.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::counters::Dir;
use crate::engine::splice::Progress;

/// `t` as RFC 3339 UTC to the second (`2026-11-30T15:30:24Z`).
fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .and_then(|t| jiff::Timestamp::from_second(t.as_second()))
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// Longest command text a row shows (a path may be long).
const MAX_COMMAND: usize = 256;

/// One shard's open sessions.
#[derive(Default)]
pub(crate) struct LiveTable {
    rows: RefCell<HashMap<u64, Rc<LiveSession>>>,
    next_id: Cell<u64>,
}

/// One open session as its row shows it.
pub(crate) struct LiveSession {
    id: u64,
    peer: SocketAddr,
    /// Wall-clock time of connect (for the row), and the same as an
    /// Instant (for durations).
    since: SystemTime,
    connected: Instant,
    user: RefCell<Option<String>>,
    /// The line of the command being carried out (PASS masked); `None`
    /// between commands.
    command: RefCell<Option<Vec<u8>>>,
    /// When the last command started or ended.
    last: Cell<Instant>,
    transfer: RefCell<Option<LiveTransfer>>,
}

/// A transfer in progress.
struct LiveTransfer {
    path: Vec<u8>,
    dir: Dir,
    started: Instant,
    progress: Progress,
}

/// A session's place in its shard's table; dropping it removes the row.
pub(crate) struct Registration {
    table: Rc<LiveTable>,
    session: Rc<LiveSession>,
}

impl LiveTable {
    /// Adds a row for a session from `peer` that connected now.
    pub(crate) fn register(self: &Rc<Self>, peer: SocketAddr) -> Registration {
        let id = self.next_id.get() + 1;
        self.next_id.set(id);
        let now = Instant::now();
        let session = Rc::new(LiveSession {
            id,
            peer,
            since: SystemTime::now(),
            connected: now,
            user: RefCell::new(None),
            command: RefCell::new(None),
            last: Cell::new(now),
            transfer: RefCell::new(None),
        });
        self.rows.borrow_mut().insert(id, session.clone());
        Registration {
            table: self.clone(),
            session,
        }
    }

    #[cfg(test)]
    /// Sessions in the table.
    pub(crate) fn len(&self) -> usize {
        self.rows.borrow().len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows as of `now`, labelled with `shard`, oldest session first.
    pub(crate) fn snapshot(&self, shard: usize, now: Instant) -> Vec<SessionRow> {
        let mut rows: Vec<SessionRow> = self
            .rows
            .borrow()
            .values()
            .map(|s| s.row(shard, now))
            .collect();
        rows.sort_by_key(|r| r.id);
        rows
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.table.rows.borrow_mut().remove(&self.session.id);
    }
}

impl std::ops::Deref for Registration {
    type Target = LiveSession;

    fn deref(&self) -> &LiveSession {
        &self.session
    }
}

impl LiveSession {
    /// A command starts `now`: `line` as received (the caller masks
    /// passwords).
    pub(crate) fn command_started(&self, mut line: Vec<u8>, now: Instant) {
        line.truncate(MAX_COMMAND);
        *self.command.borrow_mut() = Some(line);
        self.last.set(now);
    }

    /// The command ended `now`; the session waits for the next one.
    pub(crate) fn command_ended(&self, now: Instant) {
        *self.command.borrow_mut() = None;
        *self.transfer.borrow_mut() = None;
        self.last.set(now);
    }

    /// When the last command started or ended (or the session connected,
    /// before its first command).
    pub(crate) fn last_activity(&self) -> Instant {
        self.last.get()
    }

    /// Logged in as `user`, or logged out (`None`, REIN).
    pub(crate) fn set_user(&self, user: Option<&str>) {
        *self.user.borrow_mut() = user.map(str::to_string);
    }

    /// A transfer of `path` started at `started`; its bytes are read from
    /// `progress` when the row is shown.
    pub(crate) fn transfer_started(
        &self,
        path: &[u8],
        dir: Dir,
        started: Instant,
        progress: Progress,
    ) {
        *self.transfer.borrow_mut() = Some(LiveTransfer {
            path: path.to_vec(),
            dir,
            started,
            progress,
        });
    }

    fn row(&self, shard: usize, now: Instant) -> SessionRow {
        let command = self.command.borrow();
        let since_last = now.saturating_duration_since(self.last.get());
        let transfer = self.transfer.borrow().as_ref().map(|t| {
            let secs = now.saturating_duration_since(t.started).as_secs_f64();
            let bytes = t.progress.get();
            TransferRow {
                direction: t.dir.label().to_string(),
                path: String::from_utf8_lossy(&t.path).into_owned(),
                bytes,
                seconds: secs,
                bytes_per_second: if secs > 0.0 { bytes as f64 / secs } else { 0.0 },
            }
        });
        SessionRow {
            shard,
            id: self.id,
            peer: self.peer.to_string(),
            user: self.user.borrow().clone(),
            connected_since: rfc3339(self.since),
            connected_seconds: now.saturating_duration_since(self.connected).as_secs_f64(),
            idle_seconds: if command.is_some() {
                0.0
            } else {
                since_last.as_secs_f64()
            },
            command: command
                .as_ref()
                .map(|c| String::from_utf8_lossy(c).into_owned()),
            transfer,
        }
    }
}

/// One session as `/sessions` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRow {
    pub shard: usize,
    /// Unique on its shard while the server runs.
    pub id: u64,
    /// The client's address and port.
    pub peer: String,
    /// The logged-in user; `None` before login.
    pub user: Option<String>,
    /// When the client connected, RFC 3339, UTC.
    pub connected_since: String,
    pub connected_seconds: f64,
    /// How long the session has waited for its next command (0 while a
    /// command runs).
    pub idle_seconds: f64,
    /// The command being carried out (PASS masked), if any.
    pub command: Option<String>,
    /// The transfer in progress, if any.
    pub transfer: Option<TransferRow>,
}

/// A transfer in progress as `/sessions` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferRow {
    /// `download`, `upload` or `listing`.
    pub direction: String,
    /// The path as the client named it, absolute from the user's `/`.
    pub path: String,
    /// Bytes moved so far.
    pub bytes: u64,
    /// Seconds since the transfer command.
    pub seconds: f64,
    /// Average rate so far.
    pub bytes_per_second: f64,
}

/// The whole `/sessions` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionsReport {
    pub shards: usize,
    /// Shards that answered in time (the rest are left out).
    pub shards_answered: usize,
    pub sessions: Vec<SessionRow>,
}

/// A request for a shard's rows: where to send them.
type Request = mpsc::Sender<Vec<SessionRow>>;

/// The scrape thread's handle on one shard's table.
pub struct Inspector(tokio::sync::mpsc::UnboundedSender<Request>);

/// The shard's end of an [`Inspector`]; see [`answer`].
pub(crate) struct Inspections(tokio::sync::mpsc::UnboundedReceiver<Request>);

/// A connected pair: the scrape thread keeps the [`Inspector`], the shard
/// runs [`answer`] on the [`Inspections`].
pub(crate) fn inspector() -> (Inspector, Inspections) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    (Inspector(tx), Inspections(rx))
}

/// Runs on shard `shard`: answers every request with the table's rows,
/// until the scrape side is gone.
pub(crate) async fn answer(table: Rc<LiveTable>, shard: usize, mut requests: Inspections) {
    while let Some(reply_to) = requests.0.recv().await {
        let _ = reply_to.send(table.snapshot(shard, Instant::now()));
    }
}

/// Asks every shard for its rows and waits for them, `wait` at most in all.
pub(crate) fn collect(inspectors: &[Inspector], wait: Duration) -> SessionsReport {
    let (tx, rx) = mpsc::channel();
    let mut asked = 0;
    for i in inspectors {
        if i.0.send(tx.clone()).is_ok() {
            asked += 1;
        }
    }
    drop(tx);
    let deadline = Instant::now() + wait;
    let mut sessions = Vec::new();
    let mut answered = 0;
    while answered < asked {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(rows) => {
                sessions.extend(rows);
                answered += 1;
            }
            Err(_) => break,
        }
    }
    sessions.sort_by_key(|r| (r.shard, r.id));
    SessionsReport {
        shards: inspectors.len(),
        shards_answered: answered,
        sessions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_session() {
        let table = Rc::new(LiveTable::default());
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let a = table.register(peer);
        let b = table.register("127.0.0.1:5001".parse().unwrap());
        assert_eq!(table.len(), 2);
        a.set_user(Some("alice"));
        a.command_started(b"RETR big.iso".to_vec(), Instant::now());
        let progress = Progress::default();
        a.transfer_started(
            b"/pub/big.iso",
            Dir::Download,
            Instant::now(),
            progress.clone(),
        );
        progress.set(1000);
        let rows = table.snapshot(3, Instant::now() + Duration::from_secs(2));
        assert_eq!(rows.len(), 2);
        let r = &rows[0];
        assert_eq!((r.shard, r.peer.as_str()), (3, "127.0.0.1:5000"));
        assert_eq!(r.user.as_deref(), Some("alice"));
        assert_eq!(r.command.as_deref(), Some("RETR big.iso"));
        assert_eq!(r.idle_seconds, 0.0);
        let t = r.transfer.as_ref().unwrap();
        assert_eq!(
            (t.direction.as_str(), t.path.as_str()),
            ("download", "/pub/big.iso")
        );
        assert_eq!(t.bytes, 1000);
        assert!(t.bytes_per_second > 0.0 && t.bytes_per_second <= 500.0);
        assert!(rows[1].command.is_none() && rows[1].transfer.is_none());
        a.command_ended(Instant::now());
        let rows = table.snapshot(3, Instant::now() + Duration::from_secs(1));
        assert!(rows[0].transfer.is_none() && rows[0].idle_seconds >= 1.0);
        drop(b);
        assert_eq!(table.len(), 1);
        drop(a);
        assert!(table.is_empty());
    }

    #[test]
    fn collect_waits_for_every_shard_or_the_deadline() {
        let (i0, mut s0) = inspector();
        let (i1, _s1_never_answers) = inspector();
        let t = std::thread::spawn(move || {
            let row = SessionRow {
                shard: 0,
                id: 1,
                peer: "127.0.0.1:1".into(),
                user: None,
                connected_since: "2026-01-01T00:00:00Z".into(),
                connected_seconds: 1.0,
                idle_seconds: 1.0,
                command: None,
                transfer: None,
            };
            let req = s0.0.blocking_recv().unwrap();
            req.send(vec![row]).unwrap();
        });
        let r = collect(&[i0, i1], Duration::from_millis(300));
        t.join().unwrap();
        assert_eq!((r.shards, r.shards_answered, r.sessions.len()), (2, 1, 1));
    }
}
