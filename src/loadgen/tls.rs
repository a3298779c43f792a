//! FTPS for the load generator (`--tls explicit|implicit`): the client
//! side of RFC 4217 with rustls, on the same io_uring streams as plain
//! FTP.
//!
//! Each control session gets its own session store, so its data
//! connections resume *its* TLS session, as servers that enforce session
//! reuse (ringftp, vsftpd's `require_ssl_reuse`) require. The store keeps
//! the TLS 1.2 session for every data connection; TLS 1.3 tickets are
//! single-use in rustls' client, and servers send none on upload data
//! connections, so a session that uploads runs out of them: TLS 1.2 is the
//! default (`--tls-version 1.3` to measure 1.3 on downloads).
//!
//! The settings are process-wide, set once by [`configure`] before the
//! shards start.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{
    ClientSessionStore, Resumption, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, NamedGroup, SignatureScheme};
use tokio_uring::net::TcpStream;

use super::failure::{within, Failure};

/// `--tls`: how the session starts TLS.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// AUTH TLS after the greeting (port 21 style).
    Explicit,
    /// TLS from the first byte (port 990 style).
    Implicit,
}

/// `--tls-version`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    #[value(name = "1.2")]
    V1_2,
    #[value(name = "1.3")]
    V1_3,
}

/// The process-wide FTPS client settings.
pub(crate) struct Settings {
    pub mode: TlsMode,
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Sets the FTPS settings from the flags; `server` is the name certificates
/// are checked against (`--tls-server-name`, else the target's host).
pub(crate) fn configure(
    mode: TlsMode,
    version: TlsVersion,
    ca: Option<&std::path::Path>,
    insecure: bool,
    server: &str,
) -> anyhow::Result<()> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match version {
        TlsVersion::V1_2 => &[&rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder =
        ClientConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions)?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth()
    } else {
        let ca =
            ca.ok_or_else(|| anyhow::anyhow!("--tls needs --tls-ca FILE (PEM) or --tls-insecure"))?;
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(ca)
            .map_err(|e| anyhow::anyhow!("--tls-ca {}: {e}", ca.display()))?
        {
            roots
                .add(c.map_err(|e| anyhow::anyhow!("--tls-ca {}: {e}", ca.display()))?)
                .map_err(|e| anyhow::anyhow!("--tls-ca {}: {e}", ca.display()))?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    let name = ServerName::try_from(server.to_string())
        .map_err(|e| anyhow::anyhow!("TLS server name {server:?}: {e}"))?;
    let _ = SETTINGS.set(Settings {
        mode,
        config: Arc::new(config),
        name,
    });
    Ok(())
}

/// The FTPS settings, if `--tls` was given.
pub(crate) fn settings() -> Option<&'static Settings> {
    SETTINGS.get()
}

impl Settings {
    /// A new control session's TLS: its own session store.
    pub(crate) fn session(&self) -> SessionTls {
        let mut config = (*self.config).clone();
        let store = Arc::new(OwnStore::default());
        config.resumption = Resumption::store(store);
        SessionTls {
            config: Arc::new(config),
            name: self.name.clone(),
        }
    }
}

/// One control session's TLS configuration: every connection made with
/// it shares the session's store, so data connections resume the control
/// connection's session.
#[derive(Clone)]
pub(crate) struct SessionTls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl SessionTls {
    pub(crate) fn connection(&self) -> Result<ClientConnection, Failure> {
        ClientConnection::new(self.config.clone(), self.name.clone())
            .map_err(|e| Failure::Protocol(format!("TLS: {e}")))
    }
}

/// Sends what rustls has queued.
pub(crate) async fn flush(conn: &mut ClientConnection, stream: &TcpStream) -> Result<(), Failure> {
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out)
            .map_err(|e| Failure::io(e, "TLS write"))?;
    }
    if !out.is_empty() {
        let (res, _) = stream.write_all(out).await;
        res.map_err(|e| Failure::io(e, "TLS write"))?;
    }
    Ok(())
}

/// Reads once from `stream` into rustls (0 bytes: the peer closed),
/// handing the plaintext to `plain` as it is decrypted (rustls holds only
/// a little plaintext at a time).
pub(crate) async fn read_some(
    conn: &mut ClientConnection,
    stream: &TcpStream,
    buf: Vec<u8>,
    mut plain: impl FnMut(&[u8]) -> Result<(), Failure>,
) -> Result<(usize, Vec<u8>), Failure> {
    use std::io::Read;
    let (res, buf) = stream.read(buf).await;
    let n = res.map_err(|e| Failure::io(e, "TLS read"))?;
    let mut rd = &buf[..n];
    let mut out = [0u8; 16 * 1024];
    while !rd.is_empty() {
        conn.read_tls(&mut rd)
            .map_err(|e| Failure::io(e, "TLS read"))?;
        conn.process_new_packets()
            .map_err(|e| Failure::Protocol(format!("TLS: {e}")))?;
        loop {
            match conn.reader().read(&mut out) {
                Ok(0) => break,
                Ok(k) => plain(&out[..k])?,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(Failure::io(e, "TLS read")),
            }
        }
    }
    Ok((n, buf))
}

/// Runs the client handshake on `stream` within `timeout`. Returns the
/// plaintext that arrived with the server's last handshake records (a
/// greeting, the first bytes of a download).
pub(crate) async fn handshake(
    conn: &mut ClientConnection,
    stream: &TcpStream,
    timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    within(timeout, "TLS handshake", async {
        let mut buf = Vec::with_capacity(16 * 1024);
        let mut early = Vec::new();
        while conn.is_handshaking() {
            flush(conn, stream).await?;
            if !conn.is_handshaking() {
                break;
            }
            buf.clear();
            let (n, b) = read_some(conn, stream, buf, |p| {
                early.extend_from_slice(p);
                Ok(())
            })
            .await?;
            buf = b;
            if n == 0 {
                return Err(Failure::Closed);
            }
        }
        flush(conn, stream).await?;
        Ok(early)
    })
    .await
}

/// Keeps one session's resumption state: the TLS 1.2 session (reusable)
/// and the TLS 1.3 tickets (each used once).
#[derive(Default, Debug)]
struct OwnStore {
    kx: Mutex<Option<NamedGroup>>,
    tls12: Mutex<Option<Tls12ClientSessionValue>>,
    tls13: Mutex<Vec<Tls13ClientSessionValue>>,
}

impl ClientSessionStore for OwnStore {
    fn set_kx_hint(&self, _: ServerName<'static>, group: NamedGroup) {
        *self.kx.lock().unwrap() = Some(group);
    }
    fn kx_hint(&self, _: &ServerName<'_>) -> Option<NamedGroup> {
        *self.kx.lock().unwrap()
    }
    fn set_tls12_session(&self, _: ServerName<'static>, value: Tls12ClientSessionValue) {
        *self.tls12.lock().unwrap() = Some(value);
    }
    fn tls12_session(&self, _: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.tls12.lock().unwrap().clone()
    }
    fn remove_tls12_session(&self, _: &ServerName<'static>) {
        // Kept: data connections keep resuming the control session.
    }
    fn insert_tls13_ticket(&self, _: ServerName<'static>, value: Tls13ClientSessionValue) {
        let mut v = self.tls13.lock().unwrap();
        if v.len() >= 8 {
            v.remove(0);
        }
        v.push(value);
    }
    fn take_tls13_ticket(&self, _: &ServerName<'static>) -> Option<Tls13ClientSessionValue> {
        self.tls13.lock().unwrap().pop()
    }
}

/// `--tls-insecure`: accepts any certificate (self-signed test servers);
/// signatures are still checked.
#[derive(Debug)]
struct AnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Reads a TLS data stream to its close_notify, handing every plaintext
/// chunk (and its offset) to `sink`; each read waits at most `timeout`. A
/// stream that ends without close_notify was cut: an error.
pub(crate) async fn read_to_end(
    stream: &TcpStream,
    conn: &mut ClientConnection,
    early: &[u8],
    timeout: Duration,
    mut sink: impl FnMut(u64, &[u8]) -> Result<(), Failure>,
) -> Result<super::data::Received, Failure> {
    use std::io::Read;
    let mut got = super::data::Received {
        bytes: 0,
        first_byte: None,
    };
    if !early.is_empty() {
        got.first_byte = Some(std::time::Instant::now());
        sink(0, early)?;
        got.bytes = early.len() as u64;
    }
    let mut buf = Vec::with_capacity(256 * 1024);
    loop {
        buf.clear();
        let read = read_some(conn, stream, buf, |p| {
            if got.first_byte.is_none() {
                got.first_byte = Some(std::time::Instant::now());
            }
            sink(got.bytes, p)?;
            got.bytes += p.len() as u64;
            Ok(())
        });
        let (n, b) = match tokio::time::timeout(timeout, read).await {
            Ok(r) => r?,
            Err(_) => return Err(Failure::Timeout("data")),
        };
        buf = b;
        // The peer's close_notify: the download is complete.
        let mut probe = [0u8; 1];
        if matches!(conn.reader().read(&mut probe), Ok(0)) {
            conn.send_close_notify();
            let _ = flush(conn, stream).await;
            return Ok(got);
        }
        if n == 0 {
            return Err(Failure::Protocol(
                "data connection ended without TLS close_notify".into(),
            ));
        }
    }
}

/// Writes all of `data` as TLS records, then close_notify, then closes the
/// sending side; each write waits at most `timeout`.
pub(crate) async fn write_all(
    stream: &TcpStream,
    conn: &mut ClientConnection,
    data: &[u8],
    timeout: Duration,
    mut progress: impl FnMut(u64),
) -> Result<(), Failure> {
    use std::io::Write;
    conn.set_buffer_limit(None);
    for chunk in data.chunks(256 * 1024) {
        conn.writer()
            .write_all(chunk)
            .map_err(|e| Failure::io(e, "data write"))?;
        within(timeout, "data write", flush(conn, stream)).await?;
        progress(chunk.len() as u64);
    }
    conn.send_close_notify();
    within(timeout, "data write", flush(conn, stream)).await?;
    stream
        .shutdown(std::net::Shutdown::Write)
        .map_err(|e| Failure::io(e, "data shutdown"))
}
