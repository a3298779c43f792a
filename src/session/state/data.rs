//! The data-connection part of the session: PASV/EPSV (RFC 959, RFC
//! 2428), PORT/EPRT with the RFC 2577 checks, and the one-transfer life of
//! a data mode.

use std::net::SocketAddr;

use super::{reply, Session};
use crate::proto::addr::same_host;
use crate::proto::codes::*;
use crate::proto::{EpsvArg, Reply};
use crate::session::step::{DataMode, Step};

impl Session {
    /// Driver report: a passive listener is open.
    pub fn passive_opened(&mut self) {
        self.data = DataMode::Passive;
    }

    /// The data mode for a transfer, consumed: every transfer needs a fresh
    /// PASV/EPSV/PORT/EPRT, as every FTP server expects.
    pub(super) fn take_data(&mut self) -> Option<DataMode> {
        match std::mem::replace(&mut self.data, DataMode::None) {
            DataMode::None => None,
            mode => Some(mode),
        }
    }

    pub(super) fn pasv(&mut self) -> Step {
        if self.epsv_all {
            return reply(
                BAD_SEQUENCE,
                "EPSV ALL is in effect: only EPSV may set up data connections.",
            );
        }
        // The driver checks the address family (227 can only carry IPv4).
        self.data = DataMode::None;
        Step::OpenPassive { extended: false }
    }

    pub(super) fn epsv(&mut self, arg: EpsvArg) -> Step {
        let ours =
            if self.peer.is_ipv4() || crate::proto::addr::canonical_ip(self.peer.ip()).is_ipv4() {
                1
            } else {
                2
            };
        match arg {
            EpsvArg::All => {
                self.epsv_all = true;
                reply(OK, "EPSV ALL ok.")
            }
            EpsvArg::Proto(p) if p != ours => Step::Reply(Reply::new(
                NETWORK_PROTOCOL_NOT_SUPPORTED,
                format!("Network protocol not supported, use ({ours})"),
            )),
            _ => {
                self.data = DataMode::None;
                Step::OpenPassive { extended: true }
            }
        }
    }

    /// PORT/EPRT with the RFC 2577 checks: the target must be the control
    /// peer (else this is the "bounce" attack: making the server connect to
    /// a third host) and not a privileged port.
    pub(super) fn active(&mut self, addr: SocketAddr, verb: &str) -> Step {
        if self.epsv_all {
            return reply(
                BAD_SEQUENCE,
                "EPSV ALL is in effect: only EPSV may set up data connections.",
            );
        }
        if !self.rules.allow_foreign_data {
            if !same_host(addr.ip(), self.peer.ip()) {
                self.data = DataMode::None;
                return Step::Reply(Reply::new(
                    SYNTAX_ERROR,
                    format!("Illegal {verb} command: the address must be your own (RFC 2577)."),
                ));
            }
            if addr.port() < 1024 {
                self.data = DataMode::None;
                return Step::Reply(Reply::new(
                    NOT_IMPLEMENTED_PARAM,
                    format!("Illegal {verb} command: port below 1024 refused (RFC 2577)."),
                ));
            }
        }
        self.data = DataMode::Active(addr);
        Step::Reply(Reply::new(
            OK,
            format!("{verb} command successful. Consider using EPSV."),
        ))
    }
}

pub(super) fn no_data() -> Step {
    reply(CANT_OPEN_DATA, "Use PORT, EPRT, PASV or EPSV first.")
}
