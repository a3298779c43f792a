//! What the log filter costs a session: every session's task runs inside
//! a tracing span, entered and left on each poll, on every shard at once.
//! An `EnvFilter` takes a lock shared by all threads on each entry and
//! exit; the `Targets` filter that `--log-level` builds for level-only
//! filters (`logging::parse_filter`) takes none. Measured on one thread
//! and on two at once (two shards), nanoseconds per entry + exit.
#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented pub fn"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ringftp::logging::{parse_filter, LogFilter, ParsedFilter};
use tracing::Dispatch;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::EnvFilter;

/// A subscriber shaped like the server's: a filter and the quiet filter
/// beside it, then text lines (to nowhere: no event is logged while the
/// loop runs).
fn dispatch(parsed: ParsedFilter) -> Dispatch {
    use tracing_subscriber::fmt::layer;
    let registry = tracing_subscriber::registry();
    let quiet = parsed.quiet;
    match parsed.filter {
        LogFilter::Static(t) => Dispatch::new(
            registry
                .with(*t)
                .with(quiet)
                .with(layer().with_writer(std::io::sink)),
        ),
        LogFilter::Dynamic(e) => Dispatch::new(
            registry
                .with(*e)
                .with(quiet)
                .with(layer().with_writer(std::io::sink)),
        ),
    }
}

/// `iters` span entries and exits on each of `threads` threads at once;
/// the slowest thread's time.
fn enter_exit(d: &Dispatch, threads: usize, iters: u64) -> Duration {
    let start = std::sync::Barrier::new(threads);
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..threads)
            .map(|shard| {
                let start = &start;
                s.spawn(move || {
                    tracing::dispatcher::with_default(d, || {
                        let span = tracing::info_span!("session", shard);
                        start.wait();
                        let t = Instant::now();
                        for _ in 0..iters {
                            let entered = span.enter();
                            black_box(&entered);
                        }
                        t.elapsed()
                    })
                })
            })
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).max().unwrap()
    })
}

fn bench_span(c: &mut Criterion) {
    let mut g = c.benchmark_group("session_span_enter_exit");
    let filters = [
        ("targets_info", parse_filter("info").unwrap()),
        (
            "envfilter_info",
            ParsedFilter {
                filter: LogFilter::Dynamic(Box::new(EnvFilter::new("info"))),
                quiet: parse_filter("info").unwrap().quiet,
            },
        ),
    ];
    for (name, filter) in filters {
        let d = dispatch(filter);
        for threads in [1, 2] {
            g.bench_function(format!("{name}/{threads}_threads"), |b| {
                b.iter_custom(|iters| enter_exit(&d, threads, iters))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_span);
criterion_main!(benches);
