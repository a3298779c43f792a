//! The command line: help texts, clear errors for bad flags (non-zero
//! exit, the flag named, nothing served), --pasv-address, several
//! --listen addresses.

mod common;

use std::net::TcpListener;
use std::time::Duration;

use common::*;

const FLAGS: [&str; 7] = [
    "--listen",
    "--root",
    "--cores",
    "--pasv-ports",
    "--pasv-address",
    "--active-port-20",
    "--allow-foreign-data",
];

fn ringftp(args: &[&str]) -> Run {
    run_client(30, BIN, args, None)
}

#[test]
fn help_texts() {
    let top = ringftp(&["--help"]);
    top.ok();
    for sub in ["serve", "loadtest"] {
        assert!(
            top.stdout.contains(sub),
            "ringftp --help lacks {sub}:\n{}",
            top.stdout
        );
    }
    let serve = ringftp(&["serve", "--help"]);
    serve.ok();
    let text = &serve.stdout;
    for flag in FLAGS.iter().chain(&["--xferlog", "--log-level"]) {
        assert!(
            text.contains(flag),
            "ringftp serve --help lacks {flag}:\n{text}"
        );
    }
    // Every flag with a value says its default.
    for default in [
        "0.0.0.0:2121",
        "50000-50999",
        "[default: the current directory",
    ] {
        assert!(
            text.contains(default),
            "serve --help lacks the default {default}:\n{text}"
        );
    }
    assert!(
        text.to_lowercase().contains("cpus available"),
        "serve --help does not say what --cores defaults to:\n{text}"
    );
    let v = ringftp(&["--version"]);
    v.ok();
    assert!(v.stdout.contains(env!("CARGO_PKG_VERSION")), "{}", v.stdout);
}

/// Runs `ringftp serve` with `bad` appended to otherwise good flags (each
/// replacing the good one it names) and asserts a prompt non-zero exit,
/// nothing served, and a message that names one of `mention`, not a panic.
#[track_caller]
fn rejects(fx: &Fixture, bad: &[&str], mention: &[&str]) {
    let r = Server::builder().ports(2).args(bad).start_fails(fx);
    let msg = r.stderr.to_lowercase();
    assert!(
        mention.iter().any(|m| msg.contains(&m.to_lowercase())),
        "{bad:?}: the error does not name {mention:?}:\n{}",
        r.stderr
    );
    assert!(
        !msg.contains("panicked"),
        "{bad:?}: panicked:\n{}",
        r.stderr
    );
}

/// A fd limit too low to start gives a clear error naming the limit, not
/// a panic: the limit below the floor, and one just above it with too
/// many shards for it (each shard's rings need fds).
#[test]
fn a_too_low_fd_limit_is_a_clear_error() {
    let fx = Fixture::new();
    for n in [8, 10, 12, 14, 16, 20, 31] {
        let r = Server::builder().ports(2).fd_limit(n).start_fails(&fx);
        assert!(
            r.stderr.contains("fd limit") || r.stderr.contains("Too many open files"),
            "RLIMIT_NOFILE {n}: the error does not say why:\n{}",
            r.stderr
        );
        assert!(
            !r.stderr.contains("panicked"),
            "RLIMIT_NOFILE {n}: panicked:\n{}",
            r.stderr
        );
    }
    let r = Server::builder().ports(2).fd_limit(31).start_fails(&fx);
    assert!(r.stderr.contains("needs at least 32"), "{}", r.stderr);
}

/// Start-up weighs the fds the limit leaves for clients (the limit less
/// the server's own) against `--max-sessions`: a warning when not even
/// that many idle sessions (one fd each) fit (an INFO line when that is
/// the default, not a choice), an INFO line when fewer can
/// transfer at once (4 fds each), nothing when all can; and again when
/// SIGHUP changes `--max-sessions`.
#[test]
fn a_fd_limit_below_max_sessions_is_named_at_start() {
    let fx = Fixture::new();
    let conf = fx.work.join("ringftp.toml");
    let start = |max: u64| {
        std::fs::write(&conf, format!("max-sessions = {max}\n")).unwrap();
        Server::builder()
            .fd_limit(1000)
            .args(&["--config", conf.to_str().unwrap()])
            .start(&fx)
    };
    // The limit, less the fds the server holds once up (about 30).
    let srv = start(990);
    let log = srv.wait_log("RLIMIT_NOFILE", 1, Duration::from_secs(20));
    assert!(
        log.contains(" WARN ")
            && log.contains("fd limit (RLIMIT_NOFILE) 1000 leaves")
            && log.contains("fewer than --max-sessions 990"),
        "{log}"
    );
    drop(srv);
    let srv = start(300);
    let log = srv.wait_log("RLIMIT_NOFILE", 1, Duration::from_secs(20));
    assert!(
        log.contains("sessions transferring at once")
            && log.contains("of --max-sessions 300")
            && !log.contains(" WARN "),
        "{log}"
    );
    // SIGHUP with a --max-sessions beyond the fds: the warning.
    std::fs::write(&conf, "max-sessions = 5000\n").unwrap();
    srv.signal(libc::SIGHUP);
    let log = srv.wait_log("fewer than --max-sessions 5000", 1, Duration::from_secs(20));
    assert!(log.contains(" WARN "), "{log}");
    drop(srv);
    let srv = start(100);
    let log = srv.log_synced();
    assert!(!log.contains("RLIMIT_NOFILE"), "{log}");
    drop(srv);
    // 0 is no limit: more than any fd limit.
    let srv = start(0);
    let log = srv.wait_log("RLIMIT_NOFILE", 1, Duration::from_secs(20));
    assert!(
        log.contains(" WARN ") && log.contains("fewer than --max-sessions 0 (no limit)"),
        "{log}"
    );
    drop(srv);
    // The default (20,000) is no one's choice: said, not warned about.
    let srv = Server::builder().fd_limit(1000).start(&fx);
    let log = srv.wait_log("RLIMIT_NOFILE", 1, Duration::from_secs(20));
    assert!(
        log.contains("fewer than the default --max-sessions 20000") && !log.contains(" WARN "),
        "{log}"
    );
}

#[test]
fn bad_flags_are_clear_errors() {
    let fx = Fixture::new();
    let cpus = std::thread::available_parallelism().unwrap().get();
    rejects(&fx, &["--cores", "0"], &["--cores"]);
    rejects(&fx, &["--cores", "9999"], &["--cores"]);
    rejects(&fx, &["--cores=-1"], &["--cores"]);
    rejects(&fx, &["--cores", "two"], &["--cores"]);
    rejects(&fx, &["--pasv-ports", "50999-50000"], &["--pasv-ports"]);
    rejects(&fx, &["--pasv-ports", "abc"], &["--pasv-ports"]);
    rejects(&fx, &["--pasv-ports", "0-10"], &["--pasv-ports"]);
    rejects(&fx, &["--pasv-ports", "70000-70001"], &["--pasv-ports"]);
    rejects(&fx, &["--pasv-ports", "100"], &["--pasv-ports"]);
    if cpus >= 2 {
        // A range smaller than the number of shards.
        rejects(
            &fx,
            &["--pasv-ports", "100-100", "--cores", "2"],
            &["--pasv-ports"],
        );
    } else {
        rejects(
            &fx,
            &["--pasv-ports", "100-100", "--cores", "2"],
            &["--cores"],
        );
    }
    rejects(&fx, &["--root", "/nonexistent"], &["/nonexistent"]);
    let file = fx.write("not-a-dir", b"x");
    rejects(
        &fx,
        &["--root", &file.to_string_lossy()],
        &["--root", "not-a-dir"],
    );
    rejects(&fx, &["--listen", "nonsense"], &["--listen"]);
    rejects(&fx, &["--listen", "127.0.0.1:99999"], &["--listen"]);
    rejects(
        &fx,
        &["--pasv-address", "no-such-host.invalid"],
        &["--pasv-address"],
    );
    rejects(&fx, &["--bogus-flag"], &["--bogus-flag"]);
    // A port someone else holds: the bind error names the address.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    rejects(
        &fx,
        &["--listen", &addr],
        &[&addr, "address already in use"],
    );
}

#[test]
fn pasv_address_is_announced() {
    let fx = Fixture::new();
    fx.standard_tree();
    let srv = Server::builder()
        .arg("--pasv-address")
        .arg("203.0.113.10")
        .start(&fx);
    let mut f = srv.login();
    let r = f.expect("PASV", 227);
    assert!(r.lines[0].contains("203,0,113,10,"), "{r:?}");
    let announced = parse_pasv(&r.lines[0]).unwrap();
    assert!((srv.pasv.0..=srv.pasv.1).contains(&announced.port()));
    // EPSV carries only the port and still works on the real address.
    assert_bytes_eq("EPSV RETR", &f.retr("hello.txt"), &fx.read("hello.txt"));

    // A hostname is resolved at start-up.
    let srv = Server::builder()
        .arg("--pasv-address")
        .arg("localhost")
        .start(&fx);
    let mut f = srv.login();
    let r = f.expect("PASV", 227);
    assert!(r.lines[0].contains("127,0,0,1,"), "{r:?}");
}

#[test]
fn default_pasv_address_is_the_control_connections_local_address() {
    let fx = Fixture::new();
    fx.standard_tree();
    // Listening on all addresses; the client comes in via 127.0.0.2.
    let srv = Server::builder().listen(&["0.0.0.0:0"]).start(&fx);
    let ctl = std::net::SocketAddr::new("127.0.0.2".parse().unwrap(), srv.port());
    let mut f = Ftp::connect(ctl);
    f.login();
    let r = f.expect("PASV", 227);
    assert!(r.lines[0].contains("127,0,0,2,"), "{r:?}");
}

#[test]
fn two_listen_addresses() {
    if !require_ipv6() {
        return;
    }
    let fx = Fixture::new();
    fx.standard_tree();
    let srv = Server::builder()
        .listen(&["127.0.0.1:0", "[::1]:0"])
        .cores(2)
        .ports(40)
        .start(&fx);
    assert_eq!(srv.addrs.len(), 2);
    assert!(
        srv.addrs[0].is_ipv4() && srv.addrs[1].is_ipv6(),
        "{:?}",
        srv.addrs
    );
    for a in &srv.addrs {
        let mut f = Ftp::connect(*a);
        f.login();
        assert_bytes_eq(
            &format!("RETR via {a}"),
            &f.retr("dir/b.bin"),
            &fx.read("dir/b.bin"),
        );
        f.quit();
    }
}

#[test]
fn one_listening_line_per_listener_not_per_shard() {
    let fx = Fixture::new();
    let cpus = std::thread::available_parallelism().unwrap().get();
    let srv = Server::builder().cores(cpus.min(2)).ports(10).start(&fx);
    // The harness waited for the first `listening on` line; no second one
    // may follow.
    let more = srv.more_stdout(Duration::from_millis(1500));
    let listening = 1 + more
        .iter()
        .filter(|l| l.starts_with("listening on "))
        .count();
    assert_eq!(listening, 1, "stdout after the first line: {more:?}");
    let addr = srv.addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0, "the real port is printed, not 0");
}

#[test]
fn active_port_20_connects_from_the_port_below_the_control_port() {
    let fx = Fixture::new();
    fx.standard_tree();
    // Port L-1 of a kernel-chosen L can be held by some other socket on
    // this machine (often a client's ephemeral port); the server then logs
    // it and falls back to an ephemeral port. Try a few fresh servers: at
    // least one must connect from L-1, and every miss must be that logged
    // fallback, not a silent one.
    for attempt in 1..=10 {
        let srv = Server::builder().arg("--active-port-20").start(&fx);
        let mut f = srv.login();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let (got, from) = f.transfer_active(&l, "RETR dir/b.bin");
        assert_bytes_eq("active RETR", &got, &fx.read("dir/b.bin"));
        if from.port() == srv.port() - 1 {
            return;
        }
        let log = srv.log_synced();
        assert!(
            log.contains("--active-port-20: cannot bind"),
            "attempt {attempt}: the data connection came from {from}, not L-1 = {}, and the log does not say why:\n{log}",
            srv.port() - 1
        );
    }
    panic!("--active-port-20: no data connection came from port L-1 in 10 attempts");
}
