//! The progress line: once a second on stderr, and only when stderr is a
//! terminal, so logs and pipes stay clean.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::shared::Shared;
use crate::units::format_bytes;

/// The once-a-second progress line on stderr (only when it is a terminal,
/// so logs and pipes stay clean).
pub struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    pub fn start(shared: Arc<Shared>) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::io::stderr().is_terminal().then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let p = &shared.progress;
                let mut last_bytes = 0;
                let mut last_ok = 0;
                let mut tick = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if tick.elapsed() < Duration::from_secs(1) {
                        continue;
                    }
                    let secs = tick.elapsed().as_secs_f64();
                    tick = Instant::now();
                    let (ok, bytes) = (p.ok.load(Ordering::Relaxed), p.bytes.load(Ordering::Relaxed));
                    eprint!(
                        "\r\x1b[K{:>6.1}s  ok {ok} ({:.0}/s)  errors {}  {:.1} MiB/s  sessions {}  ({} moved)",
                        shared.start.elapsed().as_secs_f64(),
                        (ok - last_ok) as f64 / secs,
                        p.errors.load(Ordering::Relaxed),
                        (bytes - last_bytes) as f64 / secs / (1 << 20) as f64,
                        p.sessions.load(Ordering::Relaxed),
                        format_bytes(bytes)
                    );
                    (last_ok, last_bytes) = (ok, bytes);
                }
                eprint!("\r\x1b[K");
            })
        });
        Ticker { stop, thread }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
