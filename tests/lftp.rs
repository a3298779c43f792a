//! lftp against the real server: `mirror` of a whole tree (nested
//! directories, a symlink, an empty file, a file over 64 MiB, names with
//! spaces and UTF-8), `pget -n 4` segmented download, `ls` and `cls`.

mod common;

use common::*;

/// Over 64 MiB, and not a multiple of the page size or of 4 (so pget's
/// segments start at unaligned offsets).
const BIG: usize = (80 << 20) + 12_345;

fn mirror_tree(fx: &Fixture) {
    fx.standard_tree();
    fx.write("big/big.bin", &pattern(42, BIG));
    fx.write("a/b/c/d/e/leaf.txt", b"five levels down\n");
    fx.write("a/b/sibling.bin", &pattern(3, 77_777));
    fx.write("a/empty2", b"");
    mkdir(&fx.root, "a/empty-dir");
    fx.write(
        "a/\u{65e5}\u{672c}\u{8a9e} dir/caf\u{e9} cr\u{e8}me.txt",
        b"utf-8 in dir and file names\n",
    );
    symlink(&fx.root, "a/b/link-up", "../sibling-target.txt");
    fx.write(
        "a/sibling-target.txt",
        b"reached through a relative symlink\n",
    );
}

fn lftp_in(fx: &Fixture, srv: &Server, script: &str) -> Run {
    let r = lftp_env(fx, &srv.url(), script);
    r.ok();
    r
}

fn lftp_env(fx: &Fixture, url: &str, script: &str) -> Run {
    lftp(url, script, &fx.work, &fx.out("lftp-home"))
}

#[test]
fn mirror_whole_tree() {
    let fx = Fixture::new();
    mirror_tree(&fx);
    let mut srv = Server::builder().start(&fx);
    let r = lftp_in(&fx, &srv, "mirror -v / copy");
    let copy = fx.out("copy");
    assert_same_tree(&copy, &fx.root, &[]);
    // The empty directory came along too, and the 0-byte file is 0 bytes.
    assert!(copy.join("a/empty-dir").is_dir(), "{}", r.all());
    assert_eq!(std::fs::metadata(copy.join("empty")).unwrap().len(), 0);
    assert_eq!(
        std::fs::metadata(copy.join("big/big.bin")).unwrap().len(),
        BIG as u64
    );
    srv.assert_serving("hello.txt");
}

#[test]
fn mirror_subdirectory_in_active_mode() {
    let fx = Fixture::new();
    mirror_tree(&fx);
    let srv = Server::builder().start(&fx);
    lftp_in(&fx, &srv, "set ftp:passive-mode no; mirror /a copy-a");
    assert_same_tree(&fx.out("copy-a"), &fx.root.join("a"), &[]);
}

#[test]
fn pget_segmented_download() {
    let fx = Fixture::new();
    fx.write("big.bin", &pattern(43, BIG));
    let srv = Server::builder().start(&fx);
    // Rate-limited per connection (8 MB/s), so that the first segment
    // cannot fetch the whole file over loopback before the other three
    // start: with four working segments this takes about 3 s.
    lftp_in(
        &fx,
        &srv,
        "set net:limit-rate 8000000; pget -n 4 /big.bin -o big.bin",
    );
    assert_same_file(&fx.out("big.bin"), &fx.root.join("big.bin"));
    // It really was segmented: the server sent data from three non-zero
    // offsets (lftp ABORs a segment the first one has already covered, so
    // a segment that sent nothing shows up here as bytes=0).
    let log = srv.log_synced();
    let segments: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("RETR ") && l.contains("path=/big.bin"))
        .filter(|l| !l.contains(" offset=0"))
        .filter(|l| !l.contains(" bytes=0 "))
        .collect();
    assert!(
        segments.len() >= 3,
        "pget -n 4: {} segments at non-zero offsets delivered data (want 3); log:\n{log}",
        segments.len()
    );
}

fn names(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out
        .lines()
        .map(|l| l.trim_end_matches('/').to_string())
        .filter(|l| !l.is_empty())
        .collect();
    v.sort();
    v
}

#[test]
fn ls_and_cls() {
    let fx = Fixture::new();
    fx.standard_tree();
    let srv = Server::builder().start(&fx);

    let r = lftp_in(&fx, &srv, "cd /dir && cls -1");
    assert_eq!(names(&r.stdout), ["a.bin", "b.bin", "sub"], "{}", r.all());

    let r = lftp_in(&fx, &srv, "cls -1");
    assert_eq!(names(&r.stdout), STANDARD_TOP, "{}", r.all());

    // `ls` shows the server's LIST lines: each ends with its name.
    let r = lftp_in(&fx, &srv, "ls /dir");
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", r.stdout);
    for (line, name) in lines.iter().zip(["a.bin", "b.bin", "sub"]) {
        assert!(line.ends_with(&format!(" {name}")), "{line}");
    }
    assert!(lines[2].starts_with('d'), "{}", lines[2]);
    assert!(
        lines[0].split_whitespace().any(|f| f == "102400"),
        "{}",
        lines[0]
    );

    // cd into a directory with a space, get a file, in one session.
    let r = lftp_in(
        &fx,
        &srv,
        "cd /dir/sub/deeper && get c.txt -o got-c.txt && pwd",
    );
    assert!(r.stdout.contains("/dir/sub/deeper"), "{}", r.all());
    assert_same_file(&fx.out("got-c.txt"), &fx.root.join("dir/sub/deeper/c.txt"));
}

#[test]
fn cd_to_missing_directory_fails_cleanly() {
    let fx = Fixture::new();
    fx.standard_tree();
    let mut srv = Server::builder().start(&fx);
    let r = lftp_env(&fx, &srv.url(), "cd /no-such-dir && ls");
    r.fails();
    assert!(r.stderr.contains("550"), "{}", r.all());
    assert!(!fx.out("no-such-dir").exists());
    srv.assert_serving("dir/a.bin");
}
