//! The TLS record layer of a data connection, in userspace, in place.
//!
//! After the handshake (driven by rustls), a data connection's traffic
//! keys are taken out of rustls (`dangerous_extract_secrets`) and go
//! either to the kernel (kTLS, see `engine::sys::ktls`) or here. This is
//! the same record layer kTLS implements, for the same keys, so the two
//! paths are interchangeable: a [`Sealer`] turns plaintext laid out in a
//! buffer between room for the header and room for the tag into a record
//! *in that buffer* (the file's bytes are read straight into their record
//! slot, sealed where they lie, and sent: no copy in userspace), and an
//! [`Opener`] decrypts a received record where it lies. The AEAD is ring's
//! (the same code rustls uses); only the framing is here:
//!
//! - TLS 1.3 (RFC 8446 section 5.2): outer type 23, version 0x0303; the
//!   plaintext is followed by its real content type; nonce = IV XOR
//!   sequence number; the additional data is the record header.
//! - TLS 1.2 AES-GCM (RFC 5288): an 8-byte explicit nonce follows the
//!   header (here, as in rustls, the fixed IV's tail XOR the sequence
//!   number); the additional data is seq ‖ type ‖ version ‖ length.
//! - TLS 1.2 ChaCha20-Poly1305 (RFC 7905): no explicit nonce; nonce = IV
//!   XOR sequence number; additional data as for GCM.
//!
//! Every record is at most 2^14 bytes of plaintext (RFC 8446 5.1), the
//! largest TLS allows: large records keep the per-record cost low.

use std::io;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use rustls::{ConnectionTrafficSecrets, ProtocolVersion};

/// Most plaintext bytes in one record.
pub(crate) const MAX_PLAINTEXT: usize = 16 * 1024;
/// Bytes of a record header (type, version, length).
pub(crate) const HEADER: usize = 5;
/// Bytes of an AEAD tag (all three ciphers).
const TAG: usize = 16;
/// Largest ciphertext a peer may send in one record (RFC 5246 6.2.3 allows
/// 2^14 + 2048; TLS 1.3 allows 2^14 + 256, which is less).
const MAX_CIPHERTEXT: usize = MAX_PLAINTEXT + 2048;

/// TLS content types (RFC 8446 appendix B.1).
pub(crate) mod content {
    pub(crate) const ALERT: u8 = 21;
    pub(crate) const APPLICATION_DATA: u8 = 23;
}

/// The close_notify alert (warning level 1, description 0).
pub(crate) const CLOSE_NOTIFY: [u8; 2] = [1, 0];

/// The record protocol version the keys belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    Tls12,
    Tls13,
}

impl Version {
    /// The version of a rustls connection, if it is one of these two.
    pub(crate) fn of(v: ProtocolVersion) -> Option<Version> {
        match v {
            ProtocolVersion::TLSv1_2 => Some(Version::Tls12),
            ProtocolVersion::TLSv1_3 => Some(Version::Tls13),
            _ => None,
        }
    }
}

/// The AEAD of a negotiated cipher suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cipher {
    Aes128Gcm,
    Aes256Gcm,
    Chacha20Poly1305,
}

/// One direction's key material: AEAD key, 12-byte IV, and the sequence
/// number of the next record.
struct Keys {
    key: LessSafeKey,
    iv: [u8; 12],
    seq: u64,
    version: Version,
    /// TLS 1.2 AES-GCM: an 8-byte explicit nonce in every record.
    explicit_nonce: bool,
}

/// Splits rustls' extracted secrets into the AEAD, its key and its IV.
pub(crate) fn split(secrets: &ConnectionTrafficSecrets) -> Option<(Cipher, &[u8], [u8; 12])> {
    let (cipher, key, iv) = match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (Cipher::Aes128Gcm, key, iv),
        ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (Cipher::Aes256Gcm, key, iv),
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            (Cipher::Chacha20Poly1305, key, iv)
        }
        _ => return None,
    };
    let iv: [u8; 12] = iv.as_ref().try_into().ok()?;
    Some((cipher, key.as_ref(), iv))
}

impl Keys {
    fn new(version: Version, seq: u64, secrets: &ConnectionTrafficSecrets) -> io::Result<Keys> {
        let unsupported = || io::Error::other("TLS cipher not supported by the record layer");
        let (cipher, key, iv) = split(secrets).ok_or_else(unsupported)?;
        let alg = match cipher {
            Cipher::Aes128Gcm => &aead::AES_128_GCM,
            Cipher::Aes256Gcm => &aead::AES_256_GCM,
            Cipher::Chacha20Poly1305 => &aead::CHACHA20_POLY1305,
        };
        let key = UnboundKey::new(alg, key).map_err(|_| unsupported())?;
        Ok(Keys {
            key: LessSafeKey::new(key),
            iv,
            seq,
            version,
            explicit_nonce: version == Version::Tls12 && cipher != Cipher::Chacha20Poly1305,
        })
    }

    /// IV XOR the big-endian sequence number in its last 8 bytes.
    fn nonce_bytes(&self) -> [u8; 12] {
        let mut n = self.iv;
        for (b, s) in n[4..].iter_mut().zip(self.seq.to_be_bytes()) {
            *b ^= s;
        }
        n
    }

    /// Bytes between the header and the plaintext.
    fn prefix(&self) -> usize {
        if self.explicit_nonce {
            8
        } else {
            0
        }
    }

    /// Bytes after the plaintext: the inner content type (TLS 1.3) and
    /// the tag.
    fn suffix(&self) -> usize {
        TAG + usize::from(self.version == Version::Tls13)
    }
}

/// TLS 1.2 additional data: seq, type, version, plaintext length.
fn aad12(seq: u64, typ: u8, len: usize) -> [u8; 13] {
    let mut a = [0u8; 13];
    a[..8].copy_from_slice(&seq.to_be_bytes());
    a[8] = typ;
    a[9] = 3;
    a[10] = 3;
    a[11..].copy_from_slice(&(len as u16).to_be_bytes());
    a
}

/// Seals records in place (the sending direction).
pub(crate) struct Sealer(Keys);

impl Sealer {
    /// A sealer for `secrets` whose next record has sequence number `seq`.
    pub(crate) fn new(
        version: Version,
        seq: u64,
        secrets: &ConnectionTrafficSecrets,
    ) -> io::Result<Self> {
        Keys::new(version, seq, secrets).map(Sealer)
    }

    /// Bytes a record needs before its plaintext (header, explicit nonce).
    pub(crate) fn head(&self) -> usize {
        HEADER + self.0.prefix()
    }

    /// Bytes a record needs after its plaintext (content type, tag).
    pub(crate) fn tail(&self) -> usize {
        self.0.suffix()
    }

    /// Bytes of a full record slot: `head + MAX_PLAINTEXT + tail`.
    pub(crate) fn slot(&self) -> usize {
        self.head() + MAX_PLAINTEXT + self.tail()
    }

    /// Turns `slot[head..head + len]` (the plaintext, `len <=
    /// MAX_PLAINTEXT`) into one record of content type `typ` occupying
    /// `slot[..head + len + tail]`, which is returned as its length.
    /// `slot` must be at least that long.
    pub(crate) fn seal(&mut self, typ: u8, slot: &mut [u8], len: usize) -> usize {
        debug_assert!(len <= MAX_PLAINTEXT);
        let k = &mut self.0;
        let head = HEADER + k.prefix();
        let total = head + len + k.suffix();
        let body = total - HEADER;
        let nonce = k.nonce_bytes();
        let (outer, aad_bytes): (u8, Vec<u8>) = match k.version {
            Version::Tls13 => {
                slot[head + len] = typ;
                let hdr = [
                    content::APPLICATION_DATA,
                    3,
                    3,
                    (body >> 8) as u8,
                    body as u8,
                ];
                (content::APPLICATION_DATA, hdr.to_vec())
            }
            Version::Tls12 => (typ, aad12(k.seq, typ, len).to_vec()),
        };
        slot[0] = outer;
        slot[1] = 3;
        slot[2] = 3;
        slot[3..5].copy_from_slice(&(body as u16).to_be_bytes());
        if k.explicit_nonce {
            slot[HEADER..HEADER + 8].copy_from_slice(&nonce[4..]);
        }
        let sealed_len = len + usize::from(k.version == Version::Tls13);
        let in_out = &mut slot[head..head + sealed_len];
        let tag = k
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad_bytes[..]),
                in_out,
            )
            .expect("ring seals any length under 2^32 bytes");
        slot[head + sealed_len..total].copy_from_slice(tag.as_ref());
        k.seq += 1;
        total
    }

    /// Appends `data` to `out` as records of type `typ` (copying it: for
    /// small payloads such as listings, ASCII chunks and alerts).
    pub(crate) fn seal_to(&mut self, typ: u8, data: &[u8], out: &mut Vec<u8>) {
        let (head, tail) = (self.head(), self.tail());
        for chunk in data.chunks(MAX_PLAINTEXT) {
            let at = out.len();
            out.resize(at + head + chunk.len() + tail, 0);
            out[at + head..at + head + chunk.len()].copy_from_slice(chunk);
            self.seal(typ, &mut out[at..], chunk.len());
        }
        if data.is_empty() {
            // An empty alert or data record is legal but never needed.
        }
    }
}

/// A record the [`Opener`] decrypted: its content type and where its
/// plaintext lies in the buffer given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Opened {
    pub typ: u8,
    pub plain: std::ops::Range<usize>,
}

/// The total length of the record starting at `buf[0]`, once its header
/// has arrived; an error for a header no TLS peer would send.
pub(crate) fn record_len(buf: &[u8]) -> io::Result<Option<usize>> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let len = u16::from_be_bytes([buf[3], buf[4]]) as usize;
    if !(20..=23).contains(&buf[0]) || buf[1] != 3 || len > MAX_CIPHERTEXT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a TLS record on the data connection",
        ));
    }
    Ok(Some(HEADER + len))
}

/// Opens records in place (the receiving direction).
pub(crate) struct Opener(Keys);

impl Opener {
    /// An opener for `secrets` whose next record has sequence number `seq`.
    pub(crate) fn new(
        version: Version,
        seq: u64,
        secrets: &ConnectionTrafficSecrets,
    ) -> io::Result<Self> {
        Keys::new(version, seq, secrets).map(Opener)
    }

    /// Decrypts the whole record `rec` (as long as [`record_len`] said)
    /// in place. A record that does not authenticate is an error: the
    /// stream is corrupt or forged.
    pub(crate) fn open(&mut self, rec: &mut [u8]) -> io::Result<Opened> {
        let bad =
            |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("TLS record: {what}"));
        let k = &mut self.0;
        let prefix = k.prefix();
        if rec.len() < HEADER + prefix + TAG {
            return Err(bad("too short"));
        }
        let typ = rec[0];
        let mut nonce = k.nonce_bytes();
        if k.explicit_nonce {
            nonce[4..].copy_from_slice(&rec[HEADER..HEADER + 8]);
        }
        let aad: Vec<u8> = match k.version {
            Version::Tls13 => rec[..HEADER].to_vec(),
            Version::Tls12 => aad12(k.seq, typ, rec.len() - HEADER - prefix - TAG).to_vec(),
        };
        let start = HEADER + prefix;
        let plain = k
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&aad[..]),
                &mut rec[start..],
            )
            .map_err(|_| bad("decryption failed (bad key, corrupted or forged)"))?
            .len();
        k.seq += 1;
        match k.version {
            Version::Tls12 => Ok(Opened {
                typ,
                plain: start..start + plain,
            }),
            Version::Tls13 => {
                // Strip the zero padding; the last non-zero byte is the type.
                let inner = &rec[start..start + plain];
                let end = inner
                    .iter()
                    .rposition(|&b| b != 0)
                    .ok_or_else(|| bad("no content type"))?;
                Ok(Opened {
                    typ: inner[end],
                    plain: start..start + end,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The record layer against rustls itself: an in-memory handshake
    //! between a rustls client and server, the server's secrets extracted
    //! into a Sealer/Opener, and records crossing both ways, for every
    //! suite of both versions.

    use super::*;
    use std::io::{Read, Write};
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

    fn pair(suite: rustls::SupportedCipherSuite) -> (ClientConnection, ServerConnection) {
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = CertificateDer::from(ck.cert.der().to_vec());
        let key = PrivateKeyDer::try_from(ck.key_pair.serialize_der()).unwrap();
        let mut p = rustls::crypto::ring::default_provider();
        p.cipher_suites = vec![suite];
        let p = Arc::new(p);
        let version = match suite {
            rustls::SupportedCipherSuite::Tls12(_) => &rustls::version::TLS12,
            rustls::SupportedCipherSuite::Tls13(_) => &rustls::version::TLS13,
        };
        let mut sc = ServerConfig::builder_with_provider(p.clone())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        sc.enable_secret_extraction = true;
        sc.send_tls13_tickets = 0;
        let mut roots = RootCertStore::empty();
        roots.add(cert).unwrap();
        let cc = ClientConfig::builder_with_provider(p)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client =
            ClientConnection::new(Arc::new(cc), ServerName::try_from("localhost").unwrap())
                .unwrap();
        let server = ServerConnection::new(Arc::new(sc)).unwrap();
        (client, server)
    }

    fn pump(c: &mut ClientConnection, s: &mut ServerConnection) {
        for _ in 0..10 {
            // An empty read would count as the peer's end of stream.
            let mut buf = Vec::new();
            c.write_tls(&mut buf).unwrap();
            if !buf.is_empty() {
                s.read_tls(&mut &buf[..]).unwrap();
                s.process_new_packets().unwrap();
            }
            let mut buf = Vec::new();
            s.write_tls(&mut buf).unwrap();
            if !buf.is_empty() {
                c.read_tls(&mut &buf[..]).unwrap();
                c.process_new_packets().unwrap();
            }
        }
        assert!(!c.is_handshaking() && !s.is_handshaking());
    }

    #[test]
    fn records_cross_both_ways_for_every_suite() {
        for suite in rustls::crypto::ring::default_provider().cipher_suites {
            // The test certificate is ECDSA: the TLS 1.2 RSA suites use the
            // same three AEADs as the ECDSA ones, which are all tested.
            if format!("{:?}", suite.suite()).contains("RSA") {
                continue;
            }
            let (mut c, mut s) = pair(suite);
            pump(&mut c, &mut s);
            let version = Version::of(s.protocol_version().unwrap()).unwrap();
            let secrets = s.dangerous_extract_secrets().unwrap();
            let mut sealer = Sealer::new(version, secrets.tx.0, &secrets.tx.1).unwrap();
            let mut opener = Opener::new(version, secrets.rx.0, &secrets.rx.1).unwrap();

            // Server -> client: one full slot sealed in place, one short,
            // one through seal_to, then close_notify.
            let data: Vec<u8> = (0..40_000u32).map(|i| (i * 7) as u8).collect();
            let mut wire = Vec::new();
            let mut slot = vec![0u8; sealer.slot()];
            let head = sealer.head();
            slot[head..head + MAX_PLAINTEXT].copy_from_slice(&data[..MAX_PLAINTEXT]);
            let n = sealer.seal(content::APPLICATION_DATA, &mut slot, MAX_PLAINTEXT);
            wire.extend_from_slice(&slot[..n]);
            slot[head..head + 100].copy_from_slice(&data[MAX_PLAINTEXT..MAX_PLAINTEXT + 100]);
            let n = sealer.seal(content::APPLICATION_DATA, &mut slot, 100);
            wire.extend_from_slice(&slot[..n]);
            sealer.seal_to(
                content::APPLICATION_DATA,
                &data[MAX_PLAINTEXT + 100..],
                &mut wire,
            );
            sealer.seal_to(content::ALERT, &CLOSE_NOTIFY, &mut wire);
            let mut rd = &wire[..];
            let mut got = Vec::new();
            let mut eof = false;
            while !rd.is_empty() {
                c.read_tls(&mut rd).unwrap();
                c.process_new_packets().unwrap();
                let mut chunk = [0u8; 4096];
                loop {
                    match c.reader().read(&mut chunk) {
                        Ok(0) => {
                            // Only after close_notify.
                            eof = true;
                            break;
                        }
                        Ok(n) => got.extend_from_slice(&chunk[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("{suite:?}: {e}"),
                    }
                }
            }
            assert!(eof, "{suite:?}: no close_notify");
            assert_eq!(got, data, "{suite:?}");

            // Client -> server: opened in place, then close_notify.
            c.writer().write_all(&data).unwrap();
            c.send_close_notify();
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).unwrap();
            }
            let mut at = 0;
            let mut plain = Vec::new();
            let mut closed = false;
            while at < wire.len() {
                let len = record_len(&wire[at..]).unwrap().unwrap();
                let o = opener.open(&mut wire[at..at + len]).unwrap();
                let body = &wire[at + o.plain.start..at + o.plain.end];
                match o.typ {
                    content::APPLICATION_DATA => plain.extend_from_slice(body),
                    content::ALERT => {
                        assert_eq!(body, CLOSE_NOTIFY);
                        closed = true;
                    }
                    t => panic!("{suite:?}: unexpected type {t}"),
                }
                at += len;
            }
            assert!(closed, "{suite:?}");
            assert_eq!(plain, data, "{suite:?}");

            // A flipped bit fails authentication.
            c.writer().write_all(b"x").unwrap();
            let mut wire = Vec::new();
            c.write_tls(&mut wire).unwrap();
            let last = wire.len() - 1;
            wire[last] ^= 1;
            assert!(opener.open(&mut wire).is_err(), "{suite:?}");
        }
    }

    #[test]
    fn record_headers() {
        assert_eq!(record_len(&[23, 3, 3, 0]).unwrap(), None);
        assert_eq!(record_len(&[23, 3, 3, 0, 40]).unwrap(), Some(45));
        assert!(record_len(b"GET / HTTP/1.1").is_err());
        assert!(record_len(&[23, 3, 3, 0xff, 0xff]).is_err());
    }
}
