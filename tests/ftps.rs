//! FTPS (RFC 4217) against the real server with real clients: curl, lftp,
//! Python's ftplib.FTP_TLS and rclone, with a throwaway CA and server
//! certificate made in each test (rcgen). Downloads and uploads are
//! compared byte for byte; the session-reuse rule (a data connection must
//! resume its own control connection's TLS session) is tested both ways.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// A test PKI: a CA, a server certificate for `localhost` and 127.0.0.1
/// signed by it, and a second, unrelated CA.
struct Pki {
    ca: PathBuf,
    other_ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn make_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    (params.self_signed(&key).unwrap(), key)
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let (ca, ca_key) = make_ca("ringftp test CA");
        let (other, _) = make_ca("some other CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        let pki = Pki {
            ca: dir.join("ca.pem"),
            other_ca: dir.join("other-ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&pki.ca, ca.pem()).unwrap();
        std::fs::write(&pki.other_ca, other.pem()).unwrap();
        // A full chain: leaf, then the CA.
        std::fs::write(&pki.cert, cert.pem() + &ca.pem()).unwrap();
        std::fs::write(&pki.key, key.serialize_pem()).unwrap();
        pki
    }

    fn ca(&self) -> String {
        self.ca.to_string_lossy().into_owned()
    }
}

/// A fixture with `alice` (all permissions, home /alice holding
/// `file.bin`), a PKI, and a server with FTPS on (explicit on the first
/// listener, implicit on `implicit`).
struct Ftps {
    fx: Fixture,
    pki: Pki,
    srv: Server,
    implicit: SocketAddr,
    data: Vec<u8>,
}

fn ftps(extra: &[&str]) -> Ftps {
    let fx = Fixture::new();
    let pki = Pki::new(&fx.out("pki"));
    let data = pattern(7, 3 * 1024 * 1024 + 12345);
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    fx.write("alice/file.bin", &data);
    // At most 64 KiB: a plain download of it goes from one read; over
    // kTLS it stays zero-copy, and in userspace TLS it is sealed as any.
    fx.write("alice/small.bin", &pattern(8, 5000));
    fx.write("pub.txt", b"anonymous may read this\n");
    let srv = Server::builder()
        .users(&users)
        .args(&[
            "--tls-cert",
            &pki.cert.to_string_lossy(),
            "--tls-key",
            &pki.key.to_string_lossy(),
            "--listen-implicit",
            "127.0.0.1:0",
        ])
        .args(extra)
        .start(&fx);
    let line = srv
        .more_stdout(Duration::from_secs(5))
        .into_iter()
        .find(|l| l.ends_with("(implicit FTPS)"))
        .expect("no implicit listener line");
    let implicit = line
        .trim_start_matches("listening on ")
        .trim_end_matches(" (implicit FTPS)")
        .parse()
        .unwrap();
    Ftps {
        fx,
        pki,
        srv,
        implicit,
        data,
    }
}

impl Ftps {
    fn url(&self, path: &str) -> String {
        format!("ftp://alice:alice-pw@localhost:{}/{path}", self.srv.port())
    }

    fn home(&self) -> PathBuf {
        self.fx.root.join("alice")
    }

    fn python(&self, scenario: &str) -> String {
        let home = self.home().to_string_lossy().into_owned();
        let port = self.srv.port().to_string();
        python_scenario(
            "ftps_client.py",
            scenario,
            &[
                "localhost",
                &port,
                &self.pki.ca(),
                "alice",
                "alice-pw",
                &home,
            ],
        )
    }

    /// curl over explicit FTPS sending `command` (`-Q`) before listing the
    /// home, verbose: the replies are its stderr's `< ` lines.
    fn quote(&self, command: &str) -> Run {
        let out = curl(&[
            "--ssl-reqd",
            "--cacert",
            &self.pki.ca(),
            "-Q",
            command,
            &self.url(""),
            "-v",
            "-o",
            "/dev/null",
        ]);
        out.ok();
        out
    }

    /// The FTPS byte counters of STAT: (userspace, kernel).
    fn tls_counters(&self) -> (u64, u64) {
        let out = self.quote("STAT");
        let line = out
            .stderr
            .lines()
            .find(|l| l.contains("(all sessions) FTPS data:"))
            .unwrap_or_else(|| panic!("no FTPS line in STAT:\n{}", out.stderr));
        // "ringftp shard N (all sessions) FTPS data: U bytes ..., K bytes ..."
        let nums: Vec<u64> = line
            .split(':')
            .nth(1)
            .unwrap()
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (nums[0], nums[1])
    }
}

#[test]
fn curl_downloads_in_tls12_and_tls13_are_byte_exact() {
    let t = ftps(&[]);
    for (flags, version) in [
        (&["--tlsv1.2", "--tls-max", "1.2"][..], "TLSv1.2"),
        (&["--tlsv1.3"][..], "TLSv1.3"),
    ] {
        let mut args = vec!["--ssl-reqd", "--cacert", t.pki.ca.to_str().unwrap()];
        args.extend_from_slice(flags);
        let out = t.fx.out(&format!("{version}.bin"));
        curl_download(
            Place::Here,
            &t.url("file.bin"),
            &args,
            &out,
            &t.home().join("file.bin"),
        );
        t.srv.wait_log(
            &format!("data connection in TLS: {version}"),
            1,
            Duration::from_secs(20),
        );
    }
    // Both went through the in-place userspace layer here (no kTLS), or
    // through the kernel where it has TLS: either way, the counters moved.
    let (user, kernel) = t.tls_counters();
    assert!(user + kernel >= 2 * t.data.len() as u64, "{user} {kernel}");
}

#[test]
fn curl_two_urls_in_one_invocation_resume_the_session() {
    let t = ftps(&[]);
    let a = t.fx.out("a.bin");
    let b = t.fx.out("b.bin");
    let r = curl(&[
        "-v",
        "--ssl-reqd",
        "--cacert",
        &t.pki.ca(),
        &t.url("file.bin"),
        "-o",
        a.to_str().unwrap(),
        &t.url("file.bin"),
        "-o",
        b.to_str().unwrap(),
    ]);
    r.ok();
    assert_same_file(&a, &t.home().join("file.bin"));
    assert_same_file(&b, &t.home().join("file.bin"));
    assert_eq!(
        r.stderr.matches("SSL re-using session").count(),
        2,
        "{}",
        r.stderr
    );
    assert!(!t.srv.log_synced().contains("code=522"));
}

#[test]
fn curl_upload_then_compare() {
    let t = ftps(&[]);
    let src = t.fx.out("up.src");
    std::fs::write(&src, pattern(11, 5 * 1024 * 1024 + 7)).unwrap();
    curl(&[
        "--ssl-reqd",
        "--cacert",
        &t.pki.ca(),
        "-T",
        src.to_str().unwrap(),
        &t.url("up.bin"),
    ])
    .ok();
    assert_same_file(&t.home().join("up.bin"), &src);
    // And back down.
    let back = t.fx.out("back.bin");
    curl_download(
        Place::Here,
        &t.url("up.bin"),
        &["--ssl-reqd", "--cacert", t.pki.ca.to_str().unwrap()],
        &back,
        &src,
    );
}

#[test]
fn curl_implicit_ftps_and_listing() {
    let t = ftps(&[]);
    let url = format!(
        "ftps://alice:alice-pw@localhost:{}/file.bin",
        t.implicit.port()
    );
    let out = t.fx.out("implicit.bin");
    let log = curl_download(
        Place::Here,
        &url,
        &["--cacert", t.pki.ca.to_str().unwrap()],
        &out,
        &t.home().join("file.bin"),
    )
    .stderr;
    assert!(!log.contains("AUTH"), "implicit FTPS sent AUTH:\n{log}");
    // A listing over TLS (the data connection closes with close_notify).
    let url = format!("ftps://alice:alice-pw@localhost:{}/", t.implicit.port());
    let r = curl(&["--cacert", &t.pki.ca(), "-l", &url]);
    r.ok();
    assert!(r.stdout.lines().any(|l| l == "file.bin"), "{}", r.stdout);
}

#[test]
fn curl_with_the_wrong_ca_fails() {
    let t = ftps(&[]);
    let r = curl(&[
        "--ssl-reqd",
        "--cacert",
        t.pki.other_ca.to_str().unwrap(),
        &t.url("file.bin"),
        "-o",
        "/dev/null",
    ]);
    r.fails();
    assert_eq!(r.status.code(), Some(60), "{}", r.all());
    // The server is unharmed.
    let out = t.fx.out("after.bin");
    curl_download(
        Place::Here,
        &t.url("file.bin"),
        &["--ssl-reqd", "--cacert", t.pki.ca.to_str().unwrap()],
        &out,
        &t.home().join("file.bin"),
    );
}

#[test]
fn lftp_mirror_both_ways_over_ftps() {
    let t = ftps(&[]);
    let local = t.fx.out("tree");
    write(&local, "a/x.bin", &pattern(3, 700_000));
    write(&local, "a/b/y.txt", b"hello\n");
    write(&local, "z.bin", &pattern(4, 2_000_000));
    mkdir(&local, "empty");
    let settings = format!(
        "set ftp:ssl-allow yes; set ftp:ssl-force true; set ftp:ssl-protect-data true; \
         set ftp:ssl-protect-list true; set ssl:ca-file {}; set ssl:verify-certificate yes",
        t.pki.ca()
    );
    let url = format!("ftp://alice:alice-pw@localhost:{}", t.srv.port());
    let home = t.fx.out("lftp-home");
    lftp_in(
        Place::Here,
        &url,
        &settings,
        "mirror -R tree up",
        &t.fx.work,
        &home,
    )
    .ok();
    assert_same_tree(&t.home().join("up"), &local, &[]);
    lftp_in(
        Place::Here,
        &url,
        &settings,
        "mirror up back",
        &t.fx.work,
        &home,
    )
    .ok();
    assert_same_tree(&t.fx.out("back"), &local, &[]);
    let log = t.srv.log_synced();
    assert!(log.contains("control connection in TLS"), "{log}");
    assert!(!log.contains("code=522"), "{log}");
}

/// lftp connecting to an address (not a name) sends that address as its
/// TLS SNI, which RFC 6066 forbids and rustls ignores with a WARN line per
/// connection: the download works, and the log holds no such line (nor
/// any other WARN), with the harness's `debug` and with a span filter
/// (which lets through every event inside the spans it enables, the
/// handshakes included, unless the quieting is a filter of its own);
/// naming rustls in the filter brings the line back.
#[test]
fn lftp_to_an_address_over_ftps_logs_no_warning() {
    for (level, warned) in [
        (None, false),
        (Some("info,ringftp[session]=debug"), false),
        (Some("debug,rustls=warn"), true),
    ] {
        let extra: Vec<&str> = level.iter().flat_map(|l| ["--log-level", *l]).collect();
        let t = ftps(&extra);
        let settings = format!(
            "set ftp:ssl-allow yes; set ftp:ssl-force true; set ftp:ssl-protect-data true; \
             set ssl:ca-file {}; set ssl:verify-certificate yes",
            t.pki.ca()
        );
        let url = format!("ftp://alice:alice-pw@127.0.0.1:{}", t.srv.port());
        let home = t.fx.out("lftp-home");
        for _ in 0..2 {
            lftp_in(
                Place::Here,
                &url,
                &settings,
                "get file.bin -o got.bin",
                &t.fx.work,
                &home,
            )
            .ok();
            assert_eq!(
                std::fs::read(t.fx.work.join("got.bin")).unwrap(),
                std::fs::read(t.home().join("file.bin")).unwrap()
            );
        }
        let log = t.srv.log_synced();
        assert!(
            log.contains("control connection in TLS"),
            "{level:?}: {log}"
        );
        assert_eq!(log.contains("Illegal SNI"), warned, "{level:?}: {log}");
        if !warned {
            assert!(!log.contains(" WARN "), "{level:?}: {log}");
        }
    }
}

/// A client the implicit-FTPS listener refuses before the greeting reads
/// a TLS alert that names why, where a plain `421` would be a malformed
/// record to it ("wrong version number"): curl, refused for its address
/// (`--deny`), reports "alert access denied"; refused beyond
/// `--max-sessions`, "alert internal error". The explicit listener still
/// answers those refusals with a 421 line, and an allowed client of the
/// implicit listener still downloads.
#[test]
fn implicit_ftps_refusals_are_tls_alerts() {
    let t = ftps(&["--deny", "127.0.0.2/32", "--max-sessions", "1"]);
    let ca = t.pki.ca();
    let implicit = |from: &str| {
        curl(&[
            "-4",
            "--interface",
            from,
            "--cacert",
            &ca,
            "-u",
            "alice:alice-pw",
            &format!("ftps://localhost:{}/file.bin", t.implicit.port()),
            "-o",
            "/dev/null",
        ])
    };
    // Denied address: access_denied.
    let r = implicit("127.0.0.2");
    r.fails();
    assert_eq!(r.status.code(), Some(35), "{}", r.all());
    assert!(r.stderr.contains("alert access denied"), "{}", r.all());
    // Allowed: the download works (and the session ends before the next).
    let out = t.fx.out("allowed.bin");
    curl_download(
        Place::Here,
        &format!(
            "ftps://alice:alice-pw@localhost:{}/file.bin",
            t.implicit.port()
        ),
        &["--cacert", t.pki.ca.to_str().unwrap()],
        &out,
        &t.home().join("file.bin"),
    );
    // The one session --max-sessions allows, held on the explicit port,
    // waits for its place to be free again first.
    let mut held = None;
    for _ in 0..100 {
        let mut f = Ftp::after_greeting(TcpStream::connect(t.srv.addr()).unwrap());
        if f.read_reply().code == 220 {
            held = Some(f);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut held = held.expect("the allowed session's place never came back");
    let r = implicit("127.0.0.1");
    r.fails();
    assert_eq!(r.status.code(), Some(35), "{}", r.all());
    assert!(r.stderr.contains("alert internal error"), "{}", r.all());
    // The explicit listener: a 421 line, as ever.
    let mut c = TcpStream::connect(t.srv.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let got = String::from_utf8_lossy(&read_to_close(&mut c)).into_owned();
    assert!(got.starts_with("421 "), "{got:?}");
    // The log, synced through the held session (a new one would be
    // refused), says why each was refused.
    held.expect("NOOP refusals-logged", 200);
    let log = t
        .srv
        .wait_log("refusals-logged", 1, Duration::from_secs(20));
    assert!(log.contains("refused: --deny 127.0.0.2/32"), "{log}");
    assert!(log.contains("refused: Too many users"), "{log}");
}

/// A refused client that spoke before the server got to it (an
/// implicit-FTPS client's ClientHello; here the server is stopped while
/// two clients connect and send) reads the refusal and then a clean end
/// of stream, not a reset: the server reads what the client sent before
/// it closes (a socket closed with unread bytes sends a reset, and not
/// every client stack hands over the reply that came before it).
#[test]
fn a_refusal_after_the_client_spoke_ends_without_a_reset() {
    // Only 127.0.0.2 may connect: these clients, from 127.0.0.1, may not.
    let t = ftps(&["--allow", "127.0.0.2/32"]);
    t.srv.signal(libc::SIGSTOP);
    // kill(2) returns before the threads stop: wait until every one is
    // stopped ('T' in /proc/PID/task/*/stat), or a running shard could
    // refuse a client before it has sent anything.
    let tasks = format!("/proc/{}/task", t.srv.pid());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !std::fs::read_dir(&tasks).unwrap().all(|task| {
        let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap_or_default();
        // The state follows the ") " that ends the command name.
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('T'))
    }) {
        assert!(
            std::time::Instant::now() < deadline,
            "the server never stopped"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let clients: Vec<TcpStream> = [t.implicit, t.srv.addr()]
        .into_iter()
        .map(|addr| {
            // The kernel completes the connection while the server is
            // stopped; the bytes wait in the new socket.
            let mut c = TcpStream::connect(addr).unwrap();
            c.write_all(&[0x16, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3])
                .unwrap();
            c
        })
        .collect();
    // Not before the bytes are in the server's socket (loopback may hand
    // them over late, from ksoftirqd, on a busy machine).
    for c in &clients {
        let (server, client) = (
            c.peer_addr().unwrap().port(),
            c.local_addr().unwrap().port(),
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while tcp_socket(server, client).map(|(_, queued)| queued) != Some(11) {
            assert!(
                std::time::Instant::now() < deadline,
                "the bytes never reached the server's socket"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    t.srv.signal(libc::SIGCONT);
    for (i, mut c) in clients.iter().enumerate() {
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut got = Vec::new();
        let end = c.read_to_end(&mut got);
        assert!(end.is_ok(), "client {i}: {end:?} after {got:?}");
        if i == 0 {
            assert_eq!(got, [21, 3, 3, 0, 2, 2, 49]);
        } else {
            let text = String::from_utf8_lossy(&got);
            assert!(text.starts_with("421 Access denied"), "{text:?}");
        }
    }
    // Linux reads a FIN then a reset as a clean end, so the reset shows
    // in the socket instead: one that got only the FIN stays in
    // CLOSE_WAIT until it is closed; a reset takes it out of the table at
    // once. (Given time to come, a reset cannot be missed; none comes.)
    std::thread::sleep(Duration::from_millis(300));
    for (i, c) in clients.iter().enumerate() {
        let (port, server) = (
            c.local_addr().unwrap().port(),
            c.peer_addr().unwrap().port(),
        );
        assert_eq!(
            tcp_socket(port, server).map(|(state, _)| state),
            Some(8),
            "client {i} (port {port}): not in CLOSE_WAIT, so it was reset"
        );
    }
}

/// The IPv4 loopback socket from local port `local` to remote port
/// `remote` ([`tcp4_sockets`]): its TCP state (8 = CLOSE_WAIT) and the
/// bytes waiting in its receive queue; None when it is not there.
fn tcp_socket(local: u16, remote: u16) -> Option<(u8, u64)> {
    let lo = |port| std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port);
    tcp4_sockets()
        .into_iter()
        .find(|t| t.local == lo(local) && t.remote == lo(remote))
        .map(|t| (t.state, t.rx_queue))
}

#[test]
fn python_stock_ftp_tls_is_refused_and_a_reusing_client_works() {
    let t = ftps(&[]);
    t.python("stock_refused");
    t.python("reuse_ok");
    t.srv
        .wait_log("did not resume this session", 1, Duration::from_secs(20));
}

#[test]
fn python_stock_ftp_tls_works_with_reuse_off() {
    let t = ftps(&["--tls-session-reuse", "off"]);
    t.python("stock_ok");
}

#[test]
fn a_data_connection_resuming_another_sessions_tls_session_is_refused() {
    let t = ftps(&[]);
    t.python("cross_session_refused");
}

/// An upload whose data connection's TLS is refused (522: no session
/// reuse, or no TLS at all) has removed its new file by the time the
/// client reads the 522. (The 522 went out before the removal, and a
/// client reading it at once found the file in 1 to 8 % of tries.)
#[test]
fn a_refused_tls_upload_leaves_no_file() {
    let t = ftps(&[]);
    t.python("refused_uploads_leave_nothing");
    let left: Vec<String> = names_in(&t.home())
        .into_iter()
        .filter(|n| n.starts_with("refused-") || n.starts_with(".ringftp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn auth_pbsz_prot_ccc_sequences() {
    let t = ftps(&[]);
    t.python("auth_sequence");
}

#[test]
fn an_upload_cut_without_close_notify_is_broken() {
    let t = ftps(&[]);
    t.python("cut_upload");
    assert!(
        !t.home().join("cut.bin").exists(),
        "a cut upload was kept without --keep-partial"
    );
    let t = ftps(&["--keep-partial"]);
    t.python("cut_upload");
    let kept = std::fs::read(t.home().join("cut.bin")).unwrap();
    assert!(kept.len() <= t.data.len() / 2, "kept {} bytes", kept.len());
    assert_bytes_eq("kept part", &kept, &t.data[..kept.len()]);
}

/// A PROT P download cut by the client is logged (xferlog, and the FTPS
/// byte counters) with at least the bytes the client read: the count
/// moves record by record, not per batch of records.
#[test]
fn a_cut_download_logs_what_the_client_read() {
    let dir = tempfile::tempdir().unwrap();
    let xferlog = dir.path().join("xferlog");
    let t = ftps(&["--xferlog", &xferlog.to_string_lossy()]);
    // More than the server's socket buffer can take (tcp_wmem's 4 MiB at
    // most) with the client's, so the cut comes before the last send.
    let big = pattern(9, 16 << 20);
    t.fx.write("alice/big.bin", &big);
    let (before, _) = t.tls_counters();
    let out = t.python("cut_download");
    let read: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("read "))
        .expect("the scenario prints what it read")
        .parse()
        .unwrap();
    let (after, _) = t.tls_counters();
    assert!(
        after - before >= read,
        "counted {} of {read}",
        after - before
    );
    let log = std::fs::read_to_string(&xferlog).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("big.bin"))
        .unwrap_or_else(|| panic!("no big.bin in the xferlog:\n{log}"));
    // wu-ftpd's fields: 5 for the time, transfer-time, host, bytes, ...;
    // the last is `i` for an incomplete transfer.
    let f: Vec<&str> = line.split_whitespace().collect();
    let logged: u64 = f[7].parse().unwrap();
    assert!(logged >= read, "logged {logged} of {read}: {line}");
    assert!(logged < big.len() as u64, "{line}");
    assert_eq!(f.last(), Some(&"i"), "{line}");
}

#[test]
fn accounts_never_log_in_over_plain_text() {
    let t = ftps(&[]);
    let mut f = Ftp::connect(t.srv.addr());
    let r = f.cmd("USER alice");
    assert_eq!(r.code, 530, "{r:?}");
    assert!(r.text().contains("AUTH TLS"), "{r:?}");
    // No password was asked for; anonymous still works in clear.
    f.expect("PASS alice-pw", 503);
    f.login();
    assert_eq!(f.retr("/pub.txt"), b"anonymous may read this\n");
    // FEAT advertises FTPS.
    let feat = f.cmd("FEAT").text();
    for line in ["AUTH TLS", "PBSZ", "PROT"] {
        assert!(feat.contains(line), "{feat}");
    }
    f.quit();
    // --tls-required all: anonymous too.
    let t = ftps(&["--tls-required", "all"]);
    let mut f = Ftp::connect(t.srv.addr());
    assert_eq!(f.cmd("USER anonymous").code, 530);
}

/// Reads until the server closes the connection (or a read fails);
/// returns what came.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn garbage_and_silent_handshakes_end_without_harming_others() {
    let t = ftps(&["--login-timeout", "3"]);
    // Garbage after AUTH TLS: the handshake fails and the session closes.
    let mut garbage = TcpStream::connect(t.srv.addr()).unwrap();
    let mut greeting = [0u8; 64];
    let _ = garbage.read(&mut greeting).unwrap();
    garbage.write_all(b"AUTH TLS\r\n").unwrap();
    let mut reply = [0u8; 64];
    let n = garbage.read(&mut reply).unwrap();
    assert!(
        reply[..n].starts_with(b"234"),
        "{:?}",
        String::from_utf8_lossy(&reply[..n])
    );
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Silent after AUTH TLS, and silent on the implicit port: closed at
    // the login timeout.
    let mut silent = TcpStream::connect(t.srv.addr()).unwrap();
    let _ = silent.read(&mut greeting).unwrap();
    silent.write_all(b"AUTH TLS\r\n").unwrap();
    let _ = silent.read(&mut reply).unwrap();
    let mut silent_implicit = TcpStream::connect(t.implicit).unwrap();
    // Meanwhile another client transfers normally.
    let out = t.fx.out("meanwhile.bin");
    curl_download(
        Place::Here,
        &t.url("file.bin"),
        &["--ssl-reqd", "--cacert", t.pki.ca.to_str().unwrap()],
        &out,
        &t.home().join("file.bin"),
    );
    read_to_close(&mut garbage);
    read_to_close(&mut silent);
    assert!(read_to_close(&mut silent_implicit).is_empty());
    t.srv
        .wait_log("within --login-timeout", 2, Duration::from_secs(60));
    t.srv
        .wait_log("control TLS handshake failed", 1, Duration::from_secs(20));
}

#[test]
fn ktls_probe_is_logged_and_transfers_are_byte_exact_either_way() {
    let t = ftps(&[]);
    let log = t.srv.wait_log("FTPS on:", 1, Duration::from_secs(20));
    let line = log
        .lines()
        .find(|l| l.contains("FTPS on:"))
        .unwrap_or_else(|| panic!("no FTPS start-up line:\n{log}"));
    let kernel = line.contains("kTLS for");
    assert!(kernel || line.contains("no kTLS"), "{line}");
    let out = t.fx.out("k.bin");
    curl_download(
        Place::Here,
        &t.url("file.bin"),
        &["--ssl-reqd", "--cacert", t.pki.ca.to_str().unwrap()],
        &out,
        &t.home().join("file.bin"),
    );
    curl_download(
        Place::Here,
        &t.url("small.bin"),
        &["--ssl-reqd", "--cacert", t.pki.ca.to_str().unwrap()],
        &t.fx.out("k-small.bin"),
        &t.home().join("small.bin"),
    );
    let (user, kernel_bytes) = t.tls_counters();
    if kernel {
        assert!(
            kernel_bytes >= t.data.len() as u64,
            "{line}: {kernel_bytes}"
        );
    } else {
        assert_eq!(kernel_bytes, 0, "{line}");
        assert!(user >= t.data.len() as u64, "{user}");
    }
    // --ktls off: userspace whatever the kernel has.
    let t = ftps(&["--ktls", "off"]);
    let out = t.fx.out("k2.bin");
    curl_download(
        Place::Here,
        &t.url("file.bin"),
        &["--ssl-reqd", "--cacert", t.pki.ca.to_str().unwrap()],
        &out,
        &t.home().join("file.bin"),
    );
    assert_eq!(t.tls_counters().1, 0);
}

#[test]
fn sighup_reloads_the_certificate_and_keeps_it_when_the_new_one_is_bad() {
    let t = ftps(&[]);
    let fetch = |ca: &Path| {
        curl(&[
            "--ssl-reqd",
            "--cacert",
            ca.to_str().unwrap(),
            &t.url("file.bin"),
            "-o",
            "/dev/null",
        ])
    };
    fetch(&t.pki.ca).ok();
    // A new pair from a new CA.
    let fresh = Pki::new(&t.fx.out("pki2"));
    std::fs::copy(&fresh.cert, &t.pki.cert).unwrap();
    std::fs::copy(&fresh.key, &t.pki.key).unwrap();
    t.srv.signal(libc::SIGHUP);
    t.srv.wait_log(
        "TLS certificate and key reloaded",
        1,
        Duration::from_secs(30),
    );
    fetch(&fresh.ca).ok();
    fetch(&t.pki.ca).fails();
    // A broken key: the pair in use stays.
    std::fs::write(&t.pki.key, "not a key").unwrap();
    t.srv.signal(libc::SIGHUP);
    t.srv
        .wait_log("TLS certificate not reloaded", 1, Duration::from_secs(30));
    fetch(&fresh.ca).ok();
}

/// Certificates laid out as certbot does (`live/cert.pem` a symlink into
/// `archive/`, renewed by a new file there and a new link) reload on
/// SIGHUP under the sandbox; a key only root may read is said at start
/// to be one SIGHUP cannot reload.
#[test]
fn sighup_reloads_a_certbot_layout_and_warns_of_an_unreadable_key() {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let fx = Fixture::new();
    fx.write("pub.txt", b"public\n");
    let le = fx.out("le");
    let (a, b) = (Pki::new(&le.join("a")), Pki::new(&le.join("b")));
    let (archive, live) = (le.join("archive"), le.join("live"));
    std::fs::create_dir_all(&archive).unwrap();
    std::fs::create_dir_all(&live).unwrap();
    let install = |n: u32, pki: &Pki| {
        for (what, from) in [("cert", &pki.cert), ("key", &pki.key)] {
            let file = archive.join(format!("{what}{n}.pem"));
            std::fs::copy(from, &file).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let link = live.join(format!("{what}.pem"));
            let _ = std::fs::remove_file(&link);
            symlink(format!("../archive/{what}{n}.pem"), &link).unwrap();
        }
    };
    install(1, &a);
    let (cert, key) = (live.join("cert.pem"), live.join("key.pem"));
    let srv = Server::builder()
        .args(&["--tls-cert", cert.to_str().unwrap()])
        .args(&["--tls-key", key.to_str().unwrap()])
        .args(&["--sandbox", "required"])
        .start(&fx);
    let fetch = |ca: &Path| {
        let url = format!("ftp://localhost:{}/pub.txt", srv.port());
        curl(&["--ssl-reqd", "--cacert", ca.to_str().unwrap(), &url])
    };
    fetch(&a.ca).ok();
    install(2, &b);
    srv.signal(libc::SIGHUP);
    srv.wait_log(
        "TLS certificate and key reloaded",
        1,
        Duration::from_secs(30),
    );
    fetch(&b.ca).ok();
    drop(srv);

    // The key as openssl and certbot make it: 0600, root's (outside the
    // fixture, which is given to the service user at start).
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: a root-only key needs root");
        return;
    }
    let private = tempfile::tempdir().unwrap();
    std::fs::set_permissions(private.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let root_key = private.path().join("key.pem");
    std::fs::copy(&b.key, &root_key).unwrap();
    std::fs::set_permissions(&root_key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let srv = Server::builder()
        .args(&["--tls-cert", cert.to_str().unwrap()])
        .args(&["--tls-key", root_key.to_str().unwrap()])
        .start(&fx);
    srv.wait_log("cannot be read after start-up", 1, Duration::from_secs(30));
}

#[test]
fn bad_certificates_stop_the_start_with_a_clear_error() {
    let fx = Fixture::new();
    let pki = Pki::new(&fx.out("pki"));
    let other = Pki::new(&fx.out("other"));
    let cert = pki.cert.to_string_lossy().into_owned();
    let key = pki.key.to_string_lossy().into_owned();
    let wrong_key = other.key.to_string_lossy().into_owned();
    let ca = pki.ca.to_string_lossy().into_owned();
    for (args, frag) in [
        (
            vec!["--tls-cert", "/nonexistent.pem", "--tls-key", key.as_str()],
            "--tls-cert",
        ),
        (
            vec!["--tls-cert", cert.as_str(), "--tls-key", ca.as_str()],
            "--tls-key",
        ),
        (
            vec!["--tls-cert", cert.as_str(), "--tls-key", wrong_key.as_str()],
            "does not belong",
        ),
        (
            vec!["--tls-cert", key.as_str(), "--tls-key", key.as_str()],
            "no certificate",
        ),
        (vec!["--listen-implicit", "127.0.0.1:0"], "needs --tls-cert"),
    ] {
        let r = Server::builder().args(&args).start_fails(&fx);
        assert!(r.stderr.contains(frag), "{args:?}: {}", r.all());
    }
}

#[test]
fn rclone_copy_and_check_with_explicit_tls() {
    if std::process::Command::new("rclone")
        .arg("version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: rclone is not installed (tests/run.sh installs it from Debian)");
        return;
    }
    let t = ftps(&[]);
    let local = t.fx.out("rtree");
    write(&local, "a/x.bin", &pattern(5, 900_000));
    write(&local, "b.txt", b"rclone\n");
    let obscured = run_client(30, "rclone", &["obscure", "alice-pw"], None);
    obscured.ok();
    let conf = t.fx.out("rclone.conf");
    // One connection at a time: rclone keeps one TLS session cache for all
    // its connections, so with several control sessions at once a data
    // connection offers another session's ticket, which reuse refuses.
    std::fs::write(
        &conf,
        format!(
            "[r]\ntype = ftp\nhost = 127.0.0.1\nport = {}\nuser = alice\npass = {}\n\
             explicit_tls = true\nno_check_certificate = true\nconcurrency = 1\n",
            t.srv.port(),
            obscured.stdout.trim()
        ),
    )
    .unwrap();
    let conf = conf.to_string_lossy().into_owned();
    let l = local.to_string_lossy().into_owned();
    run_client(
        120,
        "rclone",
        &["--config", &conf, "copy", &l, "r:rc"],
        None,
    )
    .ok();
    run_client(
        120,
        "rclone",
        &["--config", &conf, "check", &l, "r:rc"],
        None,
    )
    .ok();
    assert_same_tree(&t.home().join("rc"), &local, &[]);
    let back = t.fx.out("rback").to_string_lossy().into_owned();
    run_client(
        120,
        "rclone",
        &["--config", &conf, "copy", "r:rc", &back],
        None,
    )
    .ok();
    assert_same_tree(&t.fx.out("rback"), &local, &[]);
}

#[test]
fn loadtest_runs_over_explicit_and_implicit_ftps() {
    let t = ftps(&[]);
    let files = t.fx.out("files.txt");
    std::fs::write(&files, "/file.bin\n").unwrap();
    let ca = t.pki.ca();
    let files = files.to_string_lossy().into_owned();
    for (mode, addr) in [("explicit", t.srv.addr()), ("implicit", t.implicit)] {
        let target = addr.to_string();
        let r = run_client(
            120,
            BIN,
            &[
                "loadtest",
                "--target",
                &target,
                "--user",
                "alice",
                "--password",
                "alice-pw",
                "--scenario",
                "bigfile",
                "--files",
                &files,
                "--clients",
                "2",
                "--requests",
                "6",
                "--tls",
                mode,
                "--tls-ca",
                &ca,
                "--tls-server-name",
                "localhost",
            ],
            None,
        );
        r.ok();
        assert!(r.stdout.contains("6 ok, 0 errors"), "{mode}: {}", r.all());
    }
    let log = t.srv.log_synced();
    assert!(log.contains("(implicit)"), "{log}");
    assert!(!log.contains("code=522"), "{log}");
}

/// A control reply longer than rustls's 64 KiB plaintext buffer (`STAT`
/// of a directory of 1,500 entries, about 90 KiB) arrives whole over
/// FTPS. Before, it was cut at exactly 65,536 bytes and the session
/// closed ("failed to write whole buffer"; found by a review helper).
#[test]
fn a_control_reply_over_64_kib_arrives_whole_over_tls() {
    let t = ftps(&[]);
    for i in 0..1500 {
        t.fx.write(
            &format!("alice/big/a-file-with-a-longish-name-{i:04}.dat"),
            b"x",
        );
    }
    let out = t.quote("STAT big");
    let names = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("< ") && l.contains(" a-file-with-a-longish-name-"))
        .count();
    assert_eq!(names, 1500, "{}", out.stderr);
    assert!(out.stderr.contains("< 213 End of status"), "{}", out.stderr);
}
