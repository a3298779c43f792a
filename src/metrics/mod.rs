//! What an operator watches: Prometheus metrics, the live session table
//! and a health check, served over HTTP by `--metrics-listen`.
//!
//! - [`counters`]: what each shard counts ([`ShardMetrics`]: relaxed
//!   atomics that only their shard writes);
//! - [`exposition`]: `/metrics`, the shards summed at scrape time in the
//!   Prometheus text format;
//! - [`sessions`]: the per-shard table of open sessions behind `/sessions`
//!   (each shard answers for its own sessions when asked);
//! - [`http`]: the small HTTP responder, on a thread of its own (no async
//!   runtime, nothing on the shards);
//! - [`who`]: `ringftp who`, the table a person reads from `/sessions`.
//!
//! [`Monitor`] is what the responder holds: every shard's counters, a way
//! to ask every shard for its sessions, and the shutdown phase (for
//! `/health`).

pub(crate) mod counters;
pub(crate) mod exposition;
pub(crate) mod http;
pub(crate) mod sessions;
pub mod who;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub(crate) use counters::ShardMetrics;

use crate::shutdown::{self, Phase};

/// The server as the scrape thread sees it.
pub struct Monitor {
    /// One per shard, in shard order.
    pub shards: Vec<Arc<ShardMetrics>>,
    /// Where each shard takes requests for its session table.
    pub inspectors: Vec<sessions::Inspector>,
    /// The graceful-shutdown phase.
    pub phase: shutdown::Watch,
    /// When the server started, Unix seconds.
    pub started_unix: u64,
}

/// What `/health` answers: whether the server takes new sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Every shard is accepting (200).
    Serving {
        /// Shards in the server.
        shards: usize,
    },
    /// Some shards have not started accepting yet (503).
    Starting {
        /// Shards accepting connections now.
        accepting: usize,
        /// Shards in the server.
        shards: usize,
    },
    /// A graceful shutdown is under way: no new sessions (503).
    Draining,
}

impl Health {
    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        match self {
            Health::Serving { .. } => 200,
            _ => 503,
        }
    }

    /// The one-line body.
    pub fn text(&self) -> String {
        match self {
            Health::Serving { shards } => format!("ok: {shards} shard(s) accepting\n"),
            Health::Starting { accepting, shards } => {
                format!("starting: {accepting} of {shards} shard(s) accepting\n")
            }
            Health::Draining => "draining: shutting down, no new sessions\n".to_string(),
        }
    }
}

impl Monitor {
    /// The monitor of a server: each shard's counters and session table
    /// (index = shard id) and the shutdown phase `/health` reports.
    pub fn new(
        shards: Vec<Arc<ShardMetrics>>,
        inspectors: Vec<sessions::Inspector>,
        phase: shutdown::Watch,
    ) -> Monitor {
        Monitor {
            shards,
            inspectors,
            phase,
            started_unix: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    /// Whether the server takes new sessions now.
    pub fn health(&self) -> Health {
        if *self.phase.borrow() != Phase::Running {
            return Health::Draining;
        }
        let shards = self.shards.len();
        let accepting = self
            .shards
            .iter()
            .filter(|s| s.accepting.load(Ordering::Relaxed))
            .count();
        if accepting == shards {
            Health::Serving { shards }
        } else {
            Health::Starting { accepting, shards }
        }
    }

    /// Every shard's open sessions, asking each shard in turn and waiting
    /// at most `wait` in all (a shard that does not answer in time is left
    /// out and counted in `shards_answered`).
    pub fn sessions(&self, wait: Duration) -> sessions::SessionsReport {
        sessions::collect(&self.inspectors, wait)
    }
}
