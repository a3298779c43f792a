//! The transfer log, in the wu-ftpd `xferlog(5)` format that vsftpd,
//! ProFTPD and pure-ftpd also write and log analysers read: one line per
//! transfer, appended with an io_uring write on an O_APPEND file (O_APPEND
//! makes every line land whole at the end, whichever shard writes it).
//!
//! The file is opened once at start-up, where a path that cannot be
//! opened stops the server, and again on SIGHUP, so logrotate's "move the
//! file, then send SIGHUP" works: [`XferLog::reopen`] (on the signal
//! thread) opens the path anew, swaps the shared fd and bumps a
//! generation number; each shard's [`ShardXferLog`] compares that number
//! (one relaxed atomic load) before a write and picks up the new fd when it
//! changed. Writes already in flight finish into the old file, which
//! closes when the last of them completes. A reopen that fails keeps the
//! old file, and the error is logged.
//!
//! The reopen happens as whatever user the server runs as by then (after
//! a privilege drop, the service user): the log's directory must let that
//! user create the file, or the file must exist and be writable by it.
//!
//! Times are local, as wu-ftpd wrote them with ctime(3), unless
//! `--xferlog-utc`. The local zone (`TZ`, else `/etc/localtime`) is read
//! once, when the log is first opened: after start-up the sandbox no
//! longer lets the process read the zone files, and a shard never reads a
//! file to format a line. A change of the machine's zone takes a restart.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::sys::{self, FdRef};
use crate::vfs::time::civil_from_unix;

/// One finished (or failed) transfer.
pub(crate) struct Record<'a> {
    /// Unix time the transfer ended.
    pub now: i64,
    /// Whole seconds the transfer took.
    pub seconds: u64,
    pub remote_host: &'a str,
    pub bytes: u64,
    /// The file's path: as the client named it, absolute from the user's
    /// `/` (or the server-side path, with `--xferlog-real-path`).
    pub path: &'a [u8],
    pub ascii: bool,
    /// `true` for a download (RETR), `false` for an upload.
    pub outgoing: bool,
    pub anonymous: bool,
    pub user: &'a str,
    pub complete: bool,
}

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

#[cfg(test)]
/// Fields of a line when split on blanks: 5 for the time, 13 others.
pub(crate) const FIELDS: usize = 18;

/// A field with every space and control character (tabs, line ends, DEL)
/// replaced by `_`, as xferlog(5) specifies for the file name, so a line
/// always splits into the same fields.
fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend(bytes.iter().map(|&b| {
        if b == b' ' || b.is_ascii_control() {
            b'_'
        } else {
            b
        }
    }));
}

/// Formats one xferlog line (with its newline), its time shifted by
/// `utc_offset` seconds (0 for UTC; the local zone's offset for local time,
/// as wu-ftpd wrote it with ctime(3)). Fields, in order: current-time
/// transfer-time remote-host file-size filename transfer-type
/// special-action-flag direction access-mode username service-name
/// authentication-method authenticated-user-id completion-status.
pub(crate) fn format(r: &Record, utc_offset: i64) -> Vec<u8> {
    let t = r.now + utc_offset;
    let (y, mo, d, h, mi, s) = civil_from_unix(t);
    let weekday = DAYS[t.div_euclid(86_400).rem_euclid(7) as usize];
    let mut line = format!(
        "{weekday} {} {d:2} {h:02}:{mi:02}:{s:02} {y} {} {} {} ",
        MONTHS[(mo - 1) as usize],
        r.seconds,
        r.remote_host,
        r.bytes
    )
    .into_bytes();
    field(&mut line, r.path);
    line.extend_from_slice(
        format!(
            " {} _ {} {} ",
            if r.ascii { 'a' } else { 'b' },
            if r.outgoing { 'o' } else { 'i' },
            if r.anonymous { 'a' } else { 'r' },
        )
        .as_bytes(),
    );
    let user = if r.anonymous { "anonymous@" } else { r.user };
    field(
        &mut line,
        if user.is_empty() {
            b"*"
        } else {
            user.as_bytes()
        },
    );
    line.extend_from_slice(format!(" ftp 0 * {}\n", if r.complete { 'c' } else { 'i' }).as_bytes());
    line
}

/// The transfer log file, shared by every shard; see the module doc.
pub(crate) struct XferLog {
    path: PathBuf,
    file: Mutex<Arc<OwnedFd>>,
    /// Bumped after every successful reopen.
    generation: AtomicU64,
    /// A write was cut short (a full filesystem): the file ends in part
    /// of a line, so the next line starts with a newline of its own.
    torn: AtomicBool,
    /// The zone of the timestamps: the local one, read at start-up;
    /// `None` for UTC (`--xferlog-utc`).
    zone: Option<jiff::tz::TimeZone>,
}

fn open_append(path: &Path) -> io::Result<Arc<OwnedFd>> {
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)?;
    Ok(Arc::new(OwnedFd::from(file)))
}

impl XferLog {
    /// Opens (creating it, mode 0640) the log at `path` for appending,
    /// and reads the local time zone unless `utc`. The server opens it
    /// before dropping privileges and before the sandbox; a reopen on
    /// SIGHUP runs as the user it then runs as.
    pub(crate) fn open(path: &Path, utc: bool) -> io::Result<XferLog> {
        Ok(XferLog {
            path: path.to_path_buf(),
            file: Mutex::new(open_append(path)?),
            generation: AtomicU64::new(0),
            torn: AtomicBool::new(false),
            zone: (!utc).then(jiff::tz::TimeZone::system),
        })
    }

    /// The name of the zone lines are written in (`UTC` with
    /// `--xferlog-utc`; the IANA name of the local zone when known).
    pub(crate) fn zone_name(&self) -> String {
        match &self.zone {
            None => "UTC".to_string(),
            Some(z) => z.iana_name().unwrap_or("local time").to_string(),
        }
    }

    /// Seconds to add to the Unix time `now` to get the time the lines
    /// show: 0 in UTC, the local zone's offset at `now` otherwise
    /// (daylight saving time included).
    pub(crate) fn utc_offset(&self, now: i64) -> i64 {
        match (&self.zone, jiff::Timestamp::from_second(now)) {
            (Some(zone), Ok(t)) => i64::from(zone.to_offset(t).seconds()),
            _ => 0,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the path again (after logrotate moved the file) and makes every
    /// shard write there from its next line on. `Ok(false)` when the path
    /// still names the open file (a SIGHUP for another reason, or
    /// copytruncate): nothing to reopen, so a file the service user could
    /// not open itself (created by root before the privilege drop) is no
    /// error. On error the old file stays in use.
    pub(crate) fn reopen(&self) -> io::Result<bool> {
        let held = self.file.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let (Ok(at_path), Ok(open)) = (rustix::fs::stat(&self.path), rustix::fs::fstat(&*held)) {
            if (at_path.st_dev, at_path.st_ino) == (open.st_dev, open.st_ino) {
                return Ok(false);
            }
        }
        let fd = open_append(&self.path)?;
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = fd;
        // A part line left by a short write stays in the old file.
        self.torn.store(false, Ordering::Release);
        self.generation.fetch_add(1, Ordering::Release);
        Ok(true)
    }

    fn current(&self) -> (u64, Arc<OwnedFd>) {
        // Read the generation first: a reopen swaps the fd before it bumps
        // the number, so the fd read next is at least that new.
        let generation = self.generation.load(Ordering::Acquire);
        let fd = self.file.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (generation, fd)
    }
}

/// How often a shard says that xferlog writes fail (each failure is counted
/// in `ringftp_xferlog_write_errors_total`).
const WARN_EVERY: Duration = Duration::from_secs(60);

/// One shard's writer on the shared [`XferLog`].
pub(crate) struct ShardXferLog {
    shared: Arc<XferLog>,
    /// The generation and fd this shard writes to.
    current: RefCell<(u64, FdRef)>,
    /// When a failed write was last logged, and failures since.
    warned: Cell<Option<Instant>>,
    failures: Cell<u64>,
}

impl ShardXferLog {
    pub(crate) fn new(shared: Arc<XferLog>) -> ShardXferLog {
        let (generation, fd) = shared.current();
        ShardXferLog {
            shared,
            current: RefCell::new((generation, Rc::new(fd) as FdRef)),
            warned: Cell::new(None),
            failures: Cell::new(0),
        }
    }

    /// The fd to write to, picking up a reopen if one happened.
    fn fd(&self) -> FdRef {
        let generation = self.shared.generation.load(Ordering::Relaxed);
        let mut cur = self.current.borrow_mut();
        if cur.0 != generation {
            let (g, fd) = self.shared.current();
            *cur = (g, Rc::new(fd) as FdRef);
        }
        cur.1.clone()
    }

    /// Appends the line for `record`. A failure, a short write (a full
    /// filesystem) included, is logged (at most once a minute per shard,
    /// with the count) and returned; after a short write the next line
    /// begins with a newline, so the part line stands alone and every
    /// whole line keeps xferlog(5)'s fields.
    pub(crate) async fn write(&self, record: &Record<'_>) -> io::Result<()> {
        let offset = self.shared.utc_offset(record.now);
        let mut line = format(record, offset);
        let was_torn = self.shared.torn.swap(false, Ordering::AcqRel);
        if was_torn {
            line.insert(0, b'\n');
        }
        let len = line.len();
        let r = match sys::write_append(self.fd(), line).await {
            Ok(n) if n == len => Ok(()),
            r => {
                // Some of the line written: the file ends in part of it.
                // None: it ends as it did.
                let part = matches!(r, Ok(n) if n > 0);
                self.shared.torn.store(part || was_torn, Ordering::Release);
                Err(r
                    .err()
                    .unwrap_or_else(|| io::Error::other("short write (a full filesystem?)")))
            }
        };
        if let Err(e) = &r {
            self.failures.set(self.failures.get() + 1);
            let due = self.warned.get().is_none_or(|t| t.elapsed() >= WARN_EVERY);
            if due {
                tracing::warn!(
                    "xferlog {}: write failed: {e} ({} failed since the last warning)",
                    self.shared.path.display(),
                    self.failures.replace(0)
                );
                self.warned.set(Some(Instant::now()));
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record<'static> {
        Record {
            now: 1_795_734_504, // 2026-11-26 23:08:24 UTC, a Thursday
            seconds: 3,
            remote_host: "127.0.0.1",
            bytes: 1048576,
            path: b"/pub/a file.iso",
            ascii: false,
            outgoing: true,
            anonymous: true,
            user: "ftp",
            complete: true,
        }
    }

    #[test]
    fn line_format() {
        let r = record();
        assert_eq!(
            String::from_utf8(format(&r, 0)).unwrap(),
            "Thu Nov 26 23:08:24 2026 3 127.0.0.1 1048576 /pub/a_file.iso b _ o a anonymous@ ftp 0 * c\n"
        );
        let r2 = Record {
            now: 0,
            ascii: true,
            complete: false,
            anonymous: false,
            user: "alice",
            ..r
        };
        assert_eq!(
            String::from_utf8(format(&r2, 0)).unwrap(),
            "Thu Jan  1 00:00:00 1970 3 127.0.0.1 1048576 /pub/a_file.iso a _ o r alice ftp 0 * i\n"
        );
    }

    #[test]
    fn local_time_is_shifted_by_the_offset() {
        // 23:08:24 UTC at +02:00 is 01:08:24 the next day, a Friday.
        let line = String::from_utf8(format(&record(), 7200)).unwrap();
        assert!(line.starts_with("Fri Nov 27 01:08:24 2026 3 "), "{line}");
        let line = String::from_utf8(format(&record(), -5 * 3600)).unwrap();
        assert!(line.starts_with("Thu Nov 26 18:08:24 2026 3 "), "{line}");
    }

    #[test]
    fn blanks_and_controls_never_split_a_field() {
        let names: [&[u8]; 5] = [
            b"/a b\tc",
            b"/line\nbreak\r",
            b"/\x7f\x01del",
            b"/  ",
            b"/\xff\xfe not utf-8",
        ];
        for name in names {
            let r = Record {
                path: name,
                user: "bob smith",
                anonymous: false,
                ..record()
            };
            let line = format(&r, 0);
            assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
            let text = String::from_utf8_lossy(&line);
            let fields: Vec<&str> = text.split_ascii_whitespace().collect();
            assert_eq!(fields.len(), FIELDS, "{text:?}");
            assert_eq!(fields[13], "bob_smith", "{text:?}");
        }
    }

    #[test]
    fn reopen_moves_writes_to_the_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("xferlog");
        let log = Arc::new(XferLog::open(&path, true).unwrap());
        let shard = ShardXferLog::new(log.clone());
        let first = shard.fd();
        // The path still names the open file: nothing to reopen.
        assert!(!log.reopen().unwrap());
        assert!(Rc::ptr_eq(&first, &shard.fd()));
        std::fs::rename(&path, dir.path().join("xferlog.1")).unwrap();
        // Unchanged generation: the same fd, the moved file.
        assert!(Rc::ptr_eq(&first, &shard.fd()));
        // A part line left by a short write stays with the moved file: the
        // new one starts with no blank line.
        log.torn.store(true, Ordering::Release);
        assert!(log.reopen().unwrap());
        assert!(!log.torn.load(Ordering::Acquire));
        assert!(path.exists(), "reopen creates the file again");
        assert!(!Rc::ptr_eq(&first, &shard.fd()));
        // A path that cannot be opened any more keeps the current file.
        let bad = XferLog::open(&dir.path().join("x"), true).unwrap();
        std::fs::remove_dir_all(dir.path()).unwrap();
        assert!(bad.reopen().is_err());
    }
}
