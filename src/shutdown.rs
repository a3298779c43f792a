//! Graceful shutdown: the phases a stopping server goes through, and the
//! handle that moves it from one to the next.
//!
//! The signal thread owns a [`Shutdown`]; every shard and every session
//! holds a [`Watch`] (a `tokio::sync::watch` receiver, which wakes tasks on
//! any runtime, so the shards' tokio-uring runtimes need no other channel):
//!
//! 1. [`Phase::Running`] — normal service.
//! 2. [`Phase::Draining`] (first SIGTERM/SIGINT) — the accept loops shut
//!    their listeners down; a session waiting for a command gets 421 and
//!    is closed; a session running a transfer finishes it (226), then gets
//!    421. A shard whose sessions are all gone ends, and the process exits
//!    0 when every shard has.
//! 3. [`Phase::Closing`] (`--shutdown-grace` after the first signal) —
//!    transfers still running are cut (426, then 421) and what is left is
//!    closed.
//!
//! A second signal does not wait for any of this: the process exits at
//! once (status 128 + the signal number, as a shell reports a kill).

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Running,
    Draining,
    Closing,
}

/// The sending side, held by the signal thread.
pub(crate) struct Shutdown {
    tx: watch::Sender<Phase>,
}

/// What shards and sessions hold to learn about a shutdown.
pub(crate) type Watch = watch::Receiver<Phase>;

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub(crate) fn new() -> Shutdown {
        Shutdown {
            tx: watch::Sender::new(Phase::Running),
        }
    }

    /// A receiver for a shard or a session.
    pub(crate) fn watch(&self) -> Watch {
        self.tx.subscribe()
    }

    /// Moves to `phase` if that is later than the current one (phases
    /// never go back).
    pub(crate) fn advance(&self, phase: Phase) {
        self.tx.send_if_modified(|p| {
            if phase > *p {
                *p = phase;
                true
            } else {
                false
            }
        });
    }

    pub(crate) fn phase(&self) -> Phase {
        *self.tx.borrow()
    }
}

/// Resolves once the server's phase is `phase` or later (at once if it
/// already is). Never resolves if the sending side is gone without getting
/// there.
pub(crate) async fn reached(watch: &mut Watch, phase: Phase) {
    if watch.wait_for(|p| *p >= phase).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_only_move_forward() {
        let s = Shutdown::new();
        let w = s.watch();
        assert_eq!(*w.borrow(), Phase::Running);
        s.advance(Phase::Draining);
        assert_eq!(*w.borrow(), Phase::Draining);
        s.advance(Phase::Running);
        assert_eq!(s.phase(), Phase::Draining);
        s.advance(Phase::Closing);
        s.advance(Phase::Draining);
        assert_eq!(*w.borrow(), Phase::Closing);
    }

    #[test]
    fn reached_wakes_a_waiter_on_another_thread() {
        let s = Shutdown::new();
        let mut w = s.watch();
        let t = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move { reached(&mut w, Phase::Draining).await })
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        s.advance(Phase::Draining);
        t.join().unwrap();
    }
}
