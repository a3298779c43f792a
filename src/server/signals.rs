//! The signal thread of `ringftp serve`: SIGHUP reloads what can change
//! live, SIGTERM/SIGINT drive the graceful shutdown phases. It runs its own
//! small tokio runtime so that blocking work (re-resolving host names)
//! never runs on a shard.

use std::sync::Arc;
use std::time::Duration;

use super::notify::Notifier;
use super::reload::Reloader;
use crate::shutdown::{self, Phase};

/// A thread that handles signals:
/// - SIGHUP re-reads the users file (a bad new file keeps the old
///   accounts, and the log says why), the `--config` file, the banner
///   file and the FTPS certificate and key, reopens the xferlog (logrotate
///   moved it; a reopen that fails keeps writing to the old file), and
///   re-resolves the host names given to --pasv-address /
///   --pasv-address-map (a name that fails keeps its old address); see
///   [`Reloader`]. Lookups and opens block, so they happen here, never on
///   a shard;
/// - the first SIGTERM or SIGINT starts a graceful shutdown
///   ([`Phase::Draining`]), and `grace` later cuts what is still running
///   ([`Phase::Closing`]); should the shards still not have ended a few
///   seconds after that, the process exits anyway;
/// - a second SIGTERM or SIGINT exits at once, with 128 + the signal
///   number;
/// - SIGUSR1 and SIGUSR2, whose default action would end the process
///   without a drain, are ignored with a warning (nginx reopens its logs
///   on SIGUSR1; here SIGHUP does that).
pub(super) fn spawn_signal_thread(
    mut reloader: Reloader,
    notifier: Arc<Notifier>,
    stop: shutdown::Shutdown,
    grace: Duration,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    /// How long the shards get to end after the grace period, before the
    /// process exits without them.
    const BACKSTOP: Duration = Duration::from_secs(5);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Registering here, before the thread starts, means a signal that
    // arrives right after start-up is already caught (not fatal).
    let (mut hup, mut term, mut int, mut usr1, mut usr2) = rt.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::hangup())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::user_defined1())?,
            signal(SignalKind::user_defined2())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("ringftp-signals".into())
        .spawn(move || {
            rt.block_on(async move {
                // When the current phase ends, if a shutdown is under way.
                let mut next_deadline: Option<tokio::time::Instant> = None;
                loop {
                    let deadline = async {
                        match next_deadline {
                            Some(d) => tokio::time::sleep_until(d).await,
                            None => std::future::pending().await,
                        }
                    };
                    let signo = tokio::select! {
                        _ = hup.recv() => {
                            reloader.on_sighup();
                            continue;
                        }
                        _ = usr1.recv() => {
                            tracing::warn!("SIGUSR1 ignored: SIGHUP reopens the xferlog and reloads, SIGTERM stops");
                            continue;
                        }
                        _ = usr2.recv() => {
                            tracing::warn!("SIGUSR2 ignored: SIGHUP reopens the xferlog and reloads, SIGTERM stops");
                            continue;
                        }
                        _ = deadline => {
                            match stop.phase() {
                                Phase::Draining => {
                                    tracing::warn!(
                                        "shutdown: the grace period ({}s) is over; cutting the transfers still running",
                                        grace.as_secs()
                                    );
                                    stop.advance(Phase::Closing);
                                    next_deadline = Some(tokio::time::Instant::now() + BACKSTOP);
                                }
                                _ => {
                                    tracing::error!("shutdown: shards did not stop in time; exiting anyway");
                                    crate::logging::flush();
                                    std::process::exit(0);
                                }
                            }
                            continue;
                        }
                        _ = term.recv() => libc::SIGTERM,
                        _ = int.recv() => libc::SIGINT,
                    };
                    let name = if signo == libc::SIGTERM { "SIGTERM" } else { "SIGINT" };
                    if stop.phase() != Phase::Running {
                        tracing::warn!("{name} again: exiting now");
                        crate::logging::flush();
                        std::process::exit(128 + signo);
                    }
                    tracing::info!(
                        "{name}: shutting down: no new sessions, idle sessions get 421, running transfers have {}s to finish (a second signal exits at once)",
                        grace.as_secs()
                    );
                    notifier.stopping();
                    stop.advance(Phase::Draining);
                    next_deadline = Some(tokio::time::Instant::now() + grace);
                }
            })
        })?;
    Ok(())
}
