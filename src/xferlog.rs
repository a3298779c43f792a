//! The transfer log, in the wu-ftpd `xferlog(5)` format that vsftpd,
//! ProFTPD and pure-ftpd also write and log analysers read: one line per
//! transfer, appended with an io_uring write on an O_APPEND file (each
//! shard has its own fd; O_APPEND makes every line land whole at the end).

use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::rc::Rc;

use crate::engine::sys::{self, FdRef};
use crate::vfs::time::civil_from_unix;

/// An open transfer log.
pub struct XferLog {
    fd: FdRef,
}

/// One finished (or failed) transfer.
pub struct Record<'a> {
    /// Unix time the transfer ended.
    pub now: i64,
    /// Whole seconds the transfer took.
    pub seconds: u64,
    pub remote_host: &'a str,
    pub bytes: u64,
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

/// Formats one xferlog line (with its newline). Fields, in order:
/// current-time transfer-time remote-host file-size filename transfer-type
/// special-action direction access-mode username service-name
/// authentication-method authenticated-user-id completion-status.
/// Spaces in the file name become `_`, as wu-ftpd does, so the line still
/// splits into fields.
pub fn format(r: &Record) -> Vec<u8> {
    let (y, mo, d, h, mi, s) = civil_from_unix(r.now);
    let weekday = DAYS[r.now.div_euclid(86_400).rem_euclid(7) as usize];
    let mut line = format!(
        "{weekday} {} {d:2} {h:02}:{mi:02}:{s:02} {y} {} {} {} ",
        MONTHS[(mo - 1) as usize],
        r.seconds,
        r.remote_host,
        r.bytes
    )
    .into_bytes();
    line.extend(r.path.iter().map(|&b| {
        if b == b' ' || b == b'\n' || b == b'\r' {
            b'_'
        } else {
            b
        }
    }));
    let user = if r.anonymous { "anonymous@" } else { r.user };
    line.extend_from_slice(
        format!(
            " {} _ {} {} {} ftp 0 * {}\n",
            if r.ascii { 'a' } else { 'b' },
            if r.outgoing { 'o' } else { 'i' },
            if r.anonymous { 'a' } else { 'r' },
            user,
            if r.complete { 'c' } else { 'i' }
        )
        .as_bytes(),
    );
    line
}

impl XferLog {
    pub fn open(path: &Path) -> io::Result<XferLog> {
        Ok(XferLog::from_fd(XferLog::open_fd(path)?))
    }

    /// Opens (creating it, mode 0640) the log file for appending. The
    /// server opens it before dropping privileges and hands each shard a
    /// dup ([`XferLog::from_fd`]).
    pub fn open_fd(path: &Path) -> io::Result<OwnedFd> {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)?;
        Ok(OwnedFd::from(file))
    }

    /// A log on an fd from [`XferLog::open_fd`].
    pub fn from_fd(fd: OwnedFd) -> XferLog {
        XferLog { fd: Rc::new(fd) }
    }

    pub async fn write(&self, record: &Record<'_>) {
        if let Err(e) = sys::write_append(self.fd.clone(), format(record)).await {
            tracing::warn!("xferlog write failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_format() {
        let r = Record {
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
        };
        assert_eq!(
            String::from_utf8(format(&r)).unwrap(),
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
            String::from_utf8(format(&r2)).unwrap(),
            "Thu Jan  1 00:00:00 1970 3 127.0.0.1 1048576 /pub/a_file.iso a _ o r alice ftp 0 * i\n"
        );
    }
}
