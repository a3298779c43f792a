//! STAT alone (RFC 959): the session's status and its shard's counters, as
//! a multi-line 211. "Spliced" counts every zero-copy byte (sendfile from
//! the page cache and splice through a pipe), "read from disk" the
//! downloads that went through a pipe, "copied" the bytes that passed
//! through a buffer (ASCII, listings).

use super::Conn;
use crate::metrics::counters::{BytePath, Dir};
use crate::proto::codes::*;
use crate::proto::Reply;

impl Conn {
    pub(super) fn status(&self) -> Reply {
        let m = &self.ctx.metrics;
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
            m.sessions_open.get(),
            m.sessions_total.get(),
            m.transfers_connected(),
            m.bytes_by_path(BytePath::Sendfile) + m.bytes_by_path(BytePath::Splice),
            m.bytes[Dir::Download.index()][BytePath::Splice.index()].get(),
            m.bytes_by_path(BytePath::Copied),
        );
        Reply::new(SYSTEM_STATUS, text)
    }
}
