//! Benchmarks of directory listing formatting: LIST (`ls -l` lines) and
//! MLSD (RFC 3659 facts) for a 10,000-entry directory into one buffer, the
//! CPU cost a mirror pays per listing of a large package directory.
#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented pub fn"
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringftp::auth::Perms;
use ringftp::vfs::access::Viewer;
use ringftp::vfs::listing::{format_list_line, format_mlsx_line, Entry, EntryKind, Facts};
use ringftp::vfs::Stat;

const ENTRIES: usize = 10_000;
/// 2024-01-02 03:04:05 UTC.
const NOW: i64 = 1_704_164_645;

fn entries() -> Vec<Entry> {
    (0..ENTRIES as u64)
        .map(|i| {
            let dir = i % 10 == 0;
            Entry {
                name: format!("package-{i:05}_1.2.{}-1_amd64.deb", i % 97).into_bytes(),
                kind: if dir { EntryKind::Dir } else { EntryKind::File },
                stat: Stat {
                    mode: if dir { 0o040_755 } else { 0o100_644 },
                    nlink: if dir { 2 } else { 1 },
                    uid: 1000,
                    gid: 1000,
                    size: i * 7919 % 50_000_000,
                    // Spread over two years so both date forms are formatted.
                    mtime: NOW - (i as i64 * 6311) % (2 * 31_556_952),
                    dev: 0x801,
                    ino: 1_000_000 + i,
                },
                link_target: None,
            }
        })
        .collect()
}

fn bench_listing(c: &mut Criterion) {
    let entries = entries();
    let mut out = Vec::with_capacity(ENTRIES * 128);
    let mut g = c.benchmark_group("listing_10k");
    g.throughput(Throughput::Elements(ENTRIES as u64));
    g.bench_function("list", |b| {
        b.iter(|| {
            out.clear();
            for e in &entries {
                format_list_line(e, NOW, &mut out);
            }
            black_box(out.len())
        })
    });
    g.bench_function("mlsd", |b| {
        b.iter(|| {
            out.clear();
            for e in &entries {
                format_mlsx_line(
                    e,
                    Facts::default(),
                    Perms::anonymous(),
                    Viewer::World,
                    &mut out,
                );
            }
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_listing);
criterion_main!(benches);
