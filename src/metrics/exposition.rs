//! `/metrics`: the shards' counters summed at scrape time and written in
//! the Prometheus text format (version 0.0.4) by `prometheus-client`.
//!
//! Nothing is registered per event: one [`Collector`] reads every shard's
//! [`ShardMetrics`] when Prometheus asks, so counting stays a store on the
//! shard and the exposition format is the library's. Names follow the
//! Prometheus conventions: `ringftp_` prefix, base units (`_seconds`,
//! `_bytes`) and `_total` on counters (the encoder appends it).

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::counters::{
    BytePath, Dir, LoginOutcome, RefusedReason, ShardMetrics, TransferOutcome, DURATION_BOUNDS,
    FIRST_BYTE_BOUNDS, REPLY_CLASSES,
};
use super::Monitor;
use crate::proto::command::VERBS;

/// The Prometheus text of everything `monitor` knows, as `/metrics`
/// answers it.
pub(crate) fn render(monitor: &Arc<Monitor>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(monitor.clone())));
    let mut out = String::with_capacity(16 << 10);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// One scrape's view of the server.
struct Scrape(Arc<Monitor>);

impl fmt::Debug for Scrape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Scrape")
    }
}

/// Writes one counter family: `name` (without `_total`), its help, and a
/// value per label set.
fn counter<L: AsRef<[(&'static str, &'static str)]>>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    values: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, v) in values {
        let labels = labels.as_ref();
        m.encode_family(&labels)?
            .encode_counter::<NoLabelSet, _, u64>(&v, None)?;
    }
    Ok(())
}

/// Writes one counter family without labels: a single value.
fn single_counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> fmt::Result {
    counter(enc, name, help, unit, [([] as [(&str, &str); 0], value)])
}

/// Writes one gauge family.
fn gauge<L: AsRef<[(&'static str, String)]>>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in values {
        let labels = labels.as_ref();
        m.encode_family(&labels)?.encode_gauge(&(v as i64))?;
    }
    Ok(())
}

/// A per-shard counter family (`shard` label).
fn shard_counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    shards: &[Arc<ShardMetrics>],
    value: impl Fn(&ShardMetrics) -> u64,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for s in shards {
        let labels = [("shard", s.shard.to_string())];
        m.encode_family(&labels.as_slice())?
            .encode_counter::<NoLabelSet, _, u64>(&value(s), None)?;
    }
    Ok(())
}

/// A per-shard gauge family (`shard` label).
fn shard_gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    shards: &[Arc<ShardMetrics>],
    value: impl Fn(&ShardMetrics) -> u64,
) -> fmt::Result {
    gauge(
        enc,
        name,
        help,
        shards
            .iter()
            .map(|s| ([("shard", s.shard.to_string())], value(s))),
    )
}

/// The sum over shards of `f`.
fn sum(shards: &[Arc<ShardMetrics>], f: impl Fn(&ShardMetrics) -> u64) -> u64 {
    shards.iter().map(|s| f(s)).sum()
}

/// Writes a histogram family by direction, summing the shards' buckets.
fn histogram(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    bounds: &[f64],
    shards: &[Arc<ShardMetrics>],
    pick: impl Fn(&ShardMetrics, Dir) -> &super::counters::Histogram,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, Some(&Unit::Seconds), MetricType::Histogram)?;
    for &dir in Dir::ALL {
        let mut counts = vec![0u64; bounds.len() + 1];
        let mut sum_ns = 0u64;
        for s in shards {
            pick(s, dir).add_to(&mut counts, &mut sum_ns);
        }
        let count: u64 = counts.iter().sum();
        let buckets: Vec<(f64, u64)> = bounds.iter().copied().zip(counts).collect();
        let labels = [("direction", dir.label())];
        m.encode_family(&labels.as_slice())?
            .encode_histogram::<NoLabelSet>(sum_ns as f64 / 1e9, count, &buckets, None)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let mon = &self.0;
        let shards = &mon.shards[..];
        gauge(
            &mut enc,
            "ringftp_build_info",
            "The running ringftp's version (the value is always 1).",
            [([("version", env!("CARGO_PKG_VERSION").to_string())], 1)],
        )?;
        gauge(
            &mut enc,
            "ringftp_start_time_seconds",
            "When the server started, Unix seconds.",
            [([] as [(&str, String); 0], mon.started_unix)],
        )?;
        shard_gauge(
            &mut enc,
            "ringftp_sessions_open",
            "Control sessions open now, by shard.",
            shards,
            |s| s.sessions_open.get(),
        )?;
        shard_counter(
            &mut enc,
            "ringftp_sessions",
            "Control sessions admitted since start, by shard.",
            shards,
            |s| s.sessions_total.get(),
        )?;
        counter(
            &mut enc,
            "ringftp_connections_refused",
            "New control connections answered 421 and closed, by reason.",
            None,
            RefusedReason::ALL.iter().map(|&r| {
                (
                    [("reason", r.label())],
                    sum(shards, |s| s.refused[r.index()].get()),
                )
            }),
        )?;
        counter(
            &mut enc,
            "ringftp_logins",
            "PASS commands by outcome (ok: a named account; anonymous: an anonymous login).",
            None,
            LoginOutcome::ALL.iter().map(|&o| {
                (
                    [("outcome", o.label())],
                    sum(shards, |s| s.logins[o.index()].get()),
                )
            }),
        )?;
        counter(
            &mut enc,
            "ringftp_commands",
            "Control commands received, by canonical verb (unknown: lines the parser refused).",
            None,
            VERBS
                .iter()
                .copied()
                .chain(["unknown"])
                .enumerate()
                .map(|(i, v)| ([("verb", v)], sum(shards, |s| s.commands[i].get()))),
        )?;
        counter(
            &mut enc,
            "ringftp_replies",
            "Control replies sent, by class (1xx to 5xx).",
            None,
            REPLY_CLASSES
                .iter()
                .enumerate()
                .map(|(i, &c)| ([("class", c)], sum(shards, |s| s.replies[i].get()))),
        )?;
        counter(
            &mut enc,
            "ringftp_transfers",
            "Transfer commands (RETR, STOR/APPE/STOU, LIST/NLST/MLSD) ended, by direction and outcome.",
            None,
            Dir::ALL.iter().flat_map(|&d| {
                TransferOutcome::ALL.iter().map(move |&o| {
                    (
                        [("direction", d.label()), ("outcome", o.label())],
                        sum(shards, |s| s.transfers[d.index()][o.index()].get()),
                    )
                })
            }),
        )?;
        counter(
            &mut enc,
            "ringftp_transfer",
            "Data bytes moved, by direction and path (sendfile: from the page cache; splice: through a pipe, disk reads and uploads; copied: through a buffer, ASCII, listings, a download of at most 64 KiB when the page cache holds it, no rate cap applies and it is not sent through kTLS, and the first 256 KiB of a download over 512 KiB on a data connection whose MSS is 8 KiB or more, as on loopback or with jumbo frames, when the page cache holds them and no rate cap applies; tls: encrypted or decrypted in userspace, FTPS).",
            Some(&Unit::Bytes),
            Dir::ALL.iter().flat_map(|&d| {
                BytePath::ALL.iter().map(move |&p| {
                    (
                        [("direction", d.label()), ("path", p.label())],
                        sum(shards, |s| s.bytes[d.index()][p.index()].get()),
                    )
                })
            }),
        )?;
        single_counter(
            &mut enc,
            "ringftp_transfer_kernel_tls",
            "FTPS download bytes encrypted by kernel TLS (kTLS); also counted by path (sendfile, splice) in ringftp_transfer_bytes_total.",
            Some(&Unit::Bytes),
            sum(shards, |s| s.kernel_tls.get()),
        )?;
        histogram(
            &mut enc,
            "ringftp_transfer_duration",
            "From the transfer command to the end of the transfer, for transfers that had a data connection.",
            DURATION_BOUNDS,
            shards,
            |s, d| &s.duration[d.index()],
        )?;
        histogram(
            &mut enc,
            "ringftp_transfer_first_byte",
            "From the transfer command to the first data byte moved (time to first byte).",
            FIRST_BYTE_BOUNDS,
            shards,
            |s, d| &s.first_byte[d.index()],
        )?;
        single_counter(
            &mut enc,
            "ringftp_upload_commits",
            "Uploads whose file was put in place.",
            None,
            sum(shards, |s| s.upload_commits.get()),
        )?;
        single_counter(
            &mut enc,
            "ringftp_upload_aborts",
            "Uploads undone: the partial file deleted (or kept with --keep-partial), what was there before left as it was.",
            None,
            sum(shards, |s| s.upload_aborts.get()),
        )?;
        single_counter(
            &mut enc,
            "ringftp_listing_entries",
            "Directory entries sent in listings (LIST, NLST, MLSD, STAT with a path).",
            None,
            sum(shards, |s| s.listing_entries.get()),
        )?;
        shard_gauge(
            &mut enc,
            "ringftp_passive_ports",
            "Ports in the shard's slice of --pasv-ports.",
            shards,
            |s| s.pasv_ports.get(),
        )?;
        shard_gauge(
            &mut enc,
            "ringftp_passive_ports_leased",
            "Passive ports with a listener open now (announced by a PASV/EPSV, or kept for its session's next one), by shard.",
            shards,
            |s| s.pasv_leased.get(),
        )?;
        shard_gauge(
            &mut enc,
            "ringftp_passive_ports_kept",
            "Of the leased passive ports, those whose listener is kept for its session's next PASV/EPSV after a transfer; a PASV that finds no free port takes one of these.",
            shards,
            |s| s.pasv_kept.get(),
        )?;
        shard_counter(
            &mut enc,
            "ringftp_passive_ports_exhausted",
            "PASV/EPSV answered 425 because every port of the shard's slice was in use.",
            shards,
            |s| s.pasv_exhausted.get(),
        )?;
        single_counter(
            &mut enc,
            "ringftp_xferlog_write_errors",
            "xferlog lines that could not be written.",
            None,
            sum(shards, |s| s.xferlog_errors.get()),
        )?;
        single_counter(
            &mut enc,
            "ringftp_log_lines_dropped",
            "Log lines dropped because the log writer fell behind (logging never blocks a shard).",
            None,
            crate::logging::dropped_lines(),
        )?;
        Ok(())
    }
}
