//! systemd readiness (`Type=notify`): `READY=1` once every shard accepts,
//! `STOPPING=1` when a shutdown begins.
//!
//! The protocol is one datagram of `KEY=VALUE` lines to the Unix socket
//! named by `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket;
//! sd_notify(3)). The socket is connected at start-up, before privileges
//! are dropped and before the sandbox, and kept: later messages need
//! neither access to the path nor a new socket.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The connection to the service manager, if one asked for notifications.
#[derive(Debug)]
pub(super) struct Notifier {
    sock: Option<UnixDatagram>,
    /// Shards still to report that they accept.
    waiting: AtomicUsize,
}

impl Notifier {
    /// Connects to `$NOTIFY_SOCKET` if set (and removes it from the
    /// environment, so nothing started later talks to systemd in our
    /// name). `shards`: how many must report [`Notifier::shard_ready`].
    pub(super) fn from_env(shards: usize) -> Notifier {
        let sock = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            std::env::remove_var("NOTIFY_SOCKET");
            match connect(path.as_encoded_bytes()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::warn!(
                        "NOTIFY_SOCKET {path:?}: {e}; systemd will not hear that ringftp is ready"
                    );
                    None
                }
            }
        });
        Notifier {
            sock,
            waiting: AtomicUsize::new(shards),
        }
    }

    /// One shard accepts connections; after the last, `READY=1`.
    pub(super) fn shard_ready(&self, status: impl FnOnce() -> String) {
        if self.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.send(&format!(
                "READY=1\nSTATUS={}\nMAINPID={}\n",
                status(),
                std::process::id()
            ));
        }
    }

    /// A shutdown began.
    pub(super) fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=draining sessions\n");
    }

    fn send(&self, msg: &str) {
        if let Some(s) = &self.sock {
            if let Err(e) = s.send(msg.as_bytes()) {
                tracing::warn!("NOTIFY_SOCKET: {e}");
            }
        }
    }
}

fn connect(path: &[u8]) -> std::io::Result<UnixDatagram> {
    let addr = match path.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(path))?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.connect_addr(&addr)?;
    Ok(sock)
}
