//! Kernel TLS (`TCP_ULP "tls"`, Linux >= 4.13 for sending): once a data
//! connection's handshake is done, its sending keys can be handed to the
//! kernel, which then encrypts whatever the socket sends — `sendfile(2)`
//! and `splice(2)` included, so an FTPS download keeps the zero-copy path
//! of a plain one.
//!
//! [`probe`] asks the kernel at start-up which (version, cipher) pairs it
//! can take: on a throwaway loopback connection per pair it sets the ULP
//! (ENOENT: the kernel has no TLS module, `CONFIG_TLS` unset) and then
//! `TLS_TX` with dummy keys (an error: that cipher is not built in).
//! [`enable_tx`] hands a real connection's keys over; [`send_alert`] sends
//! a non-data record (close_notify) through it, which needs a control
//! message (`TLS_SET_RECORD_TYPE`) — the only raw calls here, none of them
//! wrapped by rustix. The structures are those of `<linux/tls.h>`.

use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, BorrowedFd};

/// `SOL_TLS` (`<linux/socket.h>`).
const SOL_TLS: libc::c_int = 282;
/// `TCP_ULP` (`<linux/tcp.h>`).
const TCP_ULP: libc::c_int = 31;
/// `TLS_TX` (`<linux/tls.h>`).
const TLS_TX: libc::c_int = 1;
/// `TLS_SET_RECORD_TYPE`, the control message naming a record's type.
const TLS_SET_RECORD_TYPE: libc::c_int = 1;

/// `TLS_1_2_VERSION`.
pub const TLS_1_2: u16 = 0x0303;
/// `TLS_1_3_VERSION`.
pub const TLS_1_3: u16 = 0x0304;
/// `TLS_CIPHER_AES_GCM_128`.
pub const AES_GCM_128: u16 = 51;
/// `TLS_CIPHER_AES_GCM_256`.
pub const AES_GCM_256: u16 = 52;
/// `TLS_CIPHER_CHACHA20_POLY1305`.
pub const CHACHA20_POLY1305: u16 = 54;

#[repr(C)]
struct CryptoInfo {
    version: u16,
    cipher_type: u16,
}

/// `tls12_crypto_info_aes_gcm_128` (used for TLS 1.3 too).
#[repr(C)]
struct AesGcm128 {
    info: CryptoInfo,
    iv: [u8; 8],
    key: [u8; 16],
    salt: [u8; 4],
    rec_seq: [u8; 8],
}

/// `tls12_crypto_info_aes_gcm_256`.
#[repr(C)]
struct AesGcm256 {
    info: CryptoInfo,
    iv: [u8; 8],
    key: [u8; 32],
    salt: [u8; 4],
    rec_seq: [u8; 8],
}

/// `tls12_crypto_info_chacha20_poly1305`.
#[repr(C)]
struct Chacha20Poly1305 {
    info: CryptoInfo,
    iv: [u8; 12],
    key: [u8; 32],
    rec_seq: [u8; 8],
}

/// What the kernel can encrypt: (version, cipher) pairs, and why it can
/// do nothing when the list is empty.
#[derive(Debug, Default, Clone)]
pub struct Support {
    /// (`TLS_1_x_VERSION`, `TLS_CIPHER_*`) pairs, as `linux/tls.h` numbers
    /// them.
    pub pairs: Vec<(u16, u16)>,
    /// Why there is no kTLS at all (for the start-up log).
    pub missing: Option<String>,
}

impl Support {
    /// True when the kernel can encrypt `cipher` under `version` (both in
    /// `linux/tls.h` numbering).
    pub fn supports(&self, version: u16, cipher: u16) -> bool {
        self.pairs.contains(&(version, cipher))
    }
}

impl std::fmt::Display for Support {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(why) = &self.missing {
            return write!(f, "no kTLS ({why})");
        }
        let names: Vec<String> = self
            .pairs
            .iter()
            .map(|&(v, c)| {
                let v = if v == TLS_1_3 { "TLS1.3" } else { "TLS1.2" };
                let c = match c {
                    AES_GCM_128 => "AES-128-GCM",
                    AES_GCM_256 => "AES-256-GCM",
                    _ => "CHACHA20-POLY1305",
                };
                format!("{v} {c}")
            })
            .collect();
        if names.is_empty() {
            f.write_str("kTLS module present but no cipher accepted")
        } else {
            write!(f, "kTLS for {}", names.join(", "))
        }
    }
}

/// Attaches the TLS upper-layer protocol to an established TCP socket.
fn set_ulp(fd: BorrowedFd<'_>) -> io::Result<()> {
    super::setsockopt(fd, libc::SOL_TCP, TCP_ULP, b"tls", 3)
}

/// Hands the sending keys of a finished handshake to the kernel: from now
/// on every byte sent on `fd` leaves as TLS records of `version` and
/// `cipher`, the first numbered `seq`. `iv` is the 12-byte IV (for
/// AES-GCM its first 4 bytes are the salt, as rustls extracts them).
pub fn enable_tx(
    fd: BorrowedFd<'_>,
    version: u16,
    cipher: u16,
    key: &[u8],
    iv: &[u8; 12],
    seq: u64,
) -> io::Result<()> {
    let bad = || io::Error::from_raw_os_error(libc::EINVAL);
    set_ulp(fd)?;
    let info = CryptoInfo {
        version,
        cipher_type: cipher,
    };
    let rec_seq = seq.to_be_bytes();
    match cipher {
        AES_GCM_128 => {
            let ci = AesGcm128 {
                info,
                iv: iv[4..].try_into().map_err(|_| bad())?,
                key: key.try_into().map_err(|_| bad())?,
                salt: iv[..4].try_into().map_err(|_| bad())?,
                rec_seq,
            };
            super::setsockopt(fd, SOL_TLS, TLS_TX, &ci, std::mem::size_of::<AesGcm128>())
        }
        AES_GCM_256 => {
            let ci = AesGcm256 {
                info,
                iv: iv[4..].try_into().map_err(|_| bad())?,
                key: key.try_into().map_err(|_| bad())?,
                salt: iv[..4].try_into().map_err(|_| bad())?,
                rec_seq,
            };
            super::setsockopt(fd, SOL_TLS, TLS_TX, &ci, std::mem::size_of::<AesGcm256>())
        }
        CHACHA20_POLY1305 => {
            let ci = Chacha20Poly1305 {
                info,
                iv: *iv,
                key: key.try_into().map_err(|_| bad())?,
                rec_seq,
            };
            super::setsockopt(
                fd,
                SOL_TLS,
                TLS_TX,
                &ci,
                std::mem::size_of::<Chacha20Poly1305>(),
            )
        }
        _ => Err(bad()),
    }
}

/// Sends `data` as one record of content type `typ` (21: alert) on a
/// socket whose sending side is in kTLS, without blocking (WouldBlock
/// when the socket is full). Returns the bytes taken.
pub fn send_alert(fd: BorrowedFd<'_>, typ: u8, data: &[u8]) -> io::Result<usize> {
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(1) } as usize;
    let mut cbuf = vec![0u8; space];
    let mut iov = libc::iovec {
        iov_base: data.as_ptr() as *mut libc::c_void,
        iov_len: data.len(),
    };
    // SAFETY: an all-zero msghdr is a valid empty one.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points to `space` writable bytes, enough for one
    // cmsghdr with one byte of data (CMSG_SPACE(1)), so CMSG_FIRSTHDR is
    // non-null and CMSG_DATA points inside `cbuf`. sendmsg only reads the
    // iovec (`data`, alive for the call) and the control buffer.
    let r = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = SOL_TLS;
        (*cmsg).cmsg_type = TLS_SET_RECORD_TYPE;
        (*cmsg).cmsg_len = libc::CMSG_LEN(1) as _;
        *libc::CMSG_DATA(cmsg) = typ;
        libc::sendmsg(
            fd.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// A connected loopback TCP pair (the probe's guinea pig).
fn loopback_pair() -> io::Result<(TcpStream, TcpStream)> {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let c = TcpStream::connect(l.local_addr()?)?;
    let (s, _) = l.accept()?;
    Ok((c, s))
}

/// Finds out which (version, cipher) pairs the kernel encrypts.
pub fn probe() -> Support {
    use std::os::fd::AsFd;
    let mut support = Support::default();
    let first = loopback_pair().and_then(|(c, _s)| set_ulp(c.as_fd()));
    match first {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            support.missing = Some(
                "setsockopt TCP_ULP \"tls\": ENOENT, the kernel has no TLS module (CONFIG_TLS)"
                    .into(),
            );
            return support;
        }
        Err(e) => {
            support.missing = Some(format!("setsockopt TCP_ULP \"tls\": {e}"));
            return support;
        }
    }
    for version in [TLS_1_2, TLS_1_3] {
        for (cipher, key_len) in [
            (AES_GCM_128, 16),
            (AES_GCM_256, 32),
            (CHACHA20_POLY1305, 32),
        ] {
            let ok = loopback_pair().and_then(|(c, _s)| {
                enable_tx(
                    c.as_fd(),
                    version,
                    cipher,
                    &vec![0u8; key_len],
                    &[0u8; 12],
                    0,
                )
            });
            if ok.is_ok() {
                support.pairs.push((version, cipher));
            }
        }
    }
    support
}
