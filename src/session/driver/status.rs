//! STAT alone (RFC 959): the session's status and its own transfer
//! counters, as a multi-line 211. A named account (an operator, say) also
//! sees its shard's counters; an anonymous session sees only its own.

use super::Conn;
use crate::proto::codes::*;
use crate::proto::Reply;

impl Conn {
    pub(super) fn status(&self) -> Reply {
        let c = &self.counters;
        let mut text = format!(
            "FTP server status:\n\
             \x20    Connected to {}\n\
             \x20    Logged in as {}\n\
             \x20    TYPE: {}\n\
             \x20    Session timeout in seconds is {}\n\
             \x20    Control connection is {}\n\
             \x20    Data connections will be {}{}\n\
             \x20    ringftp shard {}, this session: {} transfers, {} bytes spliced (zero-copy; {} read from disk through a pipe), {} bytes copied\n\
             \x20    FTPS data, this session: {} bytes encrypted in userspace (in place), {} bytes through kernel TLS (zero-copy); {}\n",
            self.peer.ip(),
            self.session.user().unwrap_or("(not logged in)"),
            if self.session.is_ascii() { "ASCII" } else { "BINARY" },
            self.ctx.config.idle_timeout.as_secs(),
            match self.reader.tls_description() {
                Some(d) => format!("TLS ({d})"),
                None => "plain text".to_string(),
            },
            if self.session.protect_data() {
                "TLS (PROT P)"
            } else {
                "plain text"
            },
            match &self.last_data_tls {
                Some(how) => format!("; the last one was {how}"),
                None => String::new(),
            },
            self.ctx.id,
            c.transfers.get(),
            c.spliced.get(),
            c.from_disk.get(),
            c.copied.get(),
            c.tls_userspace.get(),
            c.tls_kernel.get(),
            match &self.ctx.tls {
                Some(t) if !t.ktls.pairs.is_empty() => t.ktls.to_string(),
                Some(t) => format!("downloads encrypted in userspace: {}", t.ktls),
                None => "TLS not configured".to_string(),
            },
        );
        if self.session.account().is_some_and(|a| !a.anonymous) {
            let s = &self.ctx.counters;
            text.push_str(&format!(
                "     ringftp shard {} (all sessions): {} sessions open ({} since start), {} transfers, {} bytes spliced (zero-copy; {} read from disk through a pipe), {} bytes copied\n",
                self.ctx.id,
                self.ctx.sessions_open.get(),
                self.ctx.sessions_total.get(),
                s.transfers.get(),
                s.spliced.get(),
                s.from_disk.get(),
                s.copied.get(),
            ));
            text.push_str(&format!(
                "     ringftp shard {} (all sessions) FTPS data: {} bytes encrypted in userspace (in place), {} bytes through kernel TLS (zero-copy)\n",
                self.ctx.id,
                s.tls_userspace.get(),
                s.tls_kernel.get(),
            ));
        }
        text.push_str("End of status");
        Reply::new(SYSTEM_STATUS, text)
    }
}
