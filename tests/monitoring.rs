//! What an operator watches (issue 13): `/metrics` counts exactly what a
//! session did, `/sessions` shows a transfer while it runs (and `ringftp
//! who` prints it), `/health` turns 503 when a shutdown starts, refusal
//! lines name user, command, path and reason and are rate-limited per
//! client, `--log-format json` writes JSON, `--log-level` refuses what is
//! not a level.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

/// How long a test waits for something the server does at once.
const WAIT: Duration = Duration::from_secs(20);

/// `GET path` on the metrics address: (status, content type, body).
fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect_timeout(&addr, WAIT).expect("connect to --metrics-listen");
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let ctype = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_string();
    (status, ctype, body.to_string())
}

/// The address from the server's `metrics on ADDR` line.
fn metrics_addr(srv: &Server) -> SocketAddr {
    let line = srv.stdout_line("metrics on ", WAIT);
    line["metrics on ".len()..].trim().parse().unwrap()
}

/// A scrape: every sample, keyed by `name{labels}` as written.
fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (status, ctype, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad sample {l:?}"));
            (k.to_string(), v.parse::<f64>().unwrap())
        })
        .collect()
}

/// The `/sessions` report.
fn sessions(addr: SocketAddr) -> serde_json::Value {
    let (status, ctype, body) = http_get(addr, "/sessions");
    assert_eq!(status, 200, "{body}");
    assert_eq!(ctype, "application/json");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// Waits until `/metrics` says no session is open on any shard.
fn wait_sessions_closed(addr: SocketAddr) {
    wait_until("every session to close", WAIT, || {
        scrape(addr)
            .iter()
            .filter(|(k, _)| k.starts_with("ringftp_sessions_open{"))
            .all(|(_, v)| *v == 0.0)
    });
}

#[test]
fn metrics_move_by_exactly_what_a_session_did() {
    let fx = Fixture::new();
    let a = pattern(1, 100_000);
    let b = pattern(2, 300_000);
    let c = pattern(3, 50_000);
    let users = fx.users_file(
        "users.toml",
        &[Account::new("alice", &["list", "read", "write"])],
    );
    fx.write("alice/a.bin", &a);
    fx.write("alice/b.bin", &b);
    let srv = Server::builder()
        .users(&users)
        .args(&["--metrics-listen", "127.0.0.1:0"])
        .start(&fx);
    let m = metrics_addr(&srv);
    wait_until("/health to say 200", WAIT, || {
        http_get(m, "/health").0 == 200
    });
    let before = scrape(m);

    // login, LIST, two RETRs, one STOR, one refused command (alice may
    // not delete), QUIT.
    let mut f = srv.login_as("alice", "alice-pw");
    let listing = f.listing("LIST");
    assert_eq!(listing.lines().count(), 2, "{listing}");
    assert_bytes_eq("a.bin", &f.retr("a.bin"), &a);
    assert_bytes_eq("b.bin", &f.retr("b.bin"), &b);
    f.stor("c.bin", &c);
    f.expect("DELE a.bin", 550);
    // The last transfer's listener is kept for the session's next EPSV.
    let during = scrape(m);
    assert_eq!(during[r#"ringftp_passive_ports_kept{shard="0"}"#], 1.0);
    assert_eq!(during[r#"ringftp_passive_ports_leased{shard="0"}"#], 1.0);
    f.quit();
    wait_sessions_closed(m);
    let after = scrape(m);

    let mut want: BTreeMap<&str, f64> = BTreeMap::new();
    for (k, v) in [
        (r#"ringftp_sessions_total{shard="0"}"#, 1.0),
        (r#"ringftp_logins_total{outcome="ok"}"#, 1.0),
        (r#"ringftp_commands_total{verb="USER"}"#, 1.0),
        (r#"ringftp_commands_total{verb="PASS"}"#, 1.0),
        (r#"ringftp_commands_total{verb="EPSV"}"#, 4.0),
        (r#"ringftp_commands_total{verb="LIST"}"#, 1.0),
        (r#"ringftp_commands_total{verb="RETR"}"#, 2.0),
        (r#"ringftp_commands_total{verb="STOR"}"#, 1.0),
        (r#"ringftp_commands_total{verb="DELE"}"#, 1.0),
        (r#"ringftp_commands_total{verb="QUIT"}"#, 1.0),
        // 150 x4; 220, 230, 229 x4, 226 x4, 221; 331; 550.
        (r#"ringftp_replies_total{class="1xx"}"#, 4.0),
        (r#"ringftp_replies_total{class="2xx"}"#, 11.0),
        (r#"ringftp_replies_total{class="3xx"}"#, 1.0),
        (r#"ringftp_replies_total{class="5xx"}"#, 1.0),
        (
            r#"ringftp_transfers_total{direction="download",outcome="complete"}"#,
            2.0,
        ),
        (
            r#"ringftp_transfers_total{direction="upload",outcome="complete"}"#,
            1.0,
        ),
        (
            r#"ringftp_transfers_total{direction="listing",outcome="complete"}"#,
            1.0,
        ),
        (
            r#"ringftp_transfer_bytes_total{direction="upload",path="splice"}"#,
            c.len() as f64,
        ),
        (
            r#"ringftp_transfer_bytes_total{direction="listing",path="copied"}"#,
            listing.len() as f64,
        ),
        ("ringftp_upload_commits_total", 1.0),
        ("ringftp_listing_entries_total", 2.0),
    ] {
        want.insert(k, v);
    }
    for (dir, n) in [("download", 2.0), ("upload", 1.0), ("listing", 1.0)] {
        for h in ["duration", "first_byte"] {
            let count = format!("ringftp_transfer_{h}_seconds_count{{direction=\"{dir}\"}}");
            let inf =
                format!("ringftp_transfer_{h}_seconds_bucket{{direction=\"{dir}\",le=\"+Inf\"}}");
            let sum = format!("ringftp_transfer_{h}_seconds_sum{{direction=\"{dir}\"}}");
            for k in [&count, &inf] {
                assert_eq!(after[k] - before[k], n, "{k}");
            }
            assert!(after[&sum] > before[&sum], "{sum}");
        }
    }
    // A download's bytes went by sendfile or by splice (the page cache
    // decides), 400,000 in all.
    let dl = |s: &BTreeMap<String, f64>| {
        ["sendfile", "splice", "copied", "tls"]
            .iter()
            .map(|p| {
                s[&format!("ringftp_transfer_bytes_total{{direction=\"download\",path=\"{p}\"}}")]
            })
            .sum::<f64>()
    };
    assert_eq!(dl(&after) - dl(&before), (a.len() + b.len()) as f64);
    assert_eq!(
        after[r#"ringftp_transfer_bytes_total{direction="download",path="copied"}"#],
        0.0
    );

    // Every other series stayed where it was; histogram buckets other
    // than +Inf, sums and download bytes were checked above.
    let mut moved = Vec::new();
    for (k, v) in &after {
        let skip = k.contains("_seconds_bucket") && !k.contains("+Inf")
            || k.contains("_seconds_sum")
            || k.contains("_seconds_count")
            || k.contains("+Inf")
            || k.starts_with(r#"ringftp_transfer_bytes_total{direction="download""#);
        if skip {
            continue;
        }
        let delta = v - before.get(k).copied().unwrap_or(0.0);
        let expected = want.get(k.as_str()).copied().unwrap_or(0.0);
        if delta != expected {
            moved.push(format!("{k}: moved by {delta}, expected {expected}"));
        }
    }
    assert!(moved.is_empty(), "{moved:#?}");
    for k in want.keys() {
        assert!(after.contains_key(*k), "no series {k}");
    }
    assert_eq!(after[r#"ringftp_passive_ports_leased{shard="0"}"#], 0.0);
    assert_eq!(after[r#"ringftp_passive_ports_kept{shard="0"}"#], 0.0);
    assert_eq!(
        after[r#"ringftp_passive_ports{shard="0"}"#],
        srv.pasv.1 as f64 - srv.pasv.0 as f64 + 1.0
    );
}

#[test]
fn sessions_show_a_transfer_in_flight() {
    let fx = Fixture::new();
    fx.write("big.bin", &pattern(4, 8 << 20));
    // The test never reads the data connection: once the socket buffers
    // are full (a few MiB at most: the receive window grows only as the
    // client reads) the RETR waits, in flight, until the test lets go.
    // The rate limit only keeps it from busying the machine meanwhile.
    let srv = Server::builder()
        .cores(2)
        .args(&[
            "--metrics-listen",
            "127.0.0.1:0",
            "--max-rate-per-session",
            "256KiB",
        ])
        .start(&fx);
    let m = metrics_addr(&srv);
    let idle = srv.login();
    let mut f = srv.login();
    let data = f.epsv_connect();
    f.expect("RETR big.bin", 150);
    let me = f.socket().local_addr().unwrap().to_string();
    let mut row = serde_json::Value::Null;
    wait_until("/sessions to show the RETR moving bytes", WAIT, || {
        let r = sessions(m);
        assert_eq!(r["shards"], 2);
        row = r["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["peer"] == me.as_str())
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        row["transfer"]["bytes"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(row["user"], "anonymous", "{row}");
    assert_eq!(row["command"], "RETR big.bin", "{row}");
    assert_eq!(row["idle_seconds"], 0.0, "{row}");
    let t = &row["transfer"];
    assert_eq!(t["direction"], "download", "{row}");
    assert_eq!(t["path"], "/big.bin", "{row}");
    assert!(t["bytes_per_second"].as_f64().unwrap() > 0.0, "{row}");
    // The idle session is listed too, waiting for a command.
    let all = sessions(m);
    let me_idle = idle.socket().local_addr().unwrap().to_string();
    let other = all["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["peer"] == me_idle.as_str())
        .unwrap_or_else(|| panic!("the idle session is not listed: {all}"));
    assert!(
        other["command"].is_null() && other["transfer"].is_null(),
        "{other}"
    );

    let who = run_client(30, BIN, &["who", "--metrics", &m.to_string()], None);
    who.ok();
    let line = who
        .stdout
        .lines()
        .find(|l| l.contains(&me))
        .unwrap_or_else(|| panic!("ringftp who does not list {me}:\n{}", who.stdout));
    assert!(
        line.contains("anonymous") && line.contains("download /big.bin"),
        "{line}"
    );
    assert!(
        who.stdout.contains("2 session(s), 1 transferring"),
        "{}",
        who.stdout
    );
    // Given the FTP port by mistake, `who` says so (the server's greeting
    // shows what answered) instead of waiting out its timeout and
    // reporting EAGAIN.
    let wrong = run_client(
        30,
        BIN,
        &["who", "--metrics", &srv.addr().to_string()],
        None,
    );
    assert!(!wrong.success(), "{}", wrong.stdout);
    assert!(
        wrong.stderr.contains("not an HTTP server")
            && wrong.stderr.contains("220 ")
            && wrong.stderr.contains("--metrics-listen"),
        "{}",
        wrong.stderr
    );
    drop(data);
    drop(f);
    drop(idle);
}

#[test]
fn health_turns_503_when_a_shutdown_starts() {
    let fx = Fixture::new();
    fx.write("big.bin", &pattern(5, 8 << 20));
    let mut srv = Server::builder()
        .cores(2)
        .args(&[
            "--metrics-listen",
            "127.0.0.1:0",
            "--max-rate-per-session",
            "256KiB",
            "--shutdown-grace",
            "1h",
        ])
        .start(&fx);
    let m = metrics_addr(&srv);
    wait_until("/health to say 200", WAIT, || {
        http_get(m, "/health").0 == 200
    });
    let (_, _, body) = http_get(m, "/health");
    assert_eq!(body, "ok: 2 shard(s) accepting\n");
    assert_eq!(http_get(m, "/nosuch").0, 404);
    // A running transfer keeps the server draining (not gone) after the
    // signal: the test never reads its data connection, so it cannot
    // finish, and the grace period outlasts any test.
    let mut f = srv.login();
    let data = f.epsv_connect();
    f.expect("RETR big.bin", 150);
    srv.signal(libc::SIGTERM);
    wait_until("/health to say 503", WAIT, || {
        http_get(m, "/health").0 == 503
    });
    let (_, _, body) = http_get(m, "/health");
    assert!(body.starts_with("draining"), "{body}");
    // Let the transfer go: the server ends.
    drop(data);
    drop(f);
    let status = srv.wait_exit(WAIT).expect("ringftp still running");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[test]
fn refusal_lines_name_user_command_path_and_reason() {
    let fx = Fixture::new();
    fx.write("pub/a.txt", b"a\n");
    let srv = Server::builder().start(&fx);
    let mut f = srv.login();
    f.expect("STOR /pub/new file.txt", 550);
    f.expect("CWD /pub", 250);
    f.expect("SIZE nosuch.txt", 550);
    f.quit();
    let mut g = Ftp::connect(srv.addr());
    g.expect("USER nobody-here", 331);
    g.expect("PASS guess", 530);
    // A name that would pose as more fields stays one, quoted.
    g.expect("USER x user=admin code=230", 331);
    g.expect("PASS guess", 530);
    let log = srv.log_synced();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?}:\n{log}"))
            .to_string()
    };
    let stor = line("refused STOR");
    for part in [
        "INFO",
        "session{peer=127.0.0.1:",
        "Permission denied.",
        "user=anonymous",
        "command=STOR",
        "path=\"/pub/new file.txt\"",
        "code=550",
    ] {
        assert!(stor.contains(part), "{part:?} missing: {stor}");
    }
    // The path as resolved against the working directory, and the
    // filesystem's reason.
    let size = line("refused SIZE");
    assert!(
        size.contains("path=/pub/nosuch.txt") && size.contains("No such file"),
        "{size}"
    );
    let pass = line("refused PASS");
    assert!(
        pass.contains("WARN") && pass.contains("user=nobody-here") && pass.contains("no such user"),
        "{pass}"
    );
    assert!(
        log.contains(r#"user="x user=admin code=230" command=PASS"#),
        "{log}"
    );
    assert!(!log.contains("guess"), "a password in the log");
    // Completed transfers and anonymous logins are debug lines.
    for l in log.lines().filter(|l| l.contains("anonymous login")) {
        assert!(l.contains("DEBUG"), "{l}");
    }
}

#[test]
fn refusal_lines_are_rate_limited_per_client_and_still_counted() {
    let fx = Fixture::new();
    let srv = Server::builder()
        .args(&["--metrics-listen", "127.0.0.1:0"])
        .start(&fx);
    let m = metrics_addr(&srv);
    let before = scrape(m);
    const N: usize = 60;
    let started = Instant::now();
    let mut f = srv.login();
    for i in 0..N {
        f.expect(&format!("DELE f{i}"), 550);
    }
    let took = started.elapsed();
    f.quit();
    let log = srv.log_synced();
    let logged = log.lines().filter(|l| l.contains("refused DELE")).count();
    // A burst of 20, then one per 5 s (however slow the machine was).
    let allowed = 20 + 1 + took.as_secs() as usize / 5;
    assert!(
        (20..=allowed).contains(&logged),
        "{logged} refusal lines for {N} refusals in {took:?}"
    );
    // The metrics count every one.
    let after = scrape(m);
    let k = r#"ringftp_replies_total{class="5xx"}"#;
    assert_eq!(after[k] - before[k], N as f64);
}

/// The command a debug log line shows is escaped like every other client
/// text: ESC as `\x1b`, a bidirectional control (U+202E, which makes
/// the rest of a terminal line read backwards) as `\u{202e}`. Before,
/// the debug line wrote the command raw.
#[test]
fn debug_lines_escape_what_a_client_typed() {
    let fx = Fixture::new();
    let srv = Server::builder().log_level("debug").start(&fx);
    let mut f = srv.login();
    f.cmd_bytes("SIZE /x\u{202e}gpj.exe\u{2028}\x1b[2J".as_bytes());
    f.quit();
    let log = srv.log_synced();
    assert!(
        log.contains("SIZE /x\\u{202e}gpj.exe\\u{2028}\\x1b[2J"),
        "{log}"
    );
    assert!(!log.contains(['\u{202e}', '\u{2028}']), "{log}");
}

#[test]
fn json_log_lines_carry_the_fields() {
    let fx = Fixture::new();
    let srv = Server::builder().args(&["--log-format", "json"]).start(&fx);
    let mut f = srv.login();
    f.expect("RETR /nosuch.bin", 425);
    // A blank in the path: JSON has its own quoting, none is added.
    f.expect("MDTM /no such.bin", 550);
    f.quit();
    let log = srv.log_synced();
    let mut refusal = None;
    for l in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(v["timestamp"].is_string() && v["level"].is_string(), "{l}");
        if v["command"] == "MDTM" {
            refusal = Some(v);
        }
    }
    let v = refusal.unwrap_or_else(|| panic!("no MDTM refusal:\n{log}"));
    assert_eq!(v["user"], "anonymous");
    assert_eq!(v["path"], "/no such.bin");
    assert_eq!(v["code"], 550);
    assert!(
        v["span"]["peer"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{v}"
    );
}

#[test]
fn log_level_must_be_a_level_or_a_filter() {
    let fx = Fixture::new();
    for bad in ["verbose", "ringftp=loud", "", ",", " , "] {
        let r = Server::builder()
            .args(&["--log-level", bad])
            .start_fails(&fx);
        assert!(
            r.stderr.contains("--log-level") && r.stderr.contains("level"),
            "--log-level {bad:?}: {}",
            r.stderr
        );
    }
    // A filter with a target is fine: sessions' debug lines, the rest at
    // info.
    let srv = Server::builder()
        .log_level("info,ringftp::session=debug")
        .start(&fx);
    srv.login().quit();
    let log = srv.log_synced();
    assert!(
        log.contains("DEBUG") && log.contains("USER anonymous"),
        "{log}"
    );
    assert!(
        !log.contains("shard started"),
        "debug outside sessions:\n{log}"
    );
    drop(srv);
    // So is one that names a span: debug inside session spans only,
    // nothing at info outside them.
    let srv = Server::builder()
        .log_level("warn,ringftp[session]=debug")
        .start(&fx);
    srv.login().quit();
    let log = srv.log_synced();
    assert!(log.contains("USER anonymous"), "{log}");
    for line in log
        .lines()
        .filter(|l| l.contains(" INFO ") || l.contains(" DEBUG "))
    {
        assert!(
            line.contains("session{"),
            "a line outside a session: {line}\n{log}"
        );
    }
}

#[test]
fn a_log_reader_that_stops_reading_stalls_no_shard() {
    // stderr is a pipe nobody reads: it fills after 64 KiB. A server that
    // wrote its log lines itself would stop answering there; the writer
    // thread takes the wait instead (and would drop lines past 128,000
    // queued, counting them).
    let fx = Fixture::new();
    fx.give_to_server_user(&fx.root);
    let mut cmd = std::process::Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--cores", "1"])
        .args(["--metrics-listen", "127.0.0.1:0", "--log-level", "debug"])
        .arg("--root")
        .arg(&fx.root)
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let _stderr = child.stderr.take().unwrap(); // held open, never read
    let _child = Kill(child);
    let (mut ftp, mut metrics) = (None, None);
    while ftp.is_none() || metrics.is_none() {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        assert!(n > 0, "ringftp exited before it listened");
        if let Some(a) = line.trim().strip_prefix("listening on ") {
            ftp = Some(a.parse::<SocketAddr>().unwrap());
        } else if let Some(a) = line.trim().strip_prefix("metrics on ") {
            metrics = Some(a.parse::<SocketAddr>().unwrap());
        }
    }
    // Each command is a debug line of over 100 bytes: 2,000 of them are
    // three times what the pipe holds. Every reply must still come (the
    // harness fails a reply that takes longer than its I/O timeout).
    let mut f = Ftp::connect(ftp.unwrap());
    f.login();
    for _ in 0..2000 {
        f.expect("NOOP", 200);
    }
    f.quit();
    let m = scrape(metrics.unwrap());
    assert_eq!(m[r#"ringftp_commands_total{verb="NOOP"}"#], 2000.0);
    assert!(m.contains_key("ringftp_log_lines_dropped_total"));
}

/// `ringftp who` bounds the whole answer by its 5 s timeout, not each
/// read: an endpoint that trickles a byte every 200 ms (for 12 s here)
/// is given up on, with the reason, instead of holding it as long as it
/// trickles.
#[test]
fn who_gives_up_on_an_answer_that_trickles_past_its_timeout() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let trickler = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut req = [0u8; 512];
        let _ = s.read(&mut req);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\n");
        for _ in 0..60 {
            std::thread::sleep(Duration::from_millis(200));
            if s.write_all(b"x").is_err() {
                break;
            }
        }
    });
    let r = run_client(30, BIN, &["who", "--metrics", &addr.to_string()], None);
    r.fails();
    assert!(
        r.stderr.contains("no whole HTTP response within 5 s"),
        "{}",
        r.stderr
    );
    trickler.join().unwrap();
}

/// Clients that send their request a byte at a time hold nobody else's
/// answer: `/health` still answers while twenty of them keep at it (each
/// is cut off after a second in all, and several are answered at once).
/// Before, the one responder thread served connections in turn and gave
/// each read a second, so one client sending a byte every half second held
/// `/health` and `/metrics` for as long as its 8 KiB head lasted (found by
/// a review helper).
#[test]
fn dribbling_clients_do_not_hold_health() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Barrier};
    let fx = Fixture::new();
    let srv = Server::builder()
        .args(&["--metrics-listen", "127.0.0.1:0"])
        .start(&fx);
    let m = metrics_addr(&srv);
    const DRIPPERS: usize = 20;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Arc::new(Barrier::new(DRIPPERS + 1));
    let drippers: Vec<_> = (0..DRIPPERS)
        .map(|_| {
            let (stop, started) = (stop.clone(), started.clone());
            std::thread::spawn(move || {
                let mut first = true;
                // Again and again: the server cuts each connection off.
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(mut s) = TcpStream::connect_timeout(&m, WAIT) {
                        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n");
                        if std::mem::take(&mut first) {
                            started.wait();
                        }
                        while !stop.load(Ordering::Relaxed) && s.write_all(b"X").is_ok() {
                            std::thread::sleep(Duration::from_millis(200));
                        }
                    }
                }
            })
        })
        .collect();
    started.wait();
    let (status, _, body) = http_get(m, "/health");
    assert_eq!(status, 200, "{body}");
    stop.store(true, Ordering::Relaxed);
    for d in drippers {
        d.join().unwrap();
    }
}
