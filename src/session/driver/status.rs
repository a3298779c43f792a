//! STAT alone (RFC 959): the session's status and its shard's counters, as
//! a multi-line 211.

use super::Conn;
use crate::proto::codes::*;
use crate::proto::Reply;

impl Conn {
    pub(super) fn status(&self) -> Reply {
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
