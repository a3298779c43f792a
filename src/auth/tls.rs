//! Who must use TLS (RFC 4217), with no I/O: the `--tls-required` and
//! `--tls-data` policies as the session state machine applies them.
//!
//! - [`TlsRequired`]: whether a login may happen over a plain-text control
//!   connection. Under `accounts` (the default once a certificate is
//!   configured) a named account is refused at `USER`, before its password
//!   can cross the network in clear; anonymous logins stay possible in
//!   plain text, as mirrors need. Under `all` nobody logs in without TLS.
//! - [`TlsData`]: whether a session whose control connection is in TLS may
//!   move data in clear (`PROT C`). Required by default, as vsftpd's
//!   `force_local_data_ssl` and FileZilla Server do.

use super::login::is_anonymous_name;

/// `--tls-required`: which logins need a TLS control connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRequired {
    /// Anyone may log in over plain text.
    #[default]
    Off,
    /// Named accounts need TLS; anonymous logins do not.
    Accounts,
    /// Every login needs TLS.
    All,
}

/// `--tls-data`: whether a TLS session's data connections must be in TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsData {
    /// `PROT C` is allowed on a TLS session.
    Optional,
    /// A TLS session must send `PROT P` before any transfer (RFC 4217
    /// section 9: 521 otherwise).
    #[default]
    Required,
}

/// The server-wide FTPS rules a session follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlsRules {
    /// A certificate is configured: AUTH TLS is offered (FEAT lists it).
    pub available: bool,
    pub required: TlsRequired,
    pub data: TlsData,
}

impl TlsRules {
    /// Why `user` may not log in on a control connection that is (`secure`)
    /// or is not in TLS, if it may not: the text of the 530.
    pub fn login_refusal(&self, secure: bool, user: &str) -> Option<&'static str> {
        if secure {
            return None;
        }
        match self.required {
            TlsRequired::Off => None,
            TlsRequired::Accounts if is_anonymous_name(user) => None,
            TlsRequired::Accounts => {
                Some("Accounts log in only over TLS: use AUTH TLS first (FTPS).")
            }
            TlsRequired::All => Some("Logins need TLS: use AUTH TLS first (FTPS)."),
        }
    }

    /// True if a transfer may go ahead with data in clear on a control
    /// connection that is (`secure`) or is not in TLS.
    pub fn clear_data_allowed(&self, secure: bool) -> bool {
        !secure || self.data == TlsData::Optional
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_policy_table() {
        use TlsRequired::*;
        // (policy, control in TLS, user, refused)
        let table: &[(TlsRequired, bool, &str, bool)] = &[
            (Off, false, "alice", false),
            (Off, false, "anonymous", false),
            (Accounts, false, "alice", true),
            (Accounts, false, "anonymous", false),
            (Accounts, false, "FTP", false),
            (Accounts, true, "alice", false),
            (All, false, "anonymous", true),
            (All, false, "alice", true),
            (All, true, "anonymous", false),
            (All, true, "alice", false),
        ];
        for &(required, secure, user, refused) in table {
            let rules = TlsRules {
                available: true,
                required,
                data: TlsData::Required,
            };
            let got = rules.login_refusal(secure, user);
            assert_eq!(got.is_some(), refused, "{required:?} {secure} {user}");
            if let Some(text) = got {
                assert!(text.contains("AUTH TLS"), "{text}");
            }
        }
    }

    #[test]
    fn clear_data_table() {
        for (data, secure, allowed) in [
            (TlsData::Required, false, true),
            (TlsData::Required, true, false),
            (TlsData::Optional, true, true),
            (TlsData::Optional, false, true),
        ] {
            let rules = TlsRules {
                available: true,
                required: TlsRequired::Off,
                data,
            };
            assert_eq!(
                rules.clear_data_allowed(secure),
                allowed,
                "{data:?} {secure}"
            );
        }
    }
}
