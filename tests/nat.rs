//! Passive and active mode through NAT and firewalls, on a real routed
//! network of Linux network namespaces (tests/netns/topology.sh draws it):
//! a client behind a masquerading home router, a server behind a router
//! that DNATs the control port and the passive range and firewalls the
//! rest, an outside client, a LAN client of the server, a third host.
//!
//! Every test builds its own copy of the network with names unique to the
//! test process and the test (`rf<pid>-<n>-<role>`), so tests run in
//! parallel, and tears it down in `Drop` (also when the test fails). The
//! server is the real binary started inside the server's namespace with
//! `ip netns exec`; the clients are curl, lftp and Python's ftplib run the
//! same way, plus the raw control client of tests/common for exact replies
//! and for misbehaving on purpose (a thread enters a namespace with
//! setns(2), so the sockets it makes live there).
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN), iproute2 and nftables;
//! tests/run.sh installs the tools, CI runs as root. Without them the tests
//! fail and say why: they are the proof that the NAT features work.

mod common;

use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Once;
use std::time::{Duration, Instant};

use common::*;

/// The server's public address: srvgw's WAN side, DNATed to `SERVER_LAN`.
const PUBLIC: &str = "203.0.113.10";
/// The server's private address on its LAN.
const SERVER_LAN: &str = "192.0.2.10";
const SERVER_V6: &str = "2001:db8:10::10";
/// The client's home router (masquerade) as the internet sees it.
const HOME_NAT: &str = "203.0.113.20";
const OUT: &str = "203.0.113.50";
const OUT_V6: &str = "2001:db8:ff::50";
const THIEF: &str = "203.0.113.66";
/// The passive range every test's firewall opens (topology.sh's default).
const RANGE: (u16, u16) = (50_000, 50_003);
/// Short, so the tests that wait for a failed data connection are quick.
const DATA_TIMEOUT: u64 = 2;
/// How long a test waits for a line the server logs after some event: a
/// bound on a hang, far above what any event here takes.
const LOG_WAIT: Duration = Duration::from_secs(30);

fn script(name: &str) -> String {
    script_path(&format!("netns/{name}"))
}

// ---------------------------------------------------------------------------
// The network
// ---------------------------------------------------------------------------

static NEXT_NET: AtomicU32 = AtomicU32::new(0);
static GC: Once = Once::new();

/// One copy of the test network; torn down on drop.
struct Net {
    prefix: String,
}

impl Net {
    /// Builds the network; `opts` go to `topology.sh up` (`--pasv-ports`,
    /// `--active-sport`, `--control-port`).
    fn up(opts: &[&str]) -> Net {
        require_root("the NAT tests");
        GC.call_once(|| {
            let _ = Command::new("bash")
                .arg(script("topology.sh"))
                .arg("gc")
                .status();
        });
        let prefix = format!(
            "rf{}-{}",
            std::process::id(),
            NEXT_NET.fetch_add(1, Ordering::SeqCst)
        );
        let net = Net { prefix };
        let out = Command::new("bash")
            .arg(script("topology.sh"))
            .arg("up")
            .arg(&net.prefix)
            .args(opts)
            .output()
            .unwrap_or_else(|e| panic!("cannot run tests/netns/topology.sh: {e}"));
        assert!(
            out.status.success(),
            "could not build the test network (network namespaces, veth, nftables) — \
             these tests need root and a kernel that allows `ip netns add`:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        net
    }

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    /// Runs `prog args` inside `role`'s namespace under `timeout`.
    fn run(&self, role: &str, secs: u64, prog: &str, args: &[&str]) -> Run {
        run_client_in(Place::Netns(&self.ns(role)), secs, prog, args, None, &[])
    }

    /// curl in `role` (`-v`: the tests read the 227/229 replies from it).
    fn curl(&self, role: &str, args: &[&str]) -> Run {
        let mut a = vec!["-v"];
        a.extend_from_slice(args);
        curl_in(Place::Netns(&self.ns(role)), &a)
    }

    /// Downloads `url` with curl in `role` into `out` and compares it with
    /// `want`; returns curl's run (for its -v output).
    #[track_caller]
    fn curl_get(&self, role: &str, url: &str, extra: &[&str], out: &Path, want: &Path) -> Run {
        curl_download(Place::Netns(&self.ns(role)), url, extra, out, want)
    }

    /// lftp in `role` with the shared fail-fast settings and `settings`.
    fn lftp(&self, role: &str, url: &str, settings: &str, script: &str, cwd: &Path) -> Run {
        let ns = self.ns(role);
        let home = cwd.join(".lftp-home");
        lftp_in(Place::Netns(&ns), url, settings, script, cwd, &home)
    }

    /// tests/netns/nat_client.py (ftplib) in `role`.
    fn ftplib(&self, role: &str, args: &[&str]) -> Run {
        python_in(Place::Netns(&self.ns(role)), &script("nat_client.py"), args)
    }

    /// The outside check of docs/nat-and-firewalls.md: `ringftp loadtest`
    /// downloading every file of the server a few times in `mode` (the
    /// load generator, unlike curl and ftplib, connects to the address a
    /// 227 reply announces).
    fn loadtest(&self, role: &str, mode: &str) -> Run {
        let args = [
            "loadtest",
            "--target",
            "203.0.113.10:21",
            "--scenario",
            "mirror",
            "--files",
            "/",
            "--mode",
            mode,
            "--clients",
            "2",
            "--requests",
            "10",
            "--cores",
            "1",
            "--timeout",
            "3s",
        ];
        self.run(role, 60, BIN, &args)
    }

    /// Runs `f` on a thread inside `role`'s network namespace: every
    /// socket it creates belongs to that namespace for good.
    fn within<T: Send>(&self, role: &str, f: impl FnOnce() -> T + Send) -> T {
        within(&self.ns(role), f)
    }

    fn connect(&self, role: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
        connect_in(&self.ns(role), to)
    }

    /// A logged-in raw control connection from `role`.
    #[track_caller]
    fn login(&self, role: &str, to: SocketAddr) -> Ftp {
        let s = self
            .connect(role, to)
            .unwrap_or_else(|e| panic!("control connection from {role} to {to}: {e}"));
        let mut f = Ftp::from_stream(s);
        f.login();
        f
    }

    /// The packet count of the nftables rule commented `comment` in
    /// `role`'s `inet ringftp` table.
    #[track_caller]
    fn counter(&self, role: &str, comment: &str) -> u64 {
        let r = self.run(role, 10, "nft", &["list", "table", "inet", "ringftp"]);
        r.ok();
        let needle = format!("comment \"{comment}\"");
        let line = r
            .stdout
            .lines()
            .find(|l| l.contains(&needle))
            .unwrap_or_else(|| panic!("no rule {needle} in {role}:\n{}", r.stdout));
        let after = line
            .split("packets ")
            .nth(1)
            .unwrap_or_else(|| panic!("no counter on {line:?}"));
        after.split_whitespace().next().unwrap().parse().unwrap()
    }

    /// TCP sockets in TIME-WAIT in `role` whose local port is in `range`.
    fn time_wait(&self, role: &str, range: (u16, u16)) -> usize {
        let filter = format!("( sport >= :{} and sport <= :{} )", range.0, range.1);
        let r = self.run(role, 10, "ss", &["-Htan", "state", "time-wait", &filter]);
        r.ok();
        r.stdout.lines().filter(|l| !l.trim().is_empty()).count()
    }

    /// Starts `ringftp serve` in `role` with the test defaults
    /// (`--listen 0.0.0.0:21 --cores 1 --pasv-ports 50000-50003
    /// --data-timeout 2`), each replaced when `args` gives that flag.
    fn serve(&self, fx: &Fixture, role: &str, args: &[&str]) -> Server {
        let mut b = Server::builder()
            .netns(&self.ns(role))
            .listen(&["0.0.0.0:21"])
            .pasv_ports(RANGE.0, RANGE.1)
            .args(args);
        if !args.contains(&"--data-timeout") {
            b = b.arg("--data-timeout").arg(DATA_TIMEOUT.to_string());
        }
        b.start(fx)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script("topology.sh"))
            .arg("down")
            .arg(&self.prefix)
            .status();
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A fixture with `small.txt` (a few KiB) and `big.bin` (4 MiB + 5).
fn files() -> Fixture {
    let fx = Fixture::new();
    fx.write("small.txt", &text_lines(100));
    fx.write("big.bin", &pattern(7, (4 << 20) + 5));
    fx
}

fn sock(ip: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), port)
}

fn url(host: &str, path: &str) -> String {
    if host.contains(':') {
        format!("ftp://[{host}]:21/{path}")
    } else {
        format!("ftp://{host}:21/{path}")
    }
}

/// The 227 line curl printed with -v (`< 227 Entering Passive Mode (...)`).
fn curl_227(r: &Run) -> String {
    r.stderr
        .lines()
        .find(|l| l.contains("< 227"))
        .unwrap_or_else(|| panic!("no 227 reply in curl's output:\n{}", r.stderr))
        .to_string()
}

/// Reads the data connection to its end, then the final reply.
#[track_caller]
fn finish_retr(f: &mut Ftp, mut data: TcpStream, want: &[u8], what: &str) {
    data.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let got = read_all_lenient(&mut data);
    assert_bytes_eq(what, &got, want);
    let r = f.read_reply();
    assert_eq!(r.code, 226, "{what}: {r:?}");
}

/// `ftplib` data-port lines.
fn data_ports(r: &Run) -> Vec<u16> {
    r.stdout
        .lines()
        .filter_map(|l| l.strip_prefix("data-port "))
        .map(|p| p.trim().parse().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------
// 1. Client behind NAT
// ---------------------------------------------------------------------------

/// The home client sits behind a masquerading router that drops unsolicited
/// inbound connections. Passive mode works (PASV and EPSV; curl, lftp,
/// ftplib). Active mode cannot: a naive client announces its private
/// address, which the RFC 2577 check refuses at once; a NAT-aware client
/// announces the router's address, the server's connect is dropped there,
/// and the client gets 425 after --data-timeout — and the same session then
/// downloads in passive mode.
#[test]
fn client_behind_nat_passive_works_active_gets_425() {
    let net = Net::up(&[]);
    let fx = files();
    let big = fx.root.join("big.bin");
    let _srv = net.serve(&fx, "srv", &["--pasv-address", PUBLIC]);
    let u = url(PUBLIC, "big.bin");

    let pasv = net.curl_get("home", &u, &["--disable-epsv"], &fx.out("pasv.bin"), &big);
    assert!(curl_227(&pasv).contains("203,0,113,10,"), "{}", pasv.stderr);
    net.curl_get("home", &u, &[], &fx.out("epsv.bin"), &big);
    net.lftp(
        "home",
        &url(PUBLIC, ""),
        "set ftp:passive-mode on",
        "get big.bin -o lftp.bin",
        &fx.work,
    )
    .ok();
    assert_same_file(&fx.out("lftp.bin"), &big);
    let b = big.to_string_lossy();
    let r = net.ftplib(
        "home",
        &["get", PUBLIC, "21", &b, "big.bin", "--trust-pasv"],
    );
    r.ok();

    // curl -P - announces its own (private) address: refused by the bounce
    // check, promptly.
    let t = Instant::now();
    let naive = net.curl(
        "home",
        &["-P", "-", "--disable-eprt", "-o", "/dev/null", &u],
    );
    naive.fails();
    assert!(naive.stderr.contains("RFC 2577"), "{}", naive.stderr);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    // PORT with the router's public address: accepted, the connect is
    // dropped by the router, 425 within --data-timeout, session usable.
    let r = net.ftplib(
        "home",
        &[
            "active-then-passive",
            PUBLIC,
            "21",
            &b,
            "big.bin",
            "--port-address",
            HOME_NAT,
        ],
    );
    r.ok();
    let line = r
        .stdout
        .lines()
        .find(|l| l.starts_with("active-failed"))
        .unwrap();
    let secs: f64 = line["active-failed ".len()..]
        .split('s')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (DATA_TIMEOUT as f64 - 0.5..DATA_TIMEOUT as f64 + 3.0).contains(&secs),
        "425 after {secs} s with --data-timeout {DATA_TIMEOUT}: {line}"
    );
    assert!(
        net.counter("cligw", "unsolicited") >= 1,
        "the router dropped nothing"
    );
}

// ---------------------------------------------------------------------------
// 2. Server behind NAT
// ---------------------------------------------------------------------------

/// The server sits on 192.0.2.10 behind a router that forwards
/// 203.0.113.10's control port and passive range to it. Clients here trust
/// the 227 address (curl --no-ftp-skip-pasv-ip, ftplib
/// trust_server_pasv_ipv4_address, lftp without fix-pasv-address), as
/// older clients do.
#[test]
fn server_behind_nat_needs_pasv_address_and_lan_clients_need_the_map() {
    let net = Net::up(&[]);
    let fx = files();
    let big = fx.root.join("big.bin");
    let b = big.to_string_lossy().into_owned();
    let trust = ["--disable-epsv", "--no-ftp-skip-pasv-ip"];
    let outside = url(PUBLIC, "big.bin");
    let inside = url(SERVER_LAN, "big.bin");

    // Without --pasv-address: the 227 carries the private address, which
    // the outside client cannot reach.
    {
        let _srv = net.serve(&fx, "srv", &[]);
        let r = net.curl("out", &[trust[0], trust[1], "-o", "/dev/null", &outside]);
        r.fails();
        assert!(curl_227(&r).contains("192,0,2,10,"), "{}", r.stderr);
        // The check docs/nat-and-firewalls.md gives operators says so too.
        let r = net.loadtest("out", "pasv");
        r.fails();
        assert!(r.all().contains("unreachable"), "{}", r.all());
        // EPSV announces no address: fine.
        net.curl_get("out", &outside, &[], &fx.out("a.bin"), &big);
        net.loadtest("out", "epsv").ok();
        // The LAN client is told the address it reached: fine.
        net.curl_get("lan", &inside, &trust, &fx.out("b.bin"), &big);
    }
    // --pasv-address alone: outside works, the LAN client is told the
    // public address, which its router does not loop back.
    {
        let _srv = net.serve(&fx, "srv", &["--pasv-address", PUBLIC]);
        let r = net.curl_get("out", &outside, &trust, &fx.out("c.bin"), &big);
        assert!(curl_227(&r).contains("203,0,113,10,"), "{}", r.stderr);
        net.loadtest("out", "pasv").ok();
        let r = net.curl("lan", &[trust[0], trust[1], "-o", "/dev/null", &inside]);
        r.fails();
        assert!(curl_227(&r).contains("203,0,113,10,"), "{}", r.stderr);
    }
    // Split horizon: both at the same time.
    let _srv = net.serve(
        &fx,
        "srv",
        &[
            "--pasv-address",
            PUBLIC,
            "--pasv-address-map",
            "192.0.2.0/24=192.0.2.10",
        ],
    );
    std::thread::scope(|s| {
        let out_curl = s.spawn(|| net.curl_get("out", &outside, &trust, &fx.out("d.bin"), &big));
        let lan_curl = s.spawn(|| net.curl_get("lan", &inside, &trust, &fx.out("e.bin"), &big));
        let out_py = s.spawn(|| {
            net.ftplib(
                "out",
                &[
                    "get",
                    PUBLIC,
                    "21",
                    &b,
                    "big.bin",
                    "--trust-pasv",
                    "--count",
                    "3",
                ],
            )
        });
        let lan_py = s.spawn(|| {
            net.ftplib(
                "lan",
                &[
                    "get",
                    SERVER_LAN,
                    "21",
                    &b,
                    "big.bin",
                    "--trust-pasv",
                    "--count",
                    "3",
                ],
            )
        });
        let lan_lftp = s.spawn(|| {
            net.lftp(
                "lan",
                &url(SERVER_LAN, ""),
                "set ftp:passive-mode on; set ftp:prefer-epsv no; set ftp:fix-pasv-address no",
                "get big.bin -o lftp-lan.bin",
                &fx.work,
            )
        });
        let r = out_curl.join().unwrap();
        assert!(curl_227(&r).contains("203,0,113,10,"), "{}", r.stderr);
        let r = lan_curl.join().unwrap();
        assert!(curl_227(&r).contains("192,0,2,10,"), "{}", r.stderr);
        out_py.join().unwrap().ok();
        lan_py.join().unwrap().ok();
        lan_lftp.join().unwrap().ok();
    });
    assert_same_file(&fx.out("lftp-lan.bin"), &big);
    // EPSV still works from both sides.
    net.curl_get("out", &outside, &[], &fx.out("f.bin"), &big);
    net.curl_get("lan", &inside, &[], &fx.out("g.bin"), &big);
}

// ---------------------------------------------------------------------------
// 3. Firewall: only the control port and the passive range
// ---------------------------------------------------------------------------

/// A server whose --pasv-ports differ from what the firewall opens breaks
/// every passive transfer (the SYNs are dropped); with the same range, curl,
/// lftp and ftplib all get through.
#[test]
fn firewall_opens_only_control_and_passive_range() {
    let net = Net::up(&["--pasv-ports", "50000-50003"]);
    let fx = files();
    let big = fx.root.join("big.bin");
    let b = big.to_string_lossy().into_owned();
    let u = url(PUBLIC, "big.bin");
    {
        let _srv = net.serve(
            &fx,
            "srv",
            &["--pasv-address", PUBLIC, "--pasv-ports", "50010-50013"],
        );
        let dropped = net.counter("srvgw", "dropped");
        let r = net.curl("out", &["--connect-timeout", "2", "-o", "/dev/null", &u]);
        r.fails();
        // The classic symptom: the data connection hangs until a timeout.
        assert_eq!(r.status.code(), Some(28), "{}", r.stderr);
        assert!(
            net.counter("srvgw", "dropped") > dropped,
            "the firewall dropped nothing"
        );
    }
    let _srv = net.serve(&fx, "srv", &["--pasv-address", PUBLIC]);
    let passive = net.counter("srvgw", "passive");
    net.curl_get("out", &u, &[], &fx.out("epsv.bin"), &big);
    net.curl_get("out", &u, &["--disable-epsv"], &fx.out("pasv.bin"), &big);
    net.lftp(
        "out",
        &url(PUBLIC, ""),
        "set ftp:passive-mode on",
        "get big.bin -o l.bin",
        &fx.work,
    )
    .ok();
    assert_same_file(&fx.out("l.bin"), &big);
    net.ftplib(
        "out",
        &["get", PUBLIC, "21", &b, "big.bin", "--mode", "epsv"],
    )
    .ok();
    assert!(net.counter("srvgw", "passive") >= passive + 4);
}

/// Four passive ports, five clients: the fifth gets 425 at once (no hang),
/// and succeeds once another client's transfer has started.
#[test]
fn firewall_more_clients_than_passive_ports_get_425_then_succeed() {
    let net = Net::up(&[]);
    let fx = files();
    let small = fx.read("small.txt");
    let _srv = net.serve(&fx, "srv", &["--pasv-address", PUBLIC]);
    let ctl = sock(PUBLIC, 21);
    let mut holders: Vec<(Ftp, SocketAddr)> = (0..4)
        .map(|_| {
            let mut f = net.login("out", ctl);
            let a = f.pasv();
            (f, a)
        })
        .collect();
    let mut ports: Vec<u16> = holders.iter().map(|(_, a)| a.port()).collect();
    ports.sort();
    assert_eq!(ports, (RANGE.0..=RANGE.1).collect::<Vec<_>>());

    let mut extra = net.login("out", ctl);
    for verb in ["PASV", "EPSV"] {
        let t = Instant::now();
        let r = extra.cmd(verb);
        assert_eq!(r.code, 425, "{verb}: {r:?}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "{verb} took {:?}",
            t.elapsed()
        );
    }
    // A real client at this moment: a prompt failure, not a hang.
    let t = Instant::now();
    net.curl("out", &["-o", "/dev/null", &url(PUBLIC, "small.txt")])
        .fails();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // One holder transfers: its port goes back to the pool once connected.
    let (mut f, a) = holders.remove(0);
    let data = net.connect("out", a).unwrap();
    f.expect("RETR small.txt", 150);
    finish_retr(&mut f, data, &small, "holder's RETR");
    net.curl_get(
        "out",
        &url(PUBLIC, "small.txt"),
        &[],
        &fx.out("s.txt"),
        &fx.root.join("small.txt"),
    );
    let a = extra.pasv();
    let data = net.connect("out", a).unwrap();
    extra.expect("RETR small.txt", 150);
    finish_retr(&mut extra, data, &small, "retry after 425");
}

/// Four ports, 200 sequential passive transfers of one session through NAT
/// and firewall: its listener is kept and its port announced again for
/// each (nothing re-bound per file), while the port's finished
/// connections pile up in TIME_WAIT. Then sessions of their own, one
/// after another, bind every port of the range again — the busy one
/// included while its connections are still in TIME_WAIT
/// (SO_REUSEADDR): a small range is never exhausted.
#[test]
fn firewall_four_ports_two_hundred_transfers() {
    let net = Net::up(&[]);
    let fx = files();
    let small = fx.root.join("small.txt");
    let s = small.to_string_lossy().into_owned();
    let _srv = net.serve(&fx, "srv", &["--pasv-address", PUBLIC]);
    let get = |count: &str| {
        let r = net.ftplib(
            "out",
            &[
                "get",
                PUBLIC,
                "21",
                &s,
                "small.txt",
                "--trust-pasv",
                "--count",
                count,
            ],
        );
        r.ok();
        data_ports(&r)
    };
    let ports = get("200");
    assert_eq!(ports.len(), 200);
    assert!(
        ports.iter().all(|&p| p == ports[0]),
        "one session's PASVs announce its kept listener's port: {ports:?}"
    );
    assert!((RANGE.0..=RANGE.1).contains(&ports[0]), "{ports:?}");
    let tw = net.time_wait("srv", RANGE);
    assert!(
        tw > 4,
        "expected the session's finished connections in TIME_WAIT, got {tw}"
    );
    // Five new sessions: the range's ports in turn, the busy one again.
    let mut each: Vec<u16> = (0..5).flat_map(|_| get("1")).collect();
    assert_eq!(each.len(), 5, "{each:?}");
    assert!(each.contains(&ports[0]), "{each:?}");
    each.sort();
    each.dedup();
    assert_eq!(each, (RANGE.0..=RANGE.1).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------
// 4. Data theft
// ---------------------------------------------------------------------------

/// A third host connects to the announced passive port first: the server
/// closes that connection and still serves the real client. Then the third
/// host hammers the whole range while curl downloads, and gets nothing.
#[test]
fn data_theft_third_host_refused_real_client_gets_data() {
    let net = Net::up(&[]);
    let fx = files();
    let want = fx.read("big.bin");
    let srv = net.serve(&fx, "srv", &["--pasv-address", PUBLIC]);

    let mut f = net.login("out", sock(PUBLIC, 21));
    let a = f.pasv();
    let mut stolen = net.connect("thief", a).expect("the thief's TCP handshake");
    f.send_raw(b"RETR big.bin\r\n");
    stolen
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let got = read_all_lenient(&mut stolen);
    assert!(
        got.is_empty(),
        "the third host received {} bytes",
        got.len()
    );
    let data = net.connect("out", a).unwrap();
    let r = f.read_reply();
    assert_eq!(r.code, 150, "{r:?}");
    finish_retr(&mut f, data, &want, "RETR after the theft attempt");
    srv.wait_log(
        &format!("refused passive data connection from {THIEF}"),
        1,
        LOG_WAIT,
    );

    // Hammering.
    let stop = AtomicBool::new(false);
    let stolen_bytes = AtomicU64::new(0);
    let attempts = AtomicU64::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            net.within("thief", || {
                use std::io::Read;
                while !stop.load(Ordering::SeqCst) {
                    for p in RANGE.0..=RANGE.1 {
                        attempts.fetch_add(1, Ordering::SeqCst);
                        if let Ok(mut c) =
                            TcpStream::connect_timeout(&sock(PUBLIC, p), Duration::from_secs(1))
                        {
                            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
                            let mut buf = [0u8; 65536];
                            while let Ok(n) = c.read(&mut buf) {
                                if n == 0 {
                                    break;
                                }
                                stolen_bytes.fetch_add(n as u64, Ordering::SeqCst);
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        });
        for i in 0..5 {
            net.curl_get(
                "out",
                &url(PUBLIC, "big.bin"),
                &["--disable-epsv"],
                &fx.out(&format!("h{i}.bin")),
                &fx.root.join("big.bin"),
            );
        }
        stop.store(true, Ordering::SeqCst);
    });
    assert!(attempts.load(Ordering::SeqCst) > 0);
    assert_eq!(
        stolen_bytes.load(Ordering::SeqCst),
        0,
        "the third host got data"
    );
}

// ---------------------------------------------------------------------------
// 5. Bounce
// ---------------------------------------------------------------------------

/// PORT and EPRT naming a third host are refused, and no SYN reaches it
/// (a listener there and its nftables SYN counter both stay silent). With
/// --allow-foreign-data the same commands do reach it: the check is real.
#[test]
fn bounce_port_and_eprt_to_third_host_refused_no_syn_arrives() {
    let net = Net::up(&[]);
    let fx = files();
    let target = sock(THIEF, 40_000);
    let listener = net.within("thief", || TcpListener::bind(target).unwrap());
    {
        let _srv = net.serve(&fx, "srv", &["--pasv-address", PUBLIC]);
        let mut f = net.login("out", sock(PUBLIC, 21));
        for cmd in [
            format!("PORT {}", port_arg(target)),
            format!("EPRT {}", eprt_arg(target)),
        ] {
            let r = f.cmd(&cmd);
            assert_eq!(r.code, 500, "{cmd}: {r:?}");
            assert!(r.text().contains("RFC 2577"), "{r:?}");
            let r = f.cmd("RETR small.txt");
            assert_ne!(r.code, 150, "RETR after a refused {cmd}: {r:?}");
        }
        f.expect("NOOP", 200);
        assert!(connection_arrives(&listener, Duration::from_secs(DATA_TIMEOUT + 1)).is_none());
        assert_eq!(
            net.counter("thief", "syn-in"),
            0,
            "a SYN reached the third host"
        );
    }
    // The control: allowed, the server does connect to the third host.
    let _srv = net.serve(
        &fx,
        "srv",
        &["--pasv-address", PUBLIC, "--allow-foreign-data"],
    );
    let mut f = net.login("out", sock(PUBLIC, 21));
    f.expect(&format!("PORT {}", port_arg(target)), 200);
    f.send_raw(b"RETR small.txt\r\n");
    let c = connection_arrives(&listener, Duration::from_secs(5));
    assert!(
        c.is_some(),
        "with --allow-foreign-data the connection should arrive"
    );
    assert!(net.counter("thief", "syn-in") >= 1);
}

// ---------------------------------------------------------------------------
// 6. IPv6
// ---------------------------------------------------------------------------

/// No NAT on IPv6: the server's address is routed. EPSV and EPRT (curl,
/// lftp, ftplib) cross the router and its firewall.
#[test]
fn ipv6_epsv_and_eprt_across_a_routed_segment() {
    let net = Net::up(&[]);
    let fx = files();
    let big = fx.root.join("big.bin");
    let b = big.to_string_lossy().into_owned();
    let srv = net.serve(
        &fx,
        "srv",
        &["--listen", "0.0.0.0:21", "--listen", "[::]:21"],
    );
    assert_eq!(srv.addrs.len(), 2);
    let u = url(SERVER_V6, "big.bin");
    let r = net.curl_get("out", &u, &[], &fx.out("epsv.bin"), &big);
    assert!(r.stderr.contains("< 229"), "{}", r.stderr);
    let r = net.curl_get("out", &u, &["-P", "-"], &fx.out("eprt.bin"), &big);
    assert!(
        r.stderr.contains("EPRT |2|2001:db8:ff::50|"),
        "{}",
        r.stderr
    );
    net.ftplib("out", &["get", SERVER_V6, "21", &b, "big.bin"])
        .ok();
    net.ftplib(
        "out",
        &["get", SERVER_V6, "21", &b, "big.bin", "--mode", "active"],
    )
    .ok();
    net.lftp(
        "out",
        &url(SERVER_V6, ""),
        "set ftp:passive-mode off",
        "get big.bin -o l6.bin",
        &fx.work,
    )
    .ok();
    assert_same_file(&fx.out("l6.bin"), &big);
    // The raw view: the server connects from its own v6 address.
    let l = net.within("out", || TcpListener::bind(sock(OUT_V6, 0)).unwrap());
    let mut f = net.login("out", sock(SERVER_V6, 21));
    f.expect(&format!("EPRT {}", eprt_arg(l.local_addr().unwrap())), 200);
    f.expect("RETR small.txt", 150);
    let (mut data, from) = l.accept().unwrap();
    assert_eq!(from.ip(), SERVER_V6.parse::<IpAddr>().unwrap());
    assert_bytes_eq(
        "EPRT RETR",
        &read_all_lenient(&mut data),
        &fx.read("small.txt"),
    );
    assert_eq!(f.read_reply().code, 226);
}

// ---------------------------------------------------------------------------
// 7. --active-port-20
// ---------------------------------------------------------------------------

/// The firewall lets the server open connections out only from port 20.
/// Without --active-port-20 the active transfer is dropped (425); with it,
/// the data connection comes from port 21-1 and gets through.
#[test]
fn active_port_20_passes_a_source_port_firewall() {
    let net = Net::up(&["--active-sport", "20"]);
    let fx = files();
    let big = fx.root.join("big.bin");
    let b = big.to_string_lossy().into_owned();
    let u = url(PUBLIC, "big.bin");
    {
        let _srv = net.serve(&fx, "srv", &["--pasv-address", PUBLIC]);
        let dropped = net.counter("srvgw", "dropped");
        let r = net.curl("out", &["-P", "-", "-o", "/dev/null", &u]);
        r.fails();
        assert!(r.stderr.contains("< 425"), "{}", r.stderr);
        assert!(net.counter("srvgw", "dropped") > dropped);
    }
    let srv = net.serve(&fx, "srv", &["--pasv-address", PUBLIC, "--active-port-20"]);
    // The raw view: the connection comes from port 20 (the router's
    // masquerade keeps the port).
    let l = net.within("out", || TcpListener::bind(sock(OUT, 0)).unwrap());
    let mut f = net.login("out", sock(PUBLIC, 21));
    f.expect(&format!("PORT {}", port_arg(l.local_addr().unwrap())), 200);
    f.expect("RETR small.txt", 150);
    let (mut data, from) = l.accept().unwrap();
    assert_eq!(from, sock(PUBLIC, 20));
    assert_bytes_eq(
        "PORT RETR",
        &read_all_lenient(&mut data),
        &fx.read("small.txt"),
    );
    assert_eq!(f.read_reply().code, 226);
    f.quit();

    net.curl_get("out", &u, &["-P", "-"], &fx.out("c.bin"), &big);
    net.ftplib(
        "out",
        &[
            "get", PUBLIC, "21", &b, "big.bin", "--mode", "active", "--count", "3",
        ],
    )
    .ok();
    net.lftp(
        "out",
        &url(PUBLIC, ""),
        "set ftp:passive-mode off",
        "get big.bin -o l.bin",
        &fx.work,
    )
    .ok();
    assert_same_file(&fx.out("l.bin"), &big);
    assert!(net.counter("srvgw", "outbound") >= 6);
    assert!(
        !srv.log_text().contains("cannot bind"),
        "{}",
        srv.log_text()
    );
}

// ---------------------------------------------------------------------------
// Hostnames, SIGHUP, shards
// ---------------------------------------------------------------------------

/// --pasv-address and map targets given as names are resolved at start
/// and again on SIGHUP; a name that stops resolving keeps its address.
/// (`ip netns exec` shows the server /etc/netns/NS/hosts as /etc/hosts, so
/// the test changes "DNS" without touching the machine's; a name the hosts
/// file lacks fails at once, as topology.sh gives every namespace a
/// resolv.conf whose nameserver refuses at once.)
#[test]
fn pasv_address_hostname_is_reresolved_on_sighup() {
    let net = Net::up(&[]);
    let fx = files();
    let etc = PathBuf::from("/etc/netns").join(net.ns("srv"));
    std::fs::create_dir_all(&etc).unwrap();
    let hosts = etc.join("hosts");
    // Written in place (same inode): the bind mount keeps showing it.
    let write_hosts = |public: Option<&str>| {
        let mut text = String::from("127.0.0.1 localhost\n192.0.2.10 lan.example.test\n");
        if let Some(p) = public {
            text.push_str(&format!("{p} ftp.example.test\n"));
        }
        std::fs::write(&hosts, text).unwrap();
    };
    write_hosts(Some(PUBLIC));
    let srv = net.serve(
        &fx,
        "srv",
        &[
            "--pasv-address",
            "ftp.example.test",
            "--pasv-address-map",
            "192.0.2.0/24=lan.example.test",
        ],
    );
    let big = fx.root.join("big.bin");
    net.curl_get(
        "out",
        &url(PUBLIC, "big.bin"),
        &["--disable-epsv", "--no-ftp-skip-pasv-ip"],
        &fx.out("a.bin"),
        &big,
    );
    let r = net.curl_get(
        "lan",
        &url(SERVER_LAN, "big.bin"),
        &["--disable-epsv", "--no-ftp-skip-pasv-ip"],
        &fx.out("b.bin"),
        &big,
    );
    assert!(curl_227(&r).contains("192,0,2,10,"), "{}", r.stderr);

    let announced = |role: &str, to: &str| -> IpAddr {
        let mut f = net.login(role, sock(to, 21));
        let a = f.pasv().ip();
        f.quit();
        a
    };
    let wait_for = |want: &str| {
        let deadline = Instant::now() + LOG_WAIT;
        loop {
            let got = announced("out", PUBLIC);
            if got == want.parse::<IpAddr>().unwrap() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "227 still announces {got}, want {want}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(PUBLIC);
    write_hosts(Some("203.0.113.11"));
    srv.signal(libc::SIGHUP);
    wait_for("203.0.113.11");
    srv.wait_log(
        "ftp.example.test: 203.0.113.10 -> 203.0.113.11",
        1,
        LOG_WAIT,
    );
    // The name disappears: the last address stays, the log says why.
    write_hosts(None);
    srv.signal(libc::SIGHUP);
    srv.wait_log("keeping 203.0.113.11", 1, LOG_WAIT);
    assert_eq!(
        announced("out", PUBLIC),
        "203.0.113.11".parse::<IpAddr>().unwrap()
    );
    assert_eq!(
        announced("lan", SERVER_LAN),
        SERVER_LAN.parse::<IpAddr>().unwrap()
    );
}

/// --cores 2 splits the four passive ports two and two; with the map, LAN
/// and outside sessions on either shard get their own address, no port is
/// handed out twice, and the fifth concurrent PASV gets 425 whichever shard
/// takes it.
#[test]
fn two_shards_split_the_range_with_the_map() {
    let net = Net::up(&[]);
    let fx = files();
    let small = fx.read("small.txt");
    let _srv = net.serve(
        &fx,
        "srv",
        &[
            "--cores",
            "2",
            "--pasv-address",
            PUBLIC,
            "--pasv-address-map",
            "192.0.2.0/24=192.0.2.10",
        ],
    );
    let mut held: Vec<(Ftp, SocketAddr, u32, &str)> = Vec::new();
    let mut tries = 0;
    while held.len() < 4 {
        tries += 1;
        assert!(
            tries <= 60,
            "only {} PASVs succeeded in 60 sessions",
            held.len()
        );
        let (role, ctl) = if tries % 2 == 0 {
            ("out", PUBLIC)
        } else {
            ("lan", SERVER_LAN)
        };
        let mut f = net.login(role, sock(ctl, 21));
        let shard = f.stat_counters().shard;
        let r = f.cmd("PASV");
        match r.code {
            227 => {
                let a = parse_pasv(&r.lines[0]).unwrap();
                let want: IpAddr = if role == "out" { PUBLIC } else { SERVER_LAN }
                    .parse()
                    .unwrap();
                assert_eq!(a.ip(), want, "{role} on shard {shard}: {r:?}");
                held.push((f, a, shard, role));
            }
            425 => {
                // This session's shard has lent both its ports already.
                let on_shard = held.iter().filter(|h| h.2 == shard).count();
                assert_eq!(
                    on_shard, 2,
                    "425 on shard {shard} with {on_shard} ports lent"
                );
            }
            _ => panic!("PASV: {r:?}"),
        }
    }
    let mut by_port: Vec<(u16, u32)> = held.iter().map(|h| (h.1.port(), h.2)).collect();
    by_port.sort();
    let ports: Vec<u16> = by_port.iter().map(|p| p.0).collect();
    assert_eq!(ports, (RANGE.0..=RANGE.1).collect::<Vec<_>>());
    // Contiguous halves: 50000-50001 on one shard, 50002-50003 on the other.
    assert_eq!(by_port[0].1, by_port[1].1, "{by_port:?}");
    assert_eq!(by_port[2].1, by_port[3].1, "{by_port:?}");
    assert_ne!(by_port[0].1, by_port[2].1, "{by_port:?}");
    for _ in 0..4 {
        let mut f = net.login("out", sock(PUBLIC, 21));
        assert_eq!(f.cmd("PASV").code, 425);
    }
    for (mut f, a, _, role) in held {
        let data = net.connect(role, a).unwrap();
        f.expect("RETR small.txt", 150);
        finish_retr(&mut f, data, &small, &format!("{role} RETR via {a}"));
    }
}

// ---------------------------------------------------------------------------
// Start-up validation (no namespaces needed)
// ---------------------------------------------------------------------------

#[test]
fn bad_pasv_address_or_map_is_refused_at_start() {
    let fx = Fixture::new();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--pasv-address-map", "192.0.2.0/33=192.0.2.10"],
            &["--pasv-address-map", "prefix length"],
        ),
        (
            &["--pasv-address-map", "192.0.2.7/24=192.0.2.10"],
            &["did you mean 192.0.2.0/24"],
        ),
        (
            &["--pasv-address-map", "lan=192.0.2.10"],
            &["expected an IPv4 network"],
        ),
        (&["--pasv-address-map", "192.0.2.0/24"], &["CIDR=ADDR"]),
        (
            &["--pasv-address-map", "2001:db8::/32=192.0.2.10"],
            &["IPv6 network never matches"],
        ),
        (
            &["--pasv-address-map", "192.0.2.0/24=2001:db8::1"],
            &["IPv4 address"],
        ),
        (
            &["--pasv-address-map", "192.0.2.0/24=no-such-host.invalid"],
            &["cannot resolve"],
        ),
        (
            &[
                "--pasv-address-map",
                "192.0.2.0/24=192.0.2.10",
                "--pasv-address-map",
                "192.0.2.0/24=192.0.2.11",
            ],
            &["already mapped"],
        ),
        (
            &["--pasv-address", "no-such-host.invalid"],
            &["--pasv-address", "cannot resolve"],
        ),
        (&["--pasv-address", "2001:db8::1"], &["IPv4"]),
    ];
    for (bad, mention) in cases {
        let r = Server::builder().args(bad).start_fails(&fx);
        for m in *mention {
            assert!(
                r.stderr.contains(m),
                "{bad:?}: stderr lacks {m:?}:\n{}",
                r.stderr
            );
        }
    }
}
