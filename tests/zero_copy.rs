//! The zero-copy path: with one shard, STAT's per-shard counters show that
//! a binary RETR moves its bytes by splice (spliced grows by exactly the
//! bytes sent, copied does not) — but for a download of at most 64 KiB,
//! sent whole from a copy when the page cache holds it, and for the first
//! 256 KiB of a download over 512 KiB on a path of large segments (a
//! loopback), which are copied — while TYPE A and listings are copied.

mod common;

use std::net::TcpListener;

use common::*;

/// Downloads of at most this many bytes go from a copy when cached.
const SMALL: u64 = 64 << 10;

/// The bytes a binary RETR of `len` bytes of a cached file copies on the
/// host's loopback: all of a download of at most 64 KiB; the first 256 KiB
/// of a download over 512 KiB when the path's segments are 8 KiB or more
/// (the loopback's MTU is 65,536 unless someone changed it); else none.
/// The loopback's MSS is its MTU (at most 65,535) less 40 bytes of headers
/// and 12 of TCP timestamps.
fn copied_first(len: u64) -> u64 {
    if len <= SMALL {
        return len;
    }
    let mtu: u64 = std::fs::read_to_string("/sys/class/net/lo/mtu")
        .expect("the loopback's MTU")
        .trim()
        .parse()
        .unwrap();
    let mss = mtu.min(65535).saturating_sub(52);
    if len > 512 << 10 && mss >= 8 << 10 {
        256 << 10
    } else {
        0
    }
}

fn fixture() -> Fixture {
    let fx = Fixture::new();
    fx.standard_tree();
    fx.write("big.bin", &pattern(77, (9 << 20) + 5));
    fx.write("small.bin", &pattern(82, SMALL as usize));
    fx.write("over.bin", &pattern(83, SMALL as usize + 1));
    fx
}

#[test]
fn binary_retr_is_spliced() {
    let fx = fixture();
    let srv = Server::builder().cores(1).start(&fx);
    let mut f = srv.login();
    let before = f.stat_counters();
    assert_eq!(before.shard, 0);

    let (mut total, mut copied) = (0u64, 0u64);
    for path in [
        "dir/b.bin",
        "big.bin",
        "dir/a.bin",
        "empty",
        "small.bin",
        "over.bin",
        "hello.txt",
        "dir/sub/deeper/c.txt",
    ] {
        let got = f.retr(path);
        assert_bytes_eq(path, &got, &fx.read(path));
        total += got.len() as u64;
        copied += copied_first(got.len() as u64);
        let now = f.stat_counters();
        assert_eq!(
            now.spliced - before.spliced,
            total - copied,
            "after RETR {path}: spliced should have grown by the {total} bytes sent, less {copied} copied"
        );
        assert_eq!(
            now.copied - before.copied,
            copied,
            "after RETR {path}: a binary RETR copied more than its first bytes"
        );
    }

    // With REST, exactly the tail is sent; what is left after the offset
    // decides the way (a tail of at most 64 KiB goes from a copy).
    let big = fx.read("big.bin");
    let n = big.len() as u64;
    for rest in [16384, n - SMALL - 1, n - SMALL, n - 1000, n - 1] {
        let before = f.stat_counters();
        let got = f.retr_from("big.bin", rest);
        assert_bytes_eq(&format!("REST {rest}"), &got, &big[rest as usize..]);
        let now = f.stat_counters();
        let warm = copied_first(got.len() as u64);
        assert_eq!(
            now.spliced - before.spliced,
            got.len() as u64 - warm,
            "REST {rest}"
        );
        assert_eq!(now.copied - before.copied, warm, "REST {rest}");
    }
    f.quit();
}

#[test]
fn active_binary_retr_is_spliced() {
    let fx = fixture();
    let srv = Server::builder().cores(1).start(&fx);
    let mut f = srv.login();
    let before = f.stat_counters();
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let (got, _) = f.transfer_active(&l, "RETR big.bin");
    assert_bytes_eq("active RETR", &got, &fx.read("big.bin"));
    let now = f.stat_counters();
    let warm = copied_first(got.len() as u64);
    assert_eq!(now.spliced - before.spliced, got.len() as u64 - warm);
    assert_eq!(now.copied - before.copied, warm);

    // A small file the same way, from a copy.
    let before = f.stat_counters();
    let (got, _) = f.transfer_active(&l, "RETR small.bin");
    assert_bytes_eq("active RETR small.bin", &got, &fx.read("small.bin"));
    let now = f.stat_counters();
    assert_eq!(now.spliced, before.spliced);
    assert_eq!(now.copied - before.copied, SMALL);
    f.quit();
}

#[test]
fn ascii_and_listings_are_copied() {
    let fx = fixture();
    let srv = Server::builder().cores(1).start(&fx);
    let mut f = srv.login();
    let src = fx.read("hello.txt");

    let before = f.stat_counters();
    f.expect("TYPE A", 200);
    let wire = f.retr("hello.txt");
    let lines = src.iter().filter(|&&b| b == b'\n').count();
    assert_eq!(wire.len(), src.len() + lines, "TYPE A adds one CR per line");
    let now = f.stat_counters();
    assert_eq!(
        now.spliced, before.spliced,
        "TYPE A RETR went through splice"
    );
    assert!(
        now.copied - before.copied >= src.len() as u64,
        "TYPE A RETR of {} bytes grew `copied` by only {}",
        src.len(),
        now.copied - before.copied
    );
    f.expect("TYPE I", 200);

    let before = f.stat_counters();
    let list = f.listing("LIST dir");
    let now = f.stat_counters();
    assert_eq!(now.spliced, before.spliced, "LIST went through splice");
    assert_eq!(
        now.copied - before.copied,
        list.len() as u64,
        "LIST of {} bytes",
        list.len()
    );
    f.quit();
}

/// STAT shows a session its own transfers; the shard's (every session's)
/// only to a named account, never to anonymous (issue 11: an anonymous
/// session sees its own status only).
#[test]
fn stat_counts_the_session_and_shows_the_shard_to_accounts_only() {
    let fx = fixture();
    let users = fx.users_file("users.toml", &[Account::new("op", &["list", "read"])]);
    let srv = Server::builder().cores(1).users(&users).start(&fx);
    let mut a = srv.login();
    let mut b = srv.login();
    let mut op = srv.login_as("op", "op-pw");
    let (b0, op0) = (b.stat_counters(), op.shard_counters());
    let got = a.retr("dir/b.bin");
    let (b1, op1) = (b.stat_counters(), op.shard_counters());
    assert_eq!(b1.shard, 0);
    assert_eq!(b1, b0, "anonymous b saw a's transfer");
    let sent = |c: &Counters| c.spliced + c.copied;
    assert_eq!(sent(&op1) - sent(&op0), got.len() as u64);
    assert_eq!(sent(&a.stat_counters()), got.len() as u64);
    let r = b.expect("STAT", 211);
    assert!(!r.text().contains("all sessions"), "{r:?}");
    a.quit();
    b.quit();
    op.quit();
}

/// Evicts `path`'s pages from the page cache (written back first), with
/// Python's os.posix_fadvise so the test needs no unsafe code. Returns
/// false when util-linux's `fincore` shows pages still resident (a
/// filesystem that ignores the advice): the caller cannot expect the disk
/// route then. Without `fincore` it trusts the advice.
fn drop_from_page_cache(path: &std::path::Path) -> bool {
    let ok = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, sys\n\
             fd = os.open(sys.argv[1], os.O_RDONLY)\n\
             os.fsync(fd)\n\
             os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)\n",
        ])
        .arg(path)
        .status()
        .expect("python3 runs");
    assert!(ok.success(), "posix_fadvise(DONTNEED) failed");
    let resident = std::process::Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output();
    match resident {
        Ok(out) if out.status.success() => {
            let text = String::from_utf8_lossy(&out.stdout);
            let evicted = text.trim() == "0";
            if !evicted {
                eprintln!(
                    "NOTE: {} keeps {} bytes in the page cache after POSIX_FADV_DONTNEED; \
                     the disk route of RETR is not exercised on this filesystem",
                    path.display(),
                    text.trim()
                );
            }
            evicted
        }
        _ => true,
    }
}

#[test]
fn a_file_out_of_the_page_cache_is_read_through_a_pipe() {
    // On the build's disk: a tmpfs file never leaves the page cache.
    let fx = Fixture::on_disk();
    fx.standard_tree();
    let data = pattern(78, (6 << 20) + 3);
    let path = fx.write("cold.bin", &data);
    let srv = Server::builder().cores(1).start(&fx);
    let mut f = srv.login();

    // Cold: the first chunk at least is read from disk through a pipe.
    let (before, now) = retr_evicted(&mut f, &path, &data, 0, "cold RETR");
    assert_eq!(now.copied, before.copied);

    // Warm now: every byte goes by sendfile from the page cache.
    let before = now;
    let got = f.retr("cold.bin");
    assert_bytes_eq("warm RETR", &got, &data);
    let now = f.stat_counters();
    let warm = copied_first(data.len() as u64);
    assert_eq!(now.spliced - before.spliced, data.len() as u64 - warm);
    assert_eq!(now.copied - before.copied, warm);
    assert_eq!(
        now.from_disk, before.from_disk,
        "a cached file was read through the pipe"
    );

    // Cold again, resumed at an offset that is not page-aligned.
    retr_evicted(&mut f, &path, &data, 4097, "cold REST 4097");

    // A small file out of the cache: not read on the shard thread either
    // (the read that would copy it finds the first page missing).
    let small = pattern(84, 20_000);
    let small_path = fx.write("cold-small.bin", &small);
    retr_evicted(&mut f, &small_path, &small, 0, "cold small RETR");
    // Cached again, it goes from a copy.
    let before = f.stat_counters();
    retr_at(&mut f, "cold-small.bin", &small, 0, "warm small RETR");
    let now = f.stat_counters();
    assert_eq!(now.copied - before.copied, small.len() as u64);
    assert_eq!(now.from_disk, before.from_disk);
    f.quit();
}

/// RETRs `path`, which holds `data`, from `rest` (a plain RETR for 0, else
/// REST first) and asserts the bytes; returns them.
fn retr_at(f: &mut Ftp, path: &str, data: &[u8], rest: u64, what: &str) -> Vec<u8> {
    let got = if rest == 0 {
        f.retr(path)
    } else {
        f.retr_from(path, rest)
    };
    assert_bytes_eq(what, &got, &data[rest as usize..]);
    got
}

/// Evicts `path` (served as its file name, holding `data`) from the page
/// cache and RETRs it from `rest` (a plain RETR for 0): asserts the bytes,
/// that every one was spliced, and that some came from the disk through
/// the pipe (where the eviction took). Returns STAT's counters before and
/// after.
///
/// Up to three tries: on a busy machine the page cache can hold the pages
/// again by the time the RETR looks (this disk's readahead is 8 MiB, and a
/// page under I/O is neither evicted nor counted by fincore), which this
/// test cannot tell from probes that missed an eviction; a server whose
/// checks never see one fails all three.
fn retr_evicted(
    f: &mut Ftp,
    path: &std::path::Path,
    data: &[u8],
    rest: u64,
    what: &str,
) -> (Counters, Counters) {
    let name = path.file_name().unwrap().to_str().unwrap();
    let mut tries = Vec::new();
    for _ in 0..3 {
        let evicted = drop_from_page_cache(path);
        let before = f.stat_counters();
        let got = retr_at(f, name, data, rest, what);
        let now = f.stat_counters();
        // A first 256 KiB the eviction missed may go by copy (see
        // copied_first); the rest is spliced.
        let copied = now.copied - before.copied;
        assert!(
            copied == 0 || copied == copied_first(got.len() as u64),
            "{what}: copied {copied}"
        );
        assert_eq!(
            now.spliced - before.spliced + copied,
            got.len() as u64,
            "{what}"
        );
        if now.from_disk > before.from_disk || !evicted {
            return (before, now);
        }
        tries.push(format!("{before:?} -> {now:?}"));
    }
    panic!(
        "{what}: an evicted file read nothing through the pipe, three times: {}",
        tries.join("; ")
    )
}

/// Started as root, `srv` serves as another account, which was given the
/// tree: gives `path` back to root, readable by all, writable by none but
/// root (a mirror's file as the server sees it).
fn only_readable_by(srv: &Server, path: &std::path::Path) {
    std::os::unix::fs::chown(path, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    assert_ne!(
        status_field(srv.pid(), "Uid:", 2).expect("the server's effective uid"),
        0,
        "this test needs the server to run as an account other than root"
    );
}

/// A mirror's files usually belong to whoever syncs them, not to the
/// server's account, which may only read them. cachestat(2) refuses such
/// files (EPERM: Linux shows page-cache residency only to owners and
/// writers); the server must still see that a warm file is cached and
/// sendfile it, not stage every byte through a pipe on the kernel's
/// worker threads.
#[test]
fn a_cached_file_the_server_only_reads_is_still_sent_by_sendfile() {
    let fx = fixture();
    let srv = Server::builder().cores(1).start(&fx);
    only_readable_by(&srv, &fx.root.join("big.bin"));
    let mut f = srv.login();
    let data = fx.read("big.bin");
    for round in 0..2 {
        let before = f.stat_counters();
        let got = f.retr("big.bin");
        assert_bytes_eq("RETR of a file owned by root", &got, &data);
        let now = f.stat_counters();
        let warm = copied_first(data.len() as u64);
        assert_eq!(now.spliced - before.spliced, data.len() as u64 - warm);
        assert_eq!(now.copied - before.copied, warm);
        assert_eq!(
            now.from_disk, before.from_disk,
            "round {round}: a cached file the server may only read went through the pipe"
        );
    }
    // A small one goes whole from a copy (the read is its own probe).
    let small_path = fx.root.join("small.bin");
    only_readable_by(&srv, &small_path);
    let before = f.stat_counters();
    retr_at(&mut f, "small.bin", &fx.read("small.bin"), 0, "small RETR");
    let now = f.stat_counters();
    assert_eq!(now.copied - before.copied, SMALL);
    assert_eq!(
        (now.spliced, now.from_disk),
        (before.spliced, before.from_disk)
    );
    f.quit();
}

/// The same on tmpfs (a tree served from memory): tmpfs answers neither
/// cachestat (not the server's file) nor the non-blocking probes
/// (EOPNOTSUPP), yet its bytes are memory, so they go by sendfile, not
/// through the pipe on the kernel's worker threads.
#[test]
fn a_tmpfs_file_the_server_only_reads_is_sent_by_sendfile() {
    let fx = Fixture::on_tmpfs();
    fx.standard_tree();
    let data = pattern(80, (3 << 20) + 7);
    let path = fx.write("mem.bin", &data);
    let small = pattern(85, 9000);
    let small_path = fx.write("mem-small.bin", &small);
    let srv = Server::builder().cores(1).start(&fx);
    only_readable_by(&srv, &path);
    only_readable_by(&srv, &small_path);
    let mut f = srv.login();
    let tail = data.len() as u64 - 5000;
    for (name, data, rest, what) in [
        ("mem.bin", &data, 0, "RETR"),
        ("mem.bin", &data, 65537, "REST 65537"),
        ("mem.bin", &data, tail, "REST to the last 5000 bytes"),
        ("mem-small.bin", &small, 0, "RETR of a small file"),
        ("mem.bin", &data, 0, "RETR again"),
    ] {
        let before = f.stat_counters();
        let got = retr_at(&mut f, name, data, rest, what);
        let now = f.stat_counters();
        let warm = copied_first(got.len() as u64);
        assert_eq!(
            now.spliced - before.spliced,
            got.len() as u64 - warm,
            "{what}"
        );
        assert_eq!(now.copied - before.copied, warm, "{what}");
        assert_eq!(
            now.from_disk, before.from_disk,
            "{what}: a file on tmpfs went through the pipe"
        );
    }
    f.quit();
}

/// The same file, evicted: for a file the server may only read, one-byte
/// non-blocking reads stand in for cachestat, and they must see that the
/// pages are gone, so the bytes come from the disk through the pipe on
/// the kernel's worker threads rather than by a sendfile that would stall
/// every session of the shard on the disk.
#[test]
fn an_evicted_file_the_server_only_reads_is_read_through_a_pipe() {
    let fx = Fixture::on_disk();
    fx.standard_tree();
    let data = pattern(79, (3 << 20) + 5);
    let path = fx.write("cold.bin", &data);
    let srv = Server::builder().cores(1).start(&fx);
    only_readable_by(&srv, &path);
    let mut f = srv.login();
    // Whole-file RETRs, and one resumed in the second 1 MiB chunk.
    for (rest, what) in [
        (0, "cold RETR"),
        (1 << 20, "cold REST 1 MiB"),
        (0, "cold again"),
    ] {
        retr_evicted(&mut f, &path, &data, rest, what);
    }
    f.quit();
}

/// A download over 512 KiB sends its first 256 KiB by copy where the data
/// connection's segments are 8 KiB or more: on such a loopback a client
/// whose first reads come late often never grows its receive window
/// against page-cache (zero-copy) segments, and the file then crawls at two
/// segments per read (docs/benchmarks.md, seventeenth pass); jumbo frames
/// too (MTU 9,000: the mirror's large files stall there without it,
/// eighteenth pass). Not at an Ethernet MTU, nor for shorter downloads;
/// the bytes are the file's either way.
#[test]
fn a_long_download_starts_copied_only_on_a_path_of_large_segments() {
    let fx = fixture();
    let half_mib = pattern(81, 512 << 10);
    fx.write("half.bin", &half_mib);
    let big = fx.read("big.bin");
    for (mtu, warm) in [(65536, 256u64 << 10), (9000, 256 << 10), (1500, 0)] {
        let ns = netns::Loopback::with_mtu(mtu);
        let srv = Server::builder().cores(1).netns(&ns.name).start(&fx);
        let addr = srv.addr();
        netns::within(&ns.name, || {
            let mut f = Ftp::connect(addr);
            f.login();
            let left = |n: u64| big.len() as u64 - n;
            let cases: [(&str, u64, &[u8], u64); 4] = [
                ("big.bin", 0, &big, warm),
                // What is left after the offset decides.
                ("big.bin", left((512 << 10) + 1), &big, warm),
                ("big.bin", left(512 << 10), &big, 0),
                ("half.bin", 0, &half_mib, 0),
            ];
            for (path, rest, data, copied) in cases {
                let what = format!("MTU {mtu}: RETR {path} from {rest}");
                let before = f.stat_counters();
                let got = retr_at(&mut f, path, data, rest, &what);
                let now = f.stat_counters();
                assert_eq!(now.copied - before.copied, copied, "{what}: copied");
                assert_eq!(
                    now.spliced - before.spliced,
                    got.len() as u64 - copied,
                    "{what}: spliced"
                );
            }
            f.quit();
        });
    }
}
