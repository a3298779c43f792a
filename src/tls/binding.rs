//! Session reuse bound to the control session (RFC 4217 section 10, the
//! check vsftpd calls `require_ssl_reuse`).
//!
//! A data connection is accepted only if its TLS handshake *resumes the
//! session of its own control connection*. "Some resumed session" is not
//! enough: a third party with its own FTPS session could otherwise race
//! the client to a passive port and resume its own session there. So each
//! FTP session gets a random [`Token`], and everything that lets a client
//! resume — the TLS 1.2 and 1.3 tickets of the shared (reusable) ticketer,
//! and the TLS 1.2 session-ID cache — is wrapped per session:
//! [`BoundTicketer`] seals the token into every ticket it issues and,
//! on a data connection, opens only tickets holding this session's token;
//! [`BoundStore`] does the same for cached sessions. Another session's
//! ticket therefore falls back to a full handshake, which the data
//! connection refuses with 522.
//!
//! TLS 1.3 also carries the token as rustls' resumption data
//! (`set_resumption_data` / `received_resumption_data`), checked as well;
//! rustls 0.23 does not report that data for TLS 1.2 resumptions, which is
//! why the wrappers exist.

use std::sync::Arc;

use ring::rand::{SecureRandom, SystemRandom};
use rustls::server::{ProducesTickets, StoresServerSessions};

/// Bytes of a session's binding token.
pub(crate) const TOKEN_LEN: usize = 16;

/// One FTP session's random binding token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token(pub [u8; TOKEN_LEN]);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A fresh random token from the system's CSPRNG.
    pub(crate) fn random() -> Token {
        let mut t = [0u8; TOKEN_LEN];
        // getrandom(2) does not fail once the pool is initialised; if it
        // did, a zero token binds nothing better than no token, so make it
        // distinct at least.
        if SystemRandom::new().fill(&mut t).is_err() {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            t.copy_from_slice(&nanos.to_le_bytes());
        }
        Token(t)
    }

    /// `data` with the token in front.
    fn seal(&self, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(TOKEN_LEN + data.len());
        v.extend_from_slice(&self.0);
        v.extend_from_slice(data);
        v
    }

    /// `data` without its token, if the token is this one (or, unless
    /// `check`, any token: `--tls-session-reuse off`).
    fn open(&self, mut data: Vec<u8>, check: bool) -> Option<Vec<u8>> {
        if data.len() >= TOKEN_LEN && (!check || data[..TOKEN_LEN] == self.0) {
            data.drain(..TOKEN_LEN);
            Some(data)
        } else {
            None
        }
    }
}

/// The shared ticketer seen through one session's token.
#[derive(Debug)]
pub(crate) struct BoundTicketer {
    pub inner: Arc<dyn ProducesTickets>,
    pub token: Token,
    /// Open only this token's tickets (else any session's).
    pub check: bool,
}

impl ProducesTickets for BoundTicketer {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.inner.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(&self.token.seal(plain))
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.token.open(self.inner.decrypt(cipher)?, self.check)
    }
}

/// The shared session-ID cache (TLS 1.2 clients without tickets) seen
/// through one session's token.
#[derive(Debug)]
pub(crate) struct BoundStore {
    pub inner: Arc<dyn StoresServerSessions>,
    pub token: Token,
    /// Open only this token's sessions (else any session's).
    pub check: bool,
}

impl StoresServerSessions for BoundStore {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, self.token.seal(&value))
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.token.open(self.inner.get(key)?, self.check)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        // Only this session's entry may be consumed.
        self.get(key)?;
        self.token.open(self.inner.take(key)?, self.check)
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_opens_only_for_its_own_session() {
        let inner = rustls::crypto::ring::Ticketer::new().unwrap();
        let a = BoundTicketer {
            inner: inner.clone(),
            token: Token::random(),
            check: true,
        };
        let b = BoundTicketer {
            inner: inner.clone(),
            token: Token::random(),
            check: true,
        };
        let any = BoundTicketer {
            inner,
            token: Token::random(),
            check: false,
        };
        assert_ne!(a.token, b.token);
        let ticket = a.encrypt(b"session state").unwrap();
        assert_eq!(a.decrypt(&ticket).as_deref(), Some(&b"session state"[..]));
        assert_eq!(b.decrypt(&ticket), None);
        assert_eq!(b.decrypt(b"garbage"), None);
        assert_eq!(any.decrypt(&ticket).as_deref(), Some(&b"session state"[..]));

        let cache = rustls::server::ServerSessionMemoryCache::new(16);
        let sa = BoundStore {
            inner: cache.clone(),
            token: a.token,
            check: true,
        };
        let sb = BoundStore {
            inner: cache,
            token: b.token,
            check: true,
        };
        assert!(sa.put(b"id".to_vec(), b"v".to_vec()));
        assert_eq!(sb.get(b"id"), None);
        assert_eq!(sb.take(b"id"), None);
        assert_eq!(sa.get(b"id").as_deref(), Some(&b"v"[..]));
        assert_eq!(sa.take(b"id").as_deref(), Some(&b"v"[..]));
        assert_eq!(sa.get(b"id"), None);
    }
}
