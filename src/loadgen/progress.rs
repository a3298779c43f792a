//! The progress bar: on stderr, only when stderr is a terminal (logs and
//! pipes get nothing), drawn by `indicatif` with an ETA. A run bounded in
//! time shows time elapsed of `--duration`; one bounded by `--requests`
//! shows requests done of the total. The message gives successes, errors,
//! throughput and open sessions over the last second.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::shared::Shared;

/// Redraw period.
const TICK: Duration = Duration::from_millis(200);

/// The bar's thread, stopped (and the bar cleared) when dropped.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    /// Starts the bar for the run `shared` describes (`label`: the round,
    /// when there are several); does nothing off a terminal.
    pub(crate) fn start(shared: Arc<Shared>, label: String) -> Ticker {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::io::stderr().is_terminal().then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || draw(&shared, &label, &stop))
        });
        Ticker { stop, thread }
    }
}

fn draw(shared: &Shared, label: &str, stop: &AtomicBool) {
    let plan = &shared.plan;
    let (len, by_time) = match (plan.bounds.duration, plan.bounds.total_requests) {
        (Some(d), _) => (d.as_millis() as u64, true),
        (None, Some(n)) => (n, false),
        (None, None) => (0, false),
    };
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template = if by_time {
        "{prefix}[{elapsed_precise}] {wide_bar} ETA {eta} {msg}"
    } else {
        "{prefix}[{elapsed_precise}] {wide_bar} {pos}/{len} ETA {eta} {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.set_prefix(label.to_string());
    let p = &shared.progress;
    let mut last = (Instant::now(), 0u64, 0u64);
    let mut message = String::new();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(TICK);
        let (ok, errors, bytes) = (
            p.ok.load(Ordering::Relaxed),
            p.errors.load(Ordering::Relaxed),
            p.bytes.load(Ordering::Relaxed),
        );
        if by_time {
            bar.set_position((shared.start.elapsed().as_millis() as u64).min(len));
        } else {
            bar.set_position(ok + errors);
        }
        let secs = last.0.elapsed().as_secs_f64();
        if secs >= 1.0 {
            message = format!(
                "ok {ok} ({:.0}/s)  errors {errors}  {:.1} MiB/s  sessions {}",
                (ok - last.1) as f64 / secs,
                (bytes - last.2) as f64 / secs / (1 << 20) as f64,
                p.sessions.load(Ordering::Relaxed),
            );
            last = (Instant::now(), ok, bytes);
        }
        bar.set_message(message.clone());
    }
    bar.finish_and_clear();
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
