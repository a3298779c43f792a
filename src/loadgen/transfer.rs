//! One transfer as a command-level flow on a logged-in control connection:
//! open the data channel, send the command, wait for 150, move the bytes,
//! wait for 226, and time each step. Used by the requests of a run and by
//! the set-up that lists remote directories.

use std::time::{Duration, Instant};

use tokio_uring::net::TcpStream;

use super::client::{negative, positive, Control};
use super::data::{self, BufPool};
use super::failure::Failure;
use super::scenario::Mode;
use super::tls;

/// How long each step of a transfer took.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// Data-channel set-up (see [`super::stats::Phase::DataSetup`]).
    pub data_setup: Duration,
    /// Command sent to first byte (downloads with at least one byte).
    pub first_byte: Option<Duration>,
    /// Command sent to the final reply.
    pub transfer: Duration,
    pub bytes: u64,
}

/// A data stream, in TLS under `--tls` (PROT P).
pub(crate) struct DataStream {
    pub stream: TcpStream,
    pub tls: Option<rustls::ClientConnection>,
    /// Plaintext that came with the TLS handshake.
    pub early: Vec<u8>,
}

/// Opens the data channel, sends `command` and waits for its 1xx reply
/// and (active mode) for the server to connect; under `--tls`, runs the
/// data connection's handshake, resuming the control session. Returns the
/// data stream, the set-up time and when the command was sent.
async fn start(
    ctrl: &mut Control,
    mode: Mode,
    command: &str,
    timeout: Duration,
) -> Result<(DataStream, Duration, Instant), Failure> {
    let setup_start = Instant::now();
    let pending = data::open(ctrl, mode, timeout).await?;
    let mut setup = setup_start.elapsed();
    let sent = Instant::now();
    let r = ctrl.command(command).await?;
    if !r.is_preliminary() {
        // 550 and friends: the channel is simply dropped, as clients do.
        return Err(negative(r));
    }
    let active = matches!(pending, data::Pending::Listening(_));
    let stream = pending.established(timeout).await?;
    if active {
        // Active mode is only "set up" once the server has connected.
        setup = setup_start.elapsed();
    }
    let (tls, early) = match ctrl.data_tls() {
        Some(session) => {
            let mut conn = session.connection()?;
            let early = tls::handshake(&mut conn, &stream, timeout).await?;
            (Some(conn), early)
        }
        None => (None, Vec::new()),
    };
    Ok((DataStream { stream, tls, early }, setup, sent))
}

/// Runs a download command (`RETR`, `LIST`, `NLST`, `MLSD`), handing each
/// chunk and its offset to `sink`.
pub(crate) async fn download(
    ctrl: &mut Control,
    mode: Mode,
    command: &str,
    timeout: Duration,
    pool: &BufPool,
    sink: impl FnMut(u64, &[u8]) -> Result<(), Failure>,
) -> Result<Timing, Failure> {
    let (mut ds, data_setup, sent) = start(ctrl, mode, command, timeout).await?;
    let got = match &mut ds.tls {
        Some(conn) => tls::read_to_end(&ds.stream, conn, &ds.early, timeout, sink).await?,
        None => data::read_to_end(&ds.stream, pool, timeout, sink).await?,
    };
    drop(ds);
    positive(ctrl.reply().await?)?;
    Ok(Timing {
        data_setup,
        first_byte: got.first_byte.map(|t| t - sent),
        transfer: sent.elapsed(),
        bytes: got.bytes,
    })
}

/// Runs an upload command (`STOR`) sending all of `bytes`; `progress` hears
/// of each chunk written.
pub(crate) async fn upload(
    ctrl: &mut Control,
    mode: Mode,
    command: &str,
    bytes: &'static [u8],
    timeout: Duration,
    progress: impl FnMut(u64),
) -> Result<Timing, Failure> {
    let (mut ds, data_setup, sent) = start(ctrl, mode, command, timeout).await?;
    match &mut ds.tls {
        Some(conn) => tls::write_all(&ds.stream, conn, bytes, timeout, progress).await?,
        None => data::write_all(&ds.stream, bytes, timeout, progress).await?,
    }
    drop(ds);
    positive(ctrl.reply().await?)?;
    Ok(Timing {
        data_setup,
        first_byte: None,
        transfer: sent.elapsed(),
        bytes: bytes.len() as u64,
    })
}
