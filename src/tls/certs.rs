//! The server certificate: `--tls-cert` (PEM chain, leaf first) and
//! `--tls-key` (PEM private key), loaded and checked at start with errors
//! that name the flag, and swapped on SIGHUP. A new pair that fails to
//! load leaves the old one serving; handshakes already running keep the
//! key they started with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Loads and checks a certificate chain and its key: the chain must hold
/// at least one certificate, the key must parse and match the leaf.
pub(crate) fn load(
    provider: &CryptoProvider,
    cert: &Path,
    key: &Path,
) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("--tls-cert {}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--tls-cert {}: not PEM certificates: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "--tls-cert {}: no certificate in it (expected PEM blocks BEGIN CERTIFICATE, leaf first)",
            cert.display()
        ));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        format!(
            "--tls-key {}: no usable private key ({e}; expected PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
            key.display()
        )
    })?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| format!("--tls-key {}: unsupported key: {e}", key.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        format!(
            "--tls-key {} does not belong to the first certificate of --tls-cert {}: {e}",
            key.display(),
            cert.display()
        )
    })?;
    Ok(certified)
}

/// The certificate every handshake presents, replaceable while serving.
#[derive(Debug)]
pub(crate) struct Reloadable {
    provider: Arc<CryptoProvider>,
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Reloadable {
    /// Loads the pair (see [`load`]).
    pub(crate) fn open(
        provider: Arc<CryptoProvider>,
        cert: &Path,
        key: &Path,
    ) -> Result<Self, String> {
        let first = load(&provider, cert, key)?;
        Ok(Reloadable {
            provider,
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(Arc::new(first)),
        })
    }

    /// Re-reads both files; on any error the old pair stays in use and the
    /// error says why.
    pub(crate) fn reload(&self) -> Result<(), String> {
        let new = load(&self.provider, &self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        Ok(())
    }

    /// The pair in use now.
    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}
