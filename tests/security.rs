//! Security (RFC 2577 and the virtual root): every escape attempt is
//! refused, nothing leaves the root or goes to a third host, and the
//! server keeps serving afterwards.

mod common;

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::*;

const SECRET: &[u8] = b"TOP SECRET: outside the served root\n";
/// Another host as far as RFC 2577 is concerned (Linux routes all of
/// 127/8 to lo).
const THIRD_HOST: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

/// The standard tree, plus a secret file next to the root (in `work`,
/// reachable as `../work/secret.txt` from the root) and escape links.
fn fixture() -> Fixture {
    let fx = Fixture::new();
    fx.standard_tree();
    std::fs::write(fx.work.join("secret.txt"), SECRET).unwrap();
    symlink(&fx.root, "etc-link", "/etc");
    symlink(&fx.root, "passwd-link", "/etc/passwd");
    symlink(&fx.root, "up-link", "../work");
    symlink(&fx.root, "secret-link", "../work/secret.txt");
    symlink(&fx.root, "dir/sub/deep-up", "../../../work/secret.txt");
    symlink(
        &fx.root,
        "abs-secret",
        &fx.work.join("secret.txt").to_string_lossy(),
    );
    fx
}

/// The names NLST gives for `line` (e.g. "NLST ..").
fn nlst(f: &mut Ftp, line: &str) -> Vec<String> {
    let mut v: Vec<String> = f
        .listing(line)
        .lines()
        .map(|l| l.rsplit('/').next().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// The fixture's links whose targets lie outside the root: resolved with
/// the root as `/` they lead nowhere, so no listing shows them.
const LINKS_OUT: [&str; 5] = [
    "etc-link",
    "passwd-link",
    "up-link",
    "secret-link",
    "abs-secret",
];

/// What NLST at the root must show: every name but dot-files and the
/// links that lead out of the root.
fn root_names(fx: &Fixture) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(&fx.root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && !LINKS_OUT.contains(&n.as_str()))
        .collect();
    v.sort();
    v
}

#[track_caller]
fn assert_pwd(f: &mut Ftp, want: &str) {
    let r = f.expect("PWD", 257);
    assert!(
        r.lines[0].starts_with(&format!("257 \"{want}\"")),
        "PWD: {r:?}, want {want}"
    );
}

/// Sends a transfer command that must be refused with 550 before any data
/// moves: a data connection is ready, and it must deliver no byte.
#[track_caller]
fn refused_transfer(f: &mut Ftp, line: &str) {
    let mut data = f.epsv_connect();
    let r = f.cmd(line);
    assert_eq!(r.code, 550, "{line}: {r:?}");
    data.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = Vec::new();
    let got = match data.read_to_end(&mut buf) {
        Ok(_) => buf,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => buf,
        Err(_) => buf,
    };
    assert!(
        got.is_empty(),
        "{line}: refused, yet {} bytes came over the data connection: {:?}",
        got.len(),
        String::from_utf8_lossy(&got[..got.len().min(200)])
    );
}

#[test]
fn cwd_dotdot_stays_in_root() {
    let fx = fixture();
    let mut srv = Server::builder().start(&fx);
    let mut f = srv.login();
    let roots = root_names(&fx);
    for escape in [
        "../..",
        "..",
        "/..",
        "../../../../..",
        "/../../",
        "dir/../../..",
    ] {
        f.expect("CWD /", 250);
        let r = f.cmd(&format!("CWD {escape}"));
        // Either refused, or clamped at the root: never above it.
        assert!(r.code == 250 || r.code == 550, "CWD {escape}: {r:?}");
        assert_pwd(&mut f, "/");
        assert_eq!(nlst(&mut f, "NLST"), roots, "after CWD {escape}");
    }
    // CDUP at the root stays at the root.
    let r = f.cmd("CDUP");
    assert!(r.code == 250 || r.code == 200 || r.code == 550, "{r:?}");
    assert_pwd(&mut f, "/");
    // From a subdirectory, .. goes up exactly one level and no further.
    f.expect("CWD /dir/sub", 250);
    f.expect("CWD ../../../..", 250);
    assert_pwd(&mut f, "/");
    // Listing the parent of the root lists the root itself: neither the
    // root's own name nor its sibling `work` appears.
    for line in ["NLST ..", "NLST ../..", "NLST /../..", "NLST dir/../../.."] {
        let names = nlst(&mut f, line);
        assert_eq!(names, roots, "{line}");
    }
    let list = f.listing("LIST ../..");
    assert!(
        !list.contains(" work") && !list.contains(" root\r"),
        "LIST ../.. shows the root's parent:\n{list}"
    );
    // A real directory above the root is not reachable by name either.
    for line in ["CWD ../work", "CWD /../work", "CWD ../../etc", "CWD /etc"] {
        let r = f.expect(line, 550);
        assert!(!r.text().contains("secret"), "{r:?}");
        assert_pwd(&mut f, "/");
    }
    f.quit();
    srv.assert_serving("hello.txt");
}

#[test]
fn retr_outside_the_root_is_refused() {
    let fx = fixture();
    let mut srv = Server::builder().start(&fx);
    let mut f = srv.login();
    for path in [
        "../../etc/passwd",
        "/etc/passwd",
        "//etc/passwd",
        "/../../../../etc/passwd",
        "../work/secret.txt",
        "/../work/secret.txt",
        "dir/../../work/secret.txt",
        "dir/sub/../../../work/secret.txt",
    ] {
        refused_transfer(&mut f, &format!("RETR {path}"));
        f.expect(&format!("SIZE {path}"), 550);
        f.expect(&format!("MDTM {path}"), 550);
        let r = f.cmd(&format!("MLST {path}"));
        assert_eq!(r.code, 550, "MLST {path}: {r:?}");
        let r = f.cmd(&format!("STAT {path}"));
        assert!(
            r.code >= 500 && !r.text().contains("root:"),
            "STAT {path}: {r:?}"
        );
    }
    // Listings of directories outside: refused, or the root itself.
    for path in ["/etc", "../../etc", "../work"] {
        refused_transfer(&mut f, &format!("LIST {path}"));
        refused_transfer(&mut f, &format!("NLST {path}"));
    }
    // The session is fine afterwards.
    assert_bytes_eq(
        "RETR hello.txt",
        &f.retr("hello.txt"),
        &fx.read("hello.txt"),
    );
    f.quit();
    srv.assert_serving("dir/a.bin");
}

#[test]
fn symlinks_out_of_the_root_are_refused() {
    let fx = fixture();
    let mut srv = Server::builder().start(&fx);
    let mut f = srv.login();
    // Positive control: a symlink that stays inside the root works, so the
    // refusals below are about where the links point, not about links.
    assert_bytes_eq("link-to-a", &f.retr("link-to-a"), &fx.read("dir/a.bin"));

    for dir in ["etc-link", "up-link", "etc-link/", "up-link/../up-link"] {
        let r = f.expect(&format!("CWD {dir}"), 550);
        assert!(!r.text().contains("passwd"), "{r:?}");
        assert_pwd(&mut f, "/");
    }
    // `..` after a link is resolved on the virtual path (like a shell's
    // `cd -L`): `/up-link/..` is `/`, never the directory above `work`.
    let r = f.cmd("CWD /up-link/..");
    assert!(r.code == 250 || r.code == 550, "{r:?}");
    assert_pwd(&mut f, "/");
    assert_eq!(nlst(&mut f, "NLST"), root_names(&fx));
    for path in [
        "etc-link/passwd",
        "/etc-link/passwd",
        "passwd-link",
        "up-link/secret.txt",
        "secret-link",
        "dir/sub/deep-up",
        "abs-secret",
    ] {
        refused_transfer(&mut f, &format!("RETR {path}"));
        f.expect(&format!("SIZE {path}"), 550);
        f.expect(&format!("MDTM {path}"), 550);
    }
    for path in ["etc-link", "up-link", "etc-link/"] {
        refused_transfer(&mut f, &format!("MLSD {path}"));
        // NLST/LIST of the link: refused, or at most the link itself;
        // never the contents of /etc or ../work.
        let mut data = f.epsv_connect();
        let r = f.cmd(&format!("NLST {path}"));
        if r.code == 150 {
            let got = read_all_lenient(&mut data);
            let done = f.read_reply();
            assert_eq!(done.code, 226);
            let text = String::from_utf8_lossy(&got);
            assert!(
                !text.contains("passwd") && !text.contains("secret"),
                "NLST {path} listed outside the root:\n{text}"
            );
        } else {
            assert_eq!(r.code, 550, "NLST {path}: {r:?}");
        }
    }
    f.quit();
    srv.assert_serving("hello.txt");
}

fn listener_on_127_0_0_2() -> TcpListener {
    TcpListener::bind("127.0.0.2:0")
        .expect("cannot listen on 127.0.0.2 (Linux routes all of 127/8 to lo)")
}

#[test]
fn port_and_eprt_to_a_third_host_are_refused() {
    let fx = fixture();
    let mut srv = Server::builder().start(&fx);
    let l = listener_on_127_0_0_2();
    let target = l.local_addr().unwrap();
    let mut f = srv.login();

    let r = f.expect(&format!("PORT {}", port_arg(target)), 500);
    assert!(!r.text().is_empty());
    // The refused PORT set nothing up: a transfer has no data connection.
    f.expect("RETR hello.txt", 425);
    assert!(
        connection_arrives(&l, Duration::from_millis(800)).is_none(),
        "the server connected to 127.0.0.2 after a refused PORT"
    );

    f.expect(&format!("EPRT {}", eprt_arg(target)), 500);
    f.expect("LIST", 425);
    assert!(
        connection_arrives(&l, Duration::from_millis(800)).is_none(),
        "the server connected to 127.0.0.2 after a refused EPRT"
    );

    // The session goes on.
    assert_bytes_eq(
        "RETR after refusals",
        &f.retr("hello.txt"),
        &fx.read("hello.txt"),
    );
    f.quit();
    srv.assert_serving("dir/a.bin");
}

#[test]
fn port_to_a_privileged_port_is_refused() {
    let fx = fixture();
    let mut srv = Server::builder().start(&fx);
    let mut f = srv.login();
    for port in [21u16, 25, 80, 1023] {
        let a: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        f.expect(&format!("PORT {}", port_arg(a)), 504);
        f.expect("RETR hello.txt", 425);
        f.expect(&format!("EPRT {}", eprt_arg(a)), 504);
        f.expect("RETR hello.txt", 425);
    }
    // An unprivileged port of the client's own address is fine.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    f.expect(&format!("PORT {}", port_arg(l.local_addr().unwrap())), 200);
    f.send_raw(b"RETR hello.txt\r\n");
    let mut conn = connection_arrives(&l, IO_TIMEOUT).expect("no active connection");
    conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert_eq!(f.read_reply().code, 150);
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    assert_eq!(f.read_reply().code, 226);
    assert_bytes_eq("PORT download", &got, &fx.read("hello.txt"));
    f.quit();
    srv.assert_serving("hello.txt");
}

fn passive_theft(extended: bool) {
    let fx = fixture();
    let mut srv = Server::builder().start(&fx);
    let mut f = srv.login();
    let want = fx.read("dir/b.bin");
    let target = if extended { f.epsv() } else { f.pasv() };
    // The thief gets there first; then the real client.
    let mut thief = connect_from(THIRD_HOST, target);
    let mut real = TcpStream::connect(target).unwrap();
    real.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    f.expect("RETR dir/b.bin", 150);
    let mut got = Vec::new();
    real.read_to_end(&mut got).unwrap();
    assert_eq!(f.read_reply().code, 226);
    assert_bytes_eq("the real client's download", &got, &want);
    let stolen = read_all_lenient(&mut thief);
    assert!(
        stolen.is_empty(),
        "a data connection from 127.0.0.2 received {} bytes",
        stolen.len()
    );
    assert!(
        srv.log_synced().contains("127.0.0.2"),
        "the refused connection is not logged"
    );
    f.quit();
    srv.assert_serving("hello.txt");
}

#[test]
fn passive_connection_from_a_third_host_is_dropped_epsv() {
    passive_theft(true);
}

#[test]
fn passive_connection_from_a_third_host_is_dropped_pasv() {
    passive_theft(false);
}

#[test]
fn allow_foreign_data_permits_fxp() {
    let fx = fixture();
    let mut srv = Server::builder().arg("--allow-foreign-data").start(&fx);
    let mut f = srv.login();
    let want = fx.read("dir/b.bin");

    // Active to a third host: accepted, and the file arrives there.
    let l = listener_on_127_0_0_2();
    f.expect(&format!("PORT {}", port_arg(l.local_addr().unwrap())), 200);
    f.send_raw(b"RETR dir/b.bin\r\n");
    let mut conn = connection_arrives(&l, IO_TIMEOUT).expect("no connection to 127.0.0.2");
    conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert_eq!(f.read_reply().code, 150);
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    assert_eq!(f.read_reply().code, 226);
    assert_bytes_eq("PORT 127.0.0.2 download", &got, &want);

    // EPRT likewise.
    f.expect(&format!("EPRT {}", eprt_arg(l.local_addr().unwrap())), 200);
    f.send_raw(b"RETR hello.txt\r\n");
    let mut conn = connection_arrives(&l, IO_TIMEOUT).expect("no connection to 127.0.0.2");
    conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    assert_eq!(f.read_reply().code, 150);
    let mut got = Vec::new();
    conn.read_to_end(&mut got).unwrap();
    assert_eq!(f.read_reply().code, 226);
    assert_bytes_eq("EPRT 127.0.0.2 download", &got, &fx.read("hello.txt"));

    // Passive from a third host: accepted.
    let target = f.epsv();
    let mut other = connect_from(THIRD_HOST, target);
    f.expect("RETR dir/b.bin", 150);
    let mut got = Vec::new();
    other.read_to_end(&mut got).unwrap();
    assert_eq!(f.read_reply().code, 226);
    assert_bytes_eq("passive from 127.0.0.2", &got, &want);
    f.quit();
    srv.assert_serving("hello.txt");
}

#[test]
fn symlink_swapped_during_requests_never_escapes() {
    let fx = fixture();
    let mut srv = Server::builder().start(&fx);
    let inside = fx.read("dir/a.bin");
    symlink(&fx.root, "flip", "dir/a.bin");
    // A thread keeps swapping `flip` atomically (rename over it) between a
    // target inside the root and the secret outside it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let root = fx.root.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let targets = ["dir/a.bin", "../work/secret.txt"];
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let tmp = root.join(".flip.tmp");
                let _ = std::fs::remove_file(&tmp);
                std::os::unix::fs::symlink(targets[i % 2], &tmp).unwrap();
                std::fs::rename(&tmp, root.join("flip")).unwrap();
                i += 1;
            }
            i
        })
    };
    let mut f = srv.login();
    let (mut served, mut refused) = (0, 0);
    for _ in 0..300 {
        let mut data = f.epsv_connect();
        let r = f.cmd("RETR flip");
        match r.code {
            150 => {
                let got = read_all_lenient(&mut data);
                assert_eq!(f.read_reply().code, 226);
                assert!(
                    got != SECRET,
                    "RETR through a swapped symlink served the file outside the root"
                );
                assert_bytes_eq("RETR flip", &got, &inside);
                served += 1;
            }
            550 => refused += 1,
            _ => panic!("RETR flip: {r:?}"),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flips = flipper.join().unwrap();
    assert!(flips > 10, "the link was swapped only {flips} times");
    eprintln!("swapped {flips} times: {served} served from inside, {refused} refused");
    f.quit();
    srv.assert_serving("hello.txt");
}

#[test]
fn names_with_line_breaks_cannot_forge_listing_entries() {
    let fx = fixture();
    // A file whose name would, printed raw, add a fake `forged.txt` line.
    fx.write("evil\r\nforged.txt", b"x");
    fx.write("evil2\nforged2.txt", b"x");
    let mut srv = Server::builder().start(&fx);
    let mut f = srv.login();
    for line in ["NLST", "LIST", "MLSD"] {
        let text = f.listing(line);
        for l in text.split('\n') {
            let l = l.trim_end_matches('\r');
            assert!(
                !l.ends_with("forged.txt") && !l.ends_with("forged2.txt"),
                "{line} shows a forged entry {l:?}:\n{text}"
            );
        }
        // Every line is still a well-formed entry.
        assert!(text.ends_with("\r\n"), "{line}: {text:?}");
    }
    f.quit();
    srv.assert_serving("hello.txt");
}
