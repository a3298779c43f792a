//! Python's ftplib against the real server (tests/clients/ftplib_client.py
//! does the FTP side and checks what it can; here we check its exit status,
//! which commands it used, and the files it saved).

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;

/// The files the script's download_all() fetches, in order (it saves the
/// i-th one as OUTDIR/i).
const FILES: [&str; 8] = [
    "dir/b.bin",
    "dir/a.bin",
    "hello.txt",
    "empty",
    "with space.txt",
    "h\u{e9}llo w\u{f6}rld.txt",
    "\u{65e5}\u{672c}.txt",
    "link-to-a",
];

/// 2001-09-09 01:46:40 UTC.
const KNOWN_MTIME: u64 = 1_000_000_000;

fn fixture() -> Fixture {
    let fx = Fixture::new();
    fx.standard_tree();
    set_mtime(&fx.root.join("hello.txt"), KNOWN_MTIME);
    fx
}

/// Runs one scenario of the script against `srv`; returns its stdout.
fn scenario(fx: &Fixture, srv: &Server, name: &str) -> String {
    let out = fx.out(name);
    std::fs::create_dir_all(&out).unwrap();
    let host = srv.addr().ip().to_string();
    let port = srv.port().to_string();
    python_scenario(
        "ftplib_client.py",
        name,
        &[
            &host,
            &port,
            &fx.root.to_string_lossy(),
            &out.to_string_lossy(),
        ],
    )
}

fn assert_downloads(fx: &Fixture, name: &str) {
    for (i, f) in FILES.iter().enumerate() {
        assert_same_file(&fx.out(&format!("{name}/{i}")), &fx.root.join(f));
    }
}

#[test]
fn pasv_downloads() {
    let fx = fixture();
    let srv = Server::builder().start(&fx);
    let out = scenario(&fx, &srv, "pasv");
    assert!(out.contains("*cmd* 'PASV'"), "{out}");
    assert!(out.contains("*resp* '227 "), "{out}");
    assert!(!out.contains("'EPSV'") && !out.contains("'PORT"));
    assert_downloads(&fx, "pasv");
}

#[test]
fn port_downloads() {
    let fx = fixture();
    let srv = Server::builder().start(&fx);
    let out = scenario(&fx, &srv, "port");
    assert!(out.contains("*cmd* 'PORT 127,0,0,1,"), "{out}");
    assert!(!out.contains("'PASV'") && !out.contains("'EPSV'"));
    assert_downloads(&fx, "port");
}

#[test]
fn epsv_downloads() {
    let fx = fixture();
    let srv = Server::builder().start(&fx);
    let out = scenario(&fx, &srv, "epsv");
    assert!(out.contains("*cmd* 'EPSV'"), "{out}");
    assert!(out.contains("*resp* '229 "), "{out}");
    assert!(!out.contains("'PASV'") && !out.contains("'PORT"));
    assert_downloads(&fx, "epsv");
}

#[test]
fn mlsd_facts() {
    let fx = fixture();
    let x = fx.write("mlsd/x.bin", &pattern(7, 4321));
    // Anonymous sees world-readable files only: 0604, not 0640.
    std::fs::set_permissions(&x, std::fs::Permissions::from_mode(0o604)).unwrap();
    let y = fx.write("mlsd/run me.sh", b"#!/bin/sh\n");
    std::fs::set_permissions(&y, std::fs::Permissions::from_mode(0o755)).unwrap();
    fx.write("mlsd/\u{fc}.txt", b"u");
    set_mtime(&fx.root.join("mlsd/\u{fc}.txt"), KNOWN_MTIME);
    let d = mkdir(&fx.root, "mlsd/d");
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o711)).unwrap();
    let srv = Server::builder().start(&fx);
    let out = scenario(&fx, &srv, "mlsd");
    assert!(out.contains("*cmd* 'MLSD dir'"), "{out}");
}

#[test]
fn nlst_names() {
    let fx = fixture();
    let srv = Server::builder().start(&fx);
    let out = scenario(&fx, &srv, "nlst");
    assert!(out.contains("*cmd* 'NLST dir'"), "{out}");
}

#[test]
fn size_and_mdtm() {
    let fx = fixture();
    let srv = Server::builder().start(&fx);
    let out = scenario(&fx, &srv, "size_mdtm");
    assert!(out.contains("*resp* '213 20010909014640'"), "{out}");
    assert!(
        out.contains(&format!("*resp* '213 {}'", (1 << 20) + 3)),
        "{out}"
    );
}

#[test]
fn rest_then_retr_gives_the_tail() {
    let fx = fixture();
    // Several pipe-fulls, with a size that is not a multiple of the page.
    fx.write("rest.bin", &pattern(5, (5 << 20) + 7));
    let srv = Server::builder().start(&fx);
    let out = scenario(&fx, &srv, "rest");
    assert!(out.contains("*cmd* 'REST 12345'"), "{out}");
    assert!(out.contains("*resp* '350"), "{out}");
    for (saved, src) in [
        ("dir_b.bin.tail", "dir/b.bin"),
        ("rest.bin.tail", "rest.bin"),
    ] {
        let tail = std::fs::read(fx.out(&format!("rest/{saved}"))).unwrap();
        assert_bytes_eq("REST 12345 tail", &tail, &fx.read(src)[12345..]);
    }
}

#[test]
fn abort_during_a_large_transfer() {
    let fx = fixture();
    fx.write("big.bin", &pattern(9, 48 << 20));
    let mut srv = Server::builder().start(&fx);
    let out = scenario(&fx, &srv, "abort");
    // ftplib's abort() reads the 426 itself (the script checks it); the
    // 226 that follows is printed.
    assert!(out.contains("*resp* '226 ABOR"), "{out}");
    assert_same_file(&fx.out("abort/after-abort"), &fx.root.join("dir/b.bin"));
    srv.assert_serving("dir/a.bin");
}

#[test]
fn type_a_sends_crlf() {
    let fx = fixture();
    let srv = Server::builder().start(&fx);
    let out = scenario(&fx, &srv, "ascii");
    assert!(out.contains("*cmd* 'TYPE A'"), "{out}");
    let wire = std::fs::read(fx.out("ascii/wire")).unwrap();
    let src = fx.read("hello.txt");
    let mut want = Vec::new();
    for &b in &src {
        if b == b'\n' {
            want.push(b'\r');
        }
        want.push(b);
    }
    assert_bytes_eq("TYPE A wire bytes", &wire, &want);
}
