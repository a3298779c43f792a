//! FTPS (RFC 4217): TLS on the control and data connections.
//!
//! - [`alert`]: the fatal alert a refused implicit-FTPS client gets in
//!   place of a handshake;
//! - [`certs`]: the certificate pair, checked at start, swapped on SIGHUP;
//! - [`binding`]: the data connection must resume *its own* control
//!   connection's TLS session (per-session tokens in tickets and cache);
//! - [`handshake`]: rustls' buffered `ServerConnection` driven by the
//!   shard's io_uring ops;
//! - [`record`]: the in-place userspace record layer data connections use
//!   when the kernel cannot encrypt (kTLS: `engine::sys::ktls`).
//!
//! [`Tls`] is the server-wide part, built once at start: the two rustls
//! configurations (control connections get two TLS 1.3 tickets from a
//! reusable ticketer, download data connections one, for clients that
//! resume the last session they saw, upload ones none; data connections
//! allow their keys to be extracted), the kTLS probe's result and the policies. The crypto
//! provider is ring: it builds with nothing but a C compiler, where
//! aws-lc-rs needs cmake on a fresh machine.

pub(crate) mod alert;
pub(crate) mod binding;
pub(crate) mod certs;
pub(crate) mod handshake;
pub(crate) mod record;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::{ServerConfig, ServerConnection};

use self::binding::{BoundStore, BoundTicketer, Token};
use crate::config::TlsSettings;
use crate::engine::sys::ktls;

/// TLS 1.2 sessions kept for clients that resume by session ID (most use
/// tickets, which need no server memory).
const SESSION_CACHE: usize = 8192;

/// The server-wide FTPS state (shared by all shards).
#[derive(Debug)]
pub(crate) struct Tls {
    pub certs: Arc<certs::Reloadable>,
    control: ServerConfig,
    data: ServerConfig,
    ticketer: Arc<dyn ProducesTickets>,
    store: Arc<dyn StoresServerSessions>,
    /// `--tls-session-reuse required`.
    pub session_reuse: bool,
    /// What the kernel can encrypt (empty with `--ktls off` or no kTLS).
    pub ktls: ktls::Support,
}

impl Tls {
    /// Loads the certificate and builds the configurations; the error
    /// names the flag at fault.
    pub(crate) fn new(s: &TlsSettings) -> Result<Tls, String> {
        let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
        let certs = Arc::new(certs::Reloadable::open(provider.clone(), &s.cert, &s.key)?);
        let versions: &[&rustls::SupportedProtocolVersion] = if s.tls13_only {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let ticketer =
            rustls::crypto::ring::Ticketer::new().map_err(|e| format!("TLS ticket keys: {e}"))?;
        let store: Arc<dyn StoresServerSessions> = ServerSessionMemoryCache::new(SESSION_CACHE);
        let base = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        let mut control = base.clone();
        // Reusable tickets (the ticketer is stateless): clients resume the
        // control session on every data connection from one ticket.
        control.send_tls13_tickets = 2;
        let mut data = base;
        // One TLS 1.3 ticket per download data connection, bound to the
        // session like the control connection's: curl 7.88 with OpenSSL 3
        // caches the session of each data connection and offers it on the
        // next, and without a ticket that session cannot be resumed (its
        // second transfer would be refused). None on upload connections
        // (see `data_connection`): a client never reads those, and when it
        // closes with our ticket unread its kernel resets the connection,
        // which can destroy the end of the upload before it is read (Go's
        // TLS, old curl).
        data.send_tls13_tickets = 1;
        data.enable_secret_extraction = true;
        let ktls = if s.ktls {
            ktls::probe()
        } else {
            ktls::Support::default()
        };
        Ok(Tls {
            certs,
            control,
            data,
            ticketer,
            store,
            session_reuse: s.session_reuse,
            ktls,
        })
    }

    /// A control connection of the FTP session holding `token`: its
    /// tickets and cached session carry the token.
    pub(crate) fn control_connection(
        &self,
        token: Token,
    ) -> Result<ServerConnection, rustls::Error> {
        let mut cfg = self.control.clone();
        self.bind(&mut cfg, token, true);
        let mut conn = ServerConnection::new(Arc::new(cfg))?;
        conn.set_resumption_data(&token.0);
        Ok(conn)
    }

    /// A data connection of the FTP session holding `token`: with session
    /// reuse required it can resume only that session. `download`: the
    /// client reads this connection to its end, so it may get a ticket.
    pub(crate) fn data_connection(
        &self,
        token: Token,
        download: bool,
    ) -> Result<ServerConnection, rustls::Error> {
        let mut cfg = self.data.clone();
        if !download {
            cfg.send_tls13_tickets = 0;
        }
        self.bind(&mut cfg, token, self.session_reuse);
        let mut conn = ServerConnection::new(Arc::new(cfg))?;
        conn.set_resumption_data(&token.0);
        Ok(conn)
    }

    /// Every ticket and cached session carries the session's token;
    /// `check`: only this session's open.
    fn bind(&self, cfg: &mut ServerConfig, token: Token, check: bool) {
        cfg.ticketer = Arc::new(BoundTicketer {
            inner: self.ticketer.clone(),
            token,
            check,
        });
        cfg.session_storage = Arc::new(BoundStore {
            inner: self.store.clone(),
            token,
            check,
        });
    }

    /// Whether a finished data handshake resumed the control session
    /// holding `token` (always true with `--tls-session-reuse off`).
    pub(crate) fn resumed_own_session(&self, conn: &ServerConnection, token: Token) -> bool {
        if !self.session_reuse {
            return true;
        }
        if conn.handshake_kind() != Some(rustls::HandshakeKind::Resumed) {
            return false;
        }
        // TLS 1.3 reports the resumption data; TLS 1.2 resumptions are
        // bound by the ticketer and cache wrappers alone (rustls 0.23 does
        // not report the data for them).
        match conn.received_resumption_data() {
            Some(data) => data == token.0,
            None => conn.protocol_version() == Some(rustls::ProtocolVersion::TLSv1_2),
        }
    }
}
