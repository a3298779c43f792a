//! Several ringftp nodes behind a layer-4 balancer (HAProxy, Debian's
//! package) with the PROXY protocol, on a routed network of Linux network
//! namespaces (tests/netns/balancer.sh draws it): a client and a third host
//! on a front segment, HAProxy on the VIP 203.0.113.10, and two nodes on a
//! back segment serving one shared directory. The HAProxy configuration is
//! the one docs/scale-out.md gives (control port balanced with `leastconn`
//! and a health check that waits for the 220, one frontend per node's
//! passive slice, `send-proxy-v2`), with the test's addresses.
//!
//! Each test builds its own copy of the network (`rs<pid>-<n>-<role>`) and
//! tears it down in `Drop`. The clients are curl, lftp, Python's ftplib
//! and `ringftp loadtest`, run in the client's namespace, plus the raw
//! control client of tests/common for exact replies and misbehaviour. No
//! assertion depends on timing: the tests wait for conditions (HAProxy's
//! stats socket saying a node is down, a line in a node's log) under
//! generous bounds that only a real hang reaches.
//!
//! Needs root, iproute2 and haproxy (tests/run.sh installs them); without
//! them the namespace tests fail and say why. The first test runs on
//! loopback and needs neither.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use common::*;

/// The balancer's address on the front segment: what clients connect to.
const VIP: &str = "203.0.113.10";
/// The balancer's address on the back segment: the nodes' `--proxy-from`.
const BALANCER: &str = "192.0.2.1";
const CLIENT: &str = "203.0.113.50";
const THIEF: &str = "203.0.113.66";
const NODES: [&str; 2] = ["192.0.2.11", "192.0.2.12"];
/// Each node's slice of the passive range (--pasv-ports), forwarded by
/// its own HAProxy frontend.
const SLICES: [(u16, u16); 2] = [(50_000, 50_003), (50_004, 50_007)];
/// The bound on every wait for a condition: far above what any event
/// here takes, reached only by a hang.
const WAIT: Duration = Duration::from_secs(60);

fn sock(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

// ---------------------------------------------------------------------------
// The cluster
// ---------------------------------------------------------------------------

static NEXT_NET: AtomicU32 = AtomicU32::new(0);
static GC: Once = Once::new();

/// What a cluster is started with.
#[derive(Default)]
struct Opts<'a> {
    /// Extra `ringftp serve` flags for both nodes.
    node_args: &'a [&'a str],
    /// FTPS: a certificate for the VIP, and an implicit listener on 990
    /// behind its own HAProxy frontend.
    tls: Option<&'a Pki>,
}

/// The network, two nodes and HAProxy; all stopped and removed on drop.
struct Cluster {
    prefix: String,
    haproxy: Option<Child>,
    admin: PathBuf,
    haproxy_log: PathBuf,
    nodes: Vec<Option<Server>>,
    xferlogs: Vec<PathBuf>,
}

impl Cluster {
    fn up(fx: &Fixture, opts: Opts) -> Cluster {
        require_root("the scale-out tests");
        let script = script_path("netns/balancer.sh");
        GC.call_once(|| {
            let _ = Command::new("bash").arg(&script).arg("gc").status();
        });
        let prefix = format!(
            "rs{}-{}",
            std::process::id(),
            NEXT_NET.fetch_add(1, Ordering::SeqCst)
        );
        let mut c = Cluster {
            admin: PathBuf::from(format!("/tmp/{prefix}-haproxy.sock")),
            haproxy_log: fx.work.join(format!("{prefix}-haproxy.log")),
            prefix,
            haproxy: None,
            nodes: Vec::new(),
            xferlogs: Vec::new(),
        };
        let out = Command::new("bash")
            .arg(&script)
            .arg("up")
            .arg(&c.prefix)
            .output()
            .unwrap_or_else(|e| panic!("cannot run tests/netns/balancer.sh: {e}"));
        assert!(
            out.status.success(),
            "could not build the test network (network namespaces, veth) — these tests need root and a kernel that allows `ip netns add`:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for (i, slice) in SLICES.iter().enumerate() {
            let xferlog = fx.work.join(format!("{}-xferlog-node{}", c.prefix, i + 1));
            let x = xferlog.to_string_lossy().into_owned();
            let mut args = vec![
                "--pasv-address",
                VIP,
                "--proxy-protocol",
                "--proxy-from",
                BALANCER,
                "--xferlog",
                &x,
                "--data-timeout",
                "10",
            ];
            let (cert, key);
            if let Some(pki) = opts.tls {
                cert = pki.cert.to_string_lossy().into_owned();
                key = pki.key.to_string_lossy().into_owned();
                args.extend([
                    "--tls-cert",
                    &cert,
                    "--tls-key",
                    &key,
                    "--listen-implicit",
                    "0.0.0.0:990",
                ]);
            }
            args.extend_from_slice(opts.node_args);
            let node = Server::builder()
                .netns(&c.ns(&format!("node{}", i + 1)))
                .listen(&["0.0.0.0:21"])
                .pasv_ports(slice.0, slice.1)
                .args(&args)
                .start(fx);
            c.nodes.push(Some(node));
            c.xferlogs.push(xferlog);
        }
        let cfg = fx.work.join(format!("{}-haproxy.cfg", c.prefix));
        std::fs::write(&cfg, haproxy_cfg(&c.admin, opts.tls.is_some())).unwrap();
        let check = Command::new("haproxy")
            .arg("-c")
            .arg("-f")
            .arg(&cfg)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run haproxy ({e}): install Debian's haproxy package (tests/run.sh does)")
            });
        assert!(
            check.status.success(),
            "haproxy -c rejects the configuration:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let log = std::fs::File::create(&c.haproxy_log).unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &c.ns("lb"), "haproxy", "-db", "-f"])
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        die_with_parent(&mut cmd);
        c.haproxy = Some(cmd.spawn().expect("start haproxy"));
        for node in ["node1", "node2"] {
            c.wait_status(node, "UP");
        }
        c
    }

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    fn client(&self) -> String {
        self.ns("client")
    }

    fn node(&self, i: usize) -> &Server {
        self.nodes[i].as_ref().expect("that node was killed")
    }

    /// HAProxy's `show stat` through its admin socket: one CSV row per
    /// frontend, backend and server.
    fn stats(&self) -> Option<String> {
        let mut s = UnixStream::connect(&self.admin).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(b"show stat\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    /// The status column of server `server` in backend `nodes` ("UP",
    /// "DOWN", "UP 1/2", ...).
    fn status(&self, server: &str) -> Option<String> {
        let stats = self.stats()?;
        stats.lines().find_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.len() > 17 && f[0] == "nodes" && f[1] == server).then(|| f[17].to_string())
        })
    }

    /// Waits until HAProxy's health check says `server` is `want`.
    #[track_caller]
    fn wait_status(&self, server: &str, want: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.status(server);
            if got.as_deref() == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "HAProxy never reported {server} {want} (last: {got:?}); its log:\n{}",
                std::fs::read_to_string(&self.haproxy_log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Anonymous logins of the real client each node has logged.
    fn client_logins(&self) -> [usize; 2] {
        let count = |i: usize| match &self.nodes[i] {
            Some(n) => n
                .log_text()
                .lines()
                .filter(|l| l.contains("anonymous login") && l.contains(&format!("peer={CLIENT}:")))
                .count(),
            None => 0,
        };
        [count(0), count(1)]
    }

    /// Which node's log has `needle` (waiting for it).
    #[track_caller]
    fn node_logging(&self, needle: &str) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            for i in 0..2 {
                if self.nodes[i]
                    .as_ref()
                    .is_some_and(|n| n.log_text().contains(needle))
                {
                    return i;
                }
            }
            assert!(Instant::now() < deadline, "no node logged {needle:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A logged-in raw control session from `role` through the VIP.
    #[track_caller]
    fn login(&self, role: &str) -> Ftp {
        let s = connect_in(&self.ns(role), sock(VIP, 21))
            .unwrap_or_else(|e| panic!("control connection from {role} to the VIP: {e}"));
        let mut f = Ftp::from_stream(s);
        f.login();
        f
    }

    /// curl in the client's namespace: downloads `path` through the VIP and
    /// compares it with `want`.
    #[track_caller]
    fn curl_get(&self, fx: &Fixture, url: &str, flags: &[&str], out: &str, want: &Path) -> Run {
        let client = self.client();
        curl_download(Place::Netns(&client), url, flags, &fx.out(out), want)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(mut h) = self.haproxy.take() {
            let _ = h.kill();
            let _ = h.wait();
        }
        if std::thread::panicking() {
            if let Ok(log) = std::fs::read_to_string(&self.haproxy_log) {
                eprintln!("---- haproxy log ----\n{log}");
            }
        }
        self.nodes.clear();
        let _ = Command::new("bash")
            .arg(script_path("netns/balancer.sh"))
            .arg("down")
            .arg(&self.prefix)
            .status();
        let _ = std::fs::remove_file(&self.admin);
    }
}

/// The haproxy.cfg of docs/scale-out.md with the test's addresses (and
/// quicker health checks: every 500 ms, down after 2 failures).
fn haproxy_cfg(admin: &Path, tls: bool) -> String {
    let mut cfg = format!(
        "global
    stats socket {admin} mode 600 level admin

defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h

# Control connections: the least busy node that answers its health check.
frontend ftp
    bind {VIP}:21
    default_backend nodes

backend nodes
    balance leastconn
    option tcp-check
    tcp-check expect string 220
    default-server send-proxy-v2 check inter 500ms fall 2 rise 1
    server node1 {n1}:21
    server node2 {n2}:21
",
        admin = admin.display(),
        n1 = NODES[0],
        n2 = NODES[1],
    );
    for (i, (lo, hi)) in SLICES.iter().enumerate() {
        cfg.push_str(&format!(
            "
# node{n}'s passive slice (--pasv-ports {lo}-{hi}) goes to node{n} only.
frontend pasv_node{n}
    bind {VIP}:{lo}-{hi}
    default_backend pasv_node{n}

backend pasv_node{n}
    server node{n} {addr} send-proxy-v2
",
            n = i + 1,
            addr = NODES[i],
        ));
    }
    if tls {
        cfg.push_str(&format!(
            "
# Implicit FTPS: the same nodes, up when their port 21 is.
frontend ftps
    bind {VIP}:990
    default_backend nodes_ftps

backend nodes_ftps
    balance leastconn
    server node1 {n1}:990 send-proxy-v2 track nodes/node1
    server node2 {n2}:990 send-proxy-v2 track nodes/node2
",
            n1 = NODES[0],
            n2 = NODES[1],
        ));
    }
    cfg
}

/// A throwaway CA and a certificate for the VIP (as tests/ftps.rs makes).
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ringftp scale-out test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec![VIP.to_string()])
            .unwrap()
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let pki = Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&pki.ca, ca.pem()).unwrap();
        std::fs::write(&pki.cert, cert.pem() + &ca.pem()).unwrap();
        std::fs::write(&pki.key, key.serialize_pem()).unwrap();
        // The nodes read them as root, before dropping privileges.
        pki
    }
}

/// A fixture with `small.txt`, `big.bin` (4 MiB + 5) and a small mirror
/// tree under pub/ written by `ringftp loadtest prepare` (its content is
/// what `loadtest --verify` checks).
fn files() -> Fixture {
    let fx = Fixture::new();
    fx.write("small.txt", &text_lines(100));
    fx.write("big.bin", &pattern(7, (4 << 20) + 5));
    let out = Command::new(BIN)
        .args(["loadtest", "prepare", "--dir"])
        .arg(&fx.root)
        .args([
            "--files",
            "24",
            "--max-size",
            "256KiB",
            "--bigfile",
            "0",
            "--listing",
            "0",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "prepare: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fx
}

fn url(path: &str) -> String {
    format!("ftp://{VIP}:21/{path}")
}

/// Reads `s` to its end; the bytes (a refused connection gets none).
fn drain(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    read_all_lenient(s)
}

// ---------------------------------------------------------------------------
// Headers on loopback (no namespaces, no HAProxy)
// ---------------------------------------------------------------------------

/// v1 and v2 headers, whole or in pieces, are read and their client is
/// the session's; garbage, a connection from outside --proxy-from, and a
/// silent connection are closed without a byte.
#[test]
fn headers_on_loopback() {
    let fx = Fixture::new();
    fx.write("small.txt", &text_lines(10));
    let srv = Server::builder()
        .args(&[
            "--proxy-protocol",
            "--proxy-from",
            "127.0.0.1",
            "--login-timeout",
            "2s",
        ])
        .start(&fx);
    let to = srv.addr();
    let stat_of = |s: TcpStream| -> String {
        let mut f = Ftp::from_stream(s);
        f.login();
        let r = f.cmd("STAT");
        f.quit();
        r.text()
    };
    // v1, in one write.
    let mut s = TcpStream::connect(to).unwrap();
    s.write_all(
        format!(
            "PROXY TCP4 198.51.100.7 203.0.113.10 40000 {}\r\n",
            to.port()
        )
        .as_bytes(),
    )
    .unwrap();
    assert!(stat_of(s).contains("Connected to 198.51.100.7"));
    // v2 (IPv6 client), in three pieces with pauses between them.
    let h = ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (sock("2001:db8::7", 40001), sock("2001:db8::1", 21)),
    )
    .build()
    .unwrap();
    let mut s = TcpStream::connect(to).unwrap();
    for part in [&h[..5], &h[5..20], &h[20..]] {
        s.write_all(part).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(stat_of(s).contains("Connected to 2001:db8::7"));
    srv.wait_log("client=[2001:db8::7]:40001", 1, WAIT);

    // No header: closed without a reply, logged.
    let mut s = TcpStream::connect(to).unwrap();
    s.write_all(b"USER anonymous\r\n").unwrap();
    assert_eq!(drain(&mut s), b"");
    srv.wait_log("no PROXY header", 1, WAIT);
    // A TLS ClientHello where the header belongs (an implicit-FTPS
    // client, or a balancer without send-proxy): named as such, not
    // written raw into the log.
    let mut s = TcpStream::connect(to).unwrap();
    s.write_all(b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03\x1b\x00")
        .unwrap();
    assert_eq!(drain(&mut s), b"");
    srv.wait_log(
        "no PROXY header (the connection starts with a TLS handshake",
        1,
        WAIT,
    );
    assert!(
        !srv.log_text().contains('\u{16}'),
        "raw TLS bytes in the log"
    );
    // Silent: closed after --login-timeout, logged.
    let mut s = TcpStream::connect(to).unwrap();
    assert_eq!(drain(&mut s), b"");
    srv.wait_log("no complete PROXY header within 2s", 1, WAIT);
    // Not from --proxy-from (127.0.0.2): closed at once, header or not.
    let mut s = connect_from("127.0.0.2".parse().unwrap(), to);
    s.write_all(
        format!(
            "PROXY TCP4 198.51.100.7 203.0.113.10 40000 {}\r\n",
            to.port()
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(drain(&mut s), b"");
    srv.wait_log("127.0.0.2 is not in --proxy-from", 1, WAIT);
    // The server is still fine.
    let mut s = TcpStream::connect(to).unwrap();
    s.write_all(b"PROXY UNKNOWN\r\n").unwrap();
    assert!(stat_of(s).contains("Connected to 127.0.0.1"));
}

// ---------------------------------------------------------------------------
// Through the VIP
// ---------------------------------------------------------------------------

/// curl (PASV trusting and ignoring the 227 address, EPSV, active), lftp
/// `mirror`, ftplib and `ringftp loadtest --verify` download byte-exact
/// through the VIP; both nodes serve sessions; each node's log, xferlog
/// and STAT name the client, never the balancer.
#[test]
fn downloads_through_the_vip_reach_both_nodes_as_the_client() {
    let fx = files();
    let c = Cluster::up(&fx, Opts::default());
    let big = fx.root.join("big.bin");
    let u = url("big.bin");
    let r = c.curl_get(
        &fx,
        &u,
        &["--disable-epsv", "--no-ftp-skip-pasv-ip"],
        "pasv-trusting.bin",
        &big,
    );
    assert!(
        r.stderr
            .contains("227 Entering Passive Mode (203,0,113,10,"),
        "{}",
        r.stderr
    );
    c.curl_get(&fx, &u, &["--disable-epsv"], "pasv.bin", &big);
    c.curl_get(&fx, &u, &[], "epsv.bin", &big);
    // Active mode: the node connects out to the client (routed).
    c.curl_get(&fx, &u, &["-P", "-"], "port.bin", &big);
    c.curl_get(&fx, &u, &["-P", "-", "--disable-eprt"], "port4.bin", &big);

    let client = c.client();
    let b = big.to_string_lossy().into_owned();
    let nat = script_path("netns/nat_client.py");
    for extra in [
        &["--trust-pasv"][..],
        &["--mode", "epsv"][..],
        &["--mode", "active"][..],
    ] {
        let mut a = vec!["get", VIP, "21", &b, "big.bin", "--count", "2"];
        a.extend_from_slice(extra);
        python_in(Place::Netns(&client), &nat, &a).ok();
    }

    let mirror = fx.work.join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    lftp_in(
        Place::Netns(&client),
        &url(""),
        "set ftp:passive-mode on",
        "mirror --parallel=2 / mirror",
        &fx.work,
        &fx.work.join(".lftp-home"),
    )
    .ok();
    assert_same_tree(&mirror, &fx.root, &[]);

    // The load generator connects to the 227 address as announced.
    let json = fx.work.join("loadtest.json");
    let j = json.to_string_lossy().into_owned();
    for mode in ["pasv", "epsv"] {
        let r = run_client_in(
            Place::Netns(&client),
            120,
            BIN,
            &[
                "loadtest",
                "--target",
                &format!("{VIP}:21"),
                "--scenario",
                "mirror",
                "--files",
                "/pub",
                "--mode",
                mode,
                "--clients",
                "2",
                "--requests",
                "30",
                "--cores",
                "1",
                "--verify",
                "--timeout",
                "10s",
                "--json",
                &j,
            ],
            None,
            &[],
        );
        r.ok();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(v["totals"]["ok"], 30, "{mode}: {}", r.stdout);
        assert_eq!(v["totals"]["errors"], 0, "{mode}: {}", r.stdout);
    }

    // Both nodes served the client, and only the client: every session
    // from another address is a health check (no USER), and no transfer
    // names the balancer.
    let logins = c.client_logins();
    assert!(
        logins[0] >= 2 && logins[1] >= 2,
        "logins per node: {logins:?}"
    );
    for i in 0..2 {
        let log = c.node(i).log_text();
        assert!(
            !log.lines()
                .any(|l| l.contains(&format!("peer={BALANCER}:")) && l.contains("login")),
            "node{}: a login logged with the balancer's address",
            i + 1
        );
        let x = std::fs::read_to_string(&c.xferlogs[i]).unwrap();
        let lines: Vec<&str> = x.lines().collect();
        assert!(!lines.is_empty(), "node{}: empty xferlog", i + 1);
        for l in &lines {
            assert!(l.contains(&format!(" {CLIENT} ")), "node{}: {l}", i + 1);
        }
    }
    let mut f = c.login("client");
    let stat = f.cmd("STAT");
    assert!(
        stat.text().contains(&format!("Connected to {CLIENT}")),
        "{stat:?}"
    );
    f.quit();
}

/// `--max-per-ip 1` counts the client behind the balancer: the client gets
/// one session per node and the next is refused with 421, while another
/// client (and the health checks, from the balancer's address) still get
/// in. Limits are per node (docs/scale-out.md).
#[test]
fn max_per_ip_counts_the_client_not_the_balancer() {
    let fx = files();
    let c = Cluster::up(
        &fx,
        Opts {
            node_args: &["--max-per-ip", "1"],
            ..Opts::default()
        },
    );
    let mut held = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..3 {
        let mut s = connect_in(&c.client(), sock(VIP, 21)).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        let line = first_line(&mut s).unwrap_or_default();
        if line.starts_with("220") {
            held.push(s);
        } else {
            refused.push(line);
        }
    }
    assert!(
        held.len() <= 2,
        "{} sessions from one client on two nodes",
        held.len()
    );
    assert!(!refused.is_empty());
    for line in &refused {
        assert!(
            line.starts_with("421 Too many connections from your address"),
            "{line}"
        );
    }
    c.node_logging(&format!(
        "refused: Too many connections from your address (limit 1). peer={CLIENT}:"
    ));
    // Another client is another address.
    let mut f = c.login("thief");
    assert!(f
        .cmd("STAT")
        .text()
        .contains(&format!("Connected to {THIEF}")));
    f.quit();
    // The health checks (the balancer's own sessions) kept both nodes up.
    assert_eq!(c.status("node1").as_deref(), Some("UP"));
    assert_eq!(c.status("node2").as_deref(), Some("UP"));
}

/// A passive connection through the VIP from another client address is
/// refused by the RFC 2577 data-theft check (its PROXY header carries its
/// real address), and so is a connection straight to the node's passive
/// port with a forged header; the real client then gets its data. The
/// thief gets no byte.
#[test]
fn passive_connections_from_anyone_but_the_client_are_refused() {
    let fx = files();
    let c = Cluster::up(&fx, Opts::default());
    let want = fx.read("small.txt");
    for direct in [false, true] {
        let mut f = c.login("client");
        let announced = f.pasv();
        assert_eq!(announced.ip().to_string(), VIP);
        let port = announced.port();
        let node = if port <= SLICES[0].1 { 0 } else { 1 };
        let mut thief = if direct {
            // Straight to the node, claiming to be the client.
            let mut s = connect_in(&c.ns("thief"), sock(NODES[node], port)).unwrap();
            s.write_all(format!("PROXY TCP4 {CLIENT} {VIP} 40000 {port}\r\n").as_bytes())
                .unwrap();
            s
        } else {
            connect_in(&c.ns("thief"), announced).unwrap()
        };
        // The node accepts only while a transfer waits for its data
        // connection: the thief's, queued first, is taken first.
        f.send_raw(b"RETR small.txt\r\n");
        let refusal = format!("refused passive data connection from {THIEF}:");
        let why = if direct {
            format!("{THIEF} is not in --proxy-from")
        } else {
            format!("not the control connection's peer {CLIENT}")
        };
        wait_until("the node to refuse the thief", WAIT, || {
            c.node(node).log_text().lines().any(|l| {
                l.contains(&refusal) && l.contains(&why) && l.contains(&format!("port={port}"))
            })
        });
        let data = connect_in(&c.client(), announced).unwrap();
        assert_eq!(f.read_reply().code, 150);
        let mut data = data;
        assert_bytes_eq("RETR through the VIP", &drain(&mut data), &want);
        assert_eq!(f.read_reply().code, 226);
        assert_eq!(
            drain(&mut thief),
            b"",
            "the thief got data (direct: {direct})"
        );
        f.quit();
    }
}

/// Straight to a node: a client outside --proxy-from with a forged
/// header, the balancer's address without a header, and a balancer
/// connection that never sends one are all closed without a reply, and
/// logged.
#[test]
fn a_node_refuses_forged_missing_and_late_headers() {
    let fx = files();
    let c = Cluster::up(
        &fx,
        Opts {
            node_args: &["--login-timeout", "3s"],
            ..Opts::default()
        },
    );
    let node = sock(NODES[0], 21);
    let mut s = connect_in(&c.client(), node).unwrap();
    s.write_all(format!("PROXY TCP4 {BALANCER} {VIP} 40000 21\r\n").as_bytes())
        .unwrap();
    assert_eq!(drain(&mut s), b"", "a forged header got a reply");
    c.node(0).wait_log(
        &format!("refused: {CLIENT} is not in --proxy-from"),
        1,
        WAIT,
    );

    let mut s = connect_in(&c.ns("lb"), node).unwrap();
    s.write_all(b"USER anonymous\r\n").unwrap();
    assert_eq!(drain(&mut s), b"");
    c.node(0).wait_log("refused: no PROXY header", 1, WAIT);

    let mut s = connect_in(&c.ns("lb"), node).unwrap();
    assert_eq!(drain(&mut s), b"");
    c.node(0)
        .wait_log("refused: no complete PROXY header within 3s", 1, WAIT);

    // Through the VIP all is well.
    c.curl_get(
        &fx,
        &url("small.txt"),
        &[],
        "ok.txt",
        &fx.root.join("small.txt"),
    );
}

/// Kill one node while it sends a file: the client's transfer fails
/// cleanly (an error, no hang); once HAProxy's health check has marked the
/// node down, new sessions all succeed on the other node.
#[test]
fn killing_a_node_fails_its_transfer_and_the_other_takes_over() {
    let fx = files();
    fx.write("huge.bin", &pattern(3, 32 << 20));
    let mut c = Cluster::up(&fx, Opts::default());
    let out = fx.out("partial.bin");
    let mut cmd = Command::new("timeout");
    cmd.args(["-k", "5", "120", "ip", "netns", "exec", &c.client(), "curl"])
        .args(["-q", "-sS", "--noproxy", "*", "--limit-rate", "1M", "-o"])
        .arg(&out)
        .arg(url("huge.bin"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    die_with_parent(&mut cmd);
    let curl = cmd.spawn().unwrap();
    let victim = c.node_logging("RETR huge.bin");
    // Some bytes have gone out before the node dies.
    wait_until("the download to start", WAIT, || {
        std::fs::metadata(&out).is_ok_and(|m| m.len() > 0)
    });
    c.nodes[victim].as_ref().unwrap().signal(libc::SIGKILL);
    let done = curl.wait_with_output().unwrap();
    let code = done.status.code();
    assert!(
        !done.status.success() && code != Some(124) && code != Some(137),
        "curl should fail promptly when its node dies: {:?}\n{}",
        done.status,
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(std::fs::metadata(&out).unwrap().len() < 32 << 20);
    c.nodes[victim] = None;

    let name = format!("node{}", victim + 1);
    c.wait_status(&name, "DOWN");
    let survivor = 1 - victim;
    let before = c.client_logins()[survivor];
    let small = fx.root.join("small.txt");
    for i in 0..4 {
        c.curl_get(
            &fx,
            &url("small.txt"),
            &[],
            &format!("after-{i}.txt"),
            &small,
        );
    }
    assert_eq!(c.client_logins()[survivor], before + 4);
}

/// FTPS through the VIP: explicit (AUTH TLS, PROT P) with curl --ssl-reqd
/// in PASV and EPSV, and implicit on 990 behind its own frontend; the
/// balancer only sees encrypted bytes, and the PROXY headers come before
/// the TLS handshakes.
#[test]
fn ftps_through_the_vip() {
    let fx = files();
    let pki = Pki::new(&fx.out("pki"));
    let c = Cluster::up(
        &fx,
        Opts {
            tls: Some(&pki),
            ..Opts::default()
        },
    );
    let ca = pki.ca.to_string_lossy().into_owned();
    let big = fx.root.join("big.bin");
    let tls = ["--ssl-reqd", "--cacert", ca.as_str()];
    let with = |extra: &[&'static str]| -> Vec<String> {
        tls.iter().chain(extra).map(|s| s.to_string()).collect()
    };
    for (i, extra) in [&["--disable-epsv"][..], &[][..]].iter().enumerate() {
        let flags = with(extra);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let r = c.curl_get(&fx, &url("big.bin"), &flags, &format!("tls-{i}.bin"), &big);
        assert!(
            r.stderr.contains("SSL connection using TLS"),
            "{}",
            r.stderr
        );
    }
    let flags = ["--cacert", ca.as_str()];
    c.curl_get(
        &fx,
        &format!("ftps://{VIP}:990/big.bin"),
        &flags,
        "implicit.bin",
        &big,
    );
    let logins = c.client_logins();
    assert_eq!(logins.iter().sum::<usize>(), 3, "{logins:?}");
}

/// Two nodes upload one name at once over the shared tree (an account,
/// `--atomic-uploads`): both uploads succeed, the one that finishes last
/// is the file, whole, and no temporary file is left (docs/scale-out.md,
/// "Uploads when two nodes write the same name").
#[test]
fn two_nodes_uploading_one_name_leave_one_whole_file() {
    let fx = files();
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    fx.give_to_server_user(&fx.root);
    let u = users.to_string_lossy().into_owned();
    let c = Cluster::up(
        &fx,
        Opts {
            node_args: &["--users", &u, "--atomic-uploads"],
            ..Opts::default()
        },
    );
    let login = || {
        let s = connect_in(&c.client(), sock(VIP, 21)).unwrap();
        let port = s.local_addr().unwrap().port();
        let mut f = Ftp::from_stream(s);
        f.login_as("alice", "alice-pw");
        (f, port)
    };
    let ((mut a, pa), (mut b, pb)) = (login(), login());
    // leastconn: two sessions open at once sit on different nodes.
    let node_of = |port: u16| c.node_logging(&format!("peer={CLIENT}:{port}"));
    assert_ne!(node_of(pa), node_of(pb), "both sessions on one node");
    let (da, db) = (pattern(11, 3 << 20), pattern(12, (3 << 20) + 7));
    let mut ca = connect_in(&c.client(), a.epsv()).unwrap();
    let mut cb = connect_in(&c.client(), b.epsv()).unwrap();
    a.expect("STOR same.bin", 150);
    b.expect("STOR same.bin", 150);
    let half = 1 << 20;
    ca.write_all(&da[..half]).unwrap();
    cb.write_all(&db[..half]).unwrap();
    ca.write_all(&da[half..]).unwrap();
    drop(ca);
    assert_eq!(a.read_reply().code, 226);
    cb.write_all(&db[half..]).unwrap();
    drop(cb);
    assert_eq!(b.read_reply().code, 226);
    assert_bytes_eq(
        "the file after both uploads",
        &fx.read("alice/same.bin"),
        &db,
    );
    let left: Vec<String> = std::fs::read_dir(fx.root.join("alice"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".ringftp-upload"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    a.quit();
    b.quit();
}
