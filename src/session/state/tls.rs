//! The RFC 4217 part of the session: AUTH TLS, PBSZ/PROT and whether a
//! transfer's data connection must be protected.

use super::{reply, Login, Session};
use crate::proto::codes::*;
use crate::proto::{ProtLevel, Reply};
use crate::session::step::Step;

/// Where a session stands with TLS (RFC 4217).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlsState {
    /// The control connection is in TLS (after AUTH TLS and its
    /// handshake, or from the first byte on an implicit listener).
    pub control: bool,
    /// PBSZ was given (RFC 2228 wants it before PROT; accepted either way).
    pub pbsz: bool,
    /// PROT P: data connections in TLS.
    pub protect_data: bool,
}

impl Session {
    /// Where the session stands with TLS.
    pub fn tls(&self) -> TlsState {
        self.tls
    }

    /// Driver report: the control connection's TLS handshake completed
    /// (after AUTH TLS, or at accept on an implicit listener, where data
    /// connections are protected from the start as implicit FTPS clients
    /// expect).
    pub fn tls_started(&mut self, implicit: bool) {
        self.tls.control = true;
        if implicit {
            self.tls.pbsz = true;
            self.tls.protect_data = true;
        }
    }

    /// True if the next transfer's data connection must be in TLS (PROT P).
    pub fn protect_data(&self) -> bool {
        self.tls.control && self.tls.protect_data
    }

    /// AUTH (RFC 4217 section 4): TLS (and its old aliases SSL and TLS-C)
    /// is accepted once, before login, when a certificate is configured.
    pub(super) fn auth(&mut self, mechanism: &str) -> Step {
        if !self.rules.tls.available {
            return reply(
                NOT_IMPLEMENTED,
                "AUTH not available: no TLS certificate configured.",
            );
        }
        if self.tls.control {
            return reply(BAD_SEQUENCE, "Already in TLS.");
        }
        if self.account().is_some() {
            return reply(BAD_SEQUENCE, "AUTH must come before login.");
        }
        match mechanism {
            "TLS" | "SSL" | "TLS-C" => {
                // A login in progress restarts under TLS: a USER sent in
                // clear does not carry over.
                self.login = Login::AwaitUser;
                Step::StartTls(Reply::new(
                    SECURITY_DATA_EXCHANGE_COMPLETE,
                    "AUTH TLS ok; start the TLS handshake.",
                ))
            }
            _ => reply(NOT_IMPLEMENTED_PARAM, "Only AUTH TLS is supported."),
        }
    }

    /// PROT (RFC 4217 section 9): C or P after AUTH TLS; S and E are not
    /// TLS levels.
    pub(super) fn prot(&mut self, level: ProtLevel) -> Step {
        if !self.tls.control {
            return reply(
                BAD_SEQUENCE,
                "PROT needs a TLS control connection (AUTH TLS) first.",
            );
        }
        match level {
            ProtLevel::Private => {
                self.tls.protect_data = true;
                reply(OK, "PROT now Private.")
            }
            ProtLevel::Clear if !self.rules.tls.clear_data_allowed(true) => reply(
                DENIED_FOR_POLICY,
                "PROT C refused: data connections must be in TLS here.",
            ),
            ProtLevel::Clear => {
                self.tls.protect_data = false;
                reply(OK, "PROT now Clear.")
            }
            ProtLevel::Safe | ProtLevel::Confidential => reply(
                PROT_LEVEL_NOT_SUPPORTED,
                "PROT S and E are not supported; use P or C.",
            ),
        }
    }
}
