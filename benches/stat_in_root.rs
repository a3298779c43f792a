//! What a SIZE or MDTM costs in the kernel: ringftp looks a path up with
//! openat2(RESOLVE_IN_ROOT | RESOLVE_CACHED, O_PATH) relative to the
//! session's root fd, then fstat, then close (`vfs::resolve::stat`): no
//! resolution can leave the root, symlinks included. A chrooted peer
//! (vsftpd, pure-ftpd) makes one stat(2); Linux has no stat form of
//! openat2's resolve flags. Nanoseconds per lookup of a file two
//! directories deep, from the dentry cache.
#![allow(
    missing_docs,
    reason = "criterion_group! defines an undocumented pub fn"
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("pub/d1")).unwrap();
    std::fs::write(dir.path().join("pub/d1/f.dat"), vec![7u8; 1024]).unwrap();
    let root = rustix::fs::open(
        dir.path(),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .unwrap();
    let rel = "pub/d1/f.dat";
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS | ResolveFlags::CACHED;
    let mut g = c.benchmark_group("stat_in_root");
    g.bench_function("openat2_fstat_close", |b| {
        b.iter(|| {
            let fd = rustix::fs::openat2(
                &root,
                black_box(rel),
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                resolve,
            )
            .unwrap();
            black_box(rustix::fs::fstat(&fd).unwrap().st_size)
        })
    });
    g.bench_function("statat_one_call", |b| {
        b.iter(|| {
            black_box(
                rustix::fs::statat(&root, black_box(rel), AtFlags::empty())
                    .unwrap()
                    .st_size,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
