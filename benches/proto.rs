//! Benchmarks of the control-channel hot path: parsing command lines,
//! splitting a pipelined read into lines, and encoding replies. A session
//! runs all three for every command, so they bound commands per second.
#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented pub fn"
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringftp::proto::{parse, LineEvent, LineReader, Reply, MAX_LINE};

/// What a mirror's control channels actually carry: logins, navigation,
/// transfer setup, downloads, with the odd malformed or unknown line.
const LINES: &[&[u8]] = &[
    b"USER anonymous",
    b"PASS guest@example.com",
    b"SYST",
    b"FEAT",
    b"OPTS UTF8 ON",
    b"PWD",
    b"TYPE I",
    b"CWD /pub/linux/releases/24.04",
    b"EPSV",
    b"PASV",
    b"PORT 192,168,1,20,195,80",
    b"EPRT |2|2001:db8::1|50000|",
    b"SIZE ubuntu-24.04-desktop-amd64.iso",
    b"MDTM ubuntu-24.04-desktop-amd64.iso",
    b"REST 1048576",
    b"RETR ubuntu-24.04-desktop-amd64.iso",
    b"LIST -la",
    b"MLSD /pub/linux",
    b"NOOP",
    b"QUIT",
    b"XYZZY plugh",
];

fn bench_parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(LINES.len() as u64));
    g.bench_function("mix_21_lines", |b| {
        b.iter(|| {
            for line in LINES {
                let _ = black_box(parse(black_box(line)));
            }
        })
    });
    g.finish();
}

fn bench_line_reader(c: &mut Criterion) {
    // 64 KiB of pipelined CRLF lines, as a client that pipelines commands
    // (or a load generator) would fill one read.
    let mut stream = Vec::with_capacity(64 * 1024);
    'fill: loop {
        for line in LINES {
            if stream.len() + line.len() + 2 > 64 * 1024 {
                break 'fill;
            }
            stream.extend_from_slice(line);
            stream.extend_from_slice(b"\r\n");
        }
    }
    let mut g = c.benchmark_group("line_reader");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("pipelined_64k", |b| {
        b.iter(|| {
            let mut r = LineReader::new(MAX_LINE);
            r.feed(black_box(&stream));
            let mut n = 0usize;
            while let Some(ev) = r.next_event() {
                if let LineEvent::Line(l) = ev {
                    n += l.len();
                }
            }
            black_box(n)
        })
    });
    g.finish();
}

fn bench_reply(c: &mut Criterion) {
    let single = Reply::new(226, "Transfer complete.");
    let multi = Reply::new(
        211,
        "Features:\n EPRT\n EPSV\n MDTM\n MLST type*;size*;modify*;perm*;unique*;UNIX.mode*;\n \
         PASV\n REST STREAM\n SIZE\n TVFS\n UTF8\nEnd",
    );
    let mut g = c.benchmark_group("reply_encode");
    let mut out = Vec::with_capacity(1024);
    g.bench_function("single_line", |b| {
        b.iter(|| {
            out.clear();
            black_box(&single).encode(&mut out);
            black_box(out.len())
        })
    });
    g.bench_function("feat_multi_line", |b| {
        b.iter(|| {
            out.clear();
            black_box(&multi).encode(&mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

criterion_group!(benches, bench_parse, bench_line_reader, bench_reply);
criterion_main!(benches);
