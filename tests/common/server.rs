//! The server under test. [`ServerBuilder`] starts the real `ringftp
//! serve` with a fixture's root, one core, a passive port block of its own
//! (see [`ports`](super::ports)) and debug logs into a file, either plainly
//! on loopback or inside a network namespace (`ip netns exec`, which execs
//! the server itself, so the child is the server), and waits for its
//! `listening on ADDR` lines: a server asked for port 0 prints the port the
//! kernel chose. [`Server`] is the running process, stopped on drop (also
//! while a test panics, when it prints the end of the log). Another FTP
//! server that prints the same line (pyftpdlib as the load generator's
//! reference) starts through [`Server::launch`] and is handled the same.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use super::{
    assert_bytes_eq, die_with_parent, port_block, run_client_in, Fixture, Ftp, Place, PortBlock,
    Run, BIN,
};

/// How long a server may take to print its `listening on` lines.
const START_LIMIT: Duration = Duration::from_secs(20);

/// Options for starting `ringftp serve`. A flag the builder sets itself
/// (`--root`, `--listen`, `--cores`, `--pasv-ports`, `--log-level`) is left
/// out when the extra arguments ([`arg`](Self::arg), [`args`](Self::args))
/// give it, so a test can replace any of them.
pub struct ServerBuilder {
    root: Option<PathBuf>,
    listen: Vec<String>,
    cores: usize,
    ports: u16,
    pasv_range: Option<(u16, u16)>,
    log_level: String,
    extra: Vec<String>,
    fd_limit: Option<u64>,
    netns: Option<String>,
    env: Vec<(String, String)>,
}

impl Default for ServerBuilder {
    fn default() -> Self {
        ServerBuilder {
            root: None,
            listen: vec!["127.0.0.1:0".into()],
            cores: 1,
            ports: 10,
            pasv_range: None,
            log_level: "debug".into(),
            extra: Vec::new(),
            fd_limit: None,
            netns: None,
            env: Vec::new(),
        }
    }
}

/// What [`ServerBuilder`] decided: the arguments after the program and
/// what the [`Server`] needs to know about them.
struct Plan {
    args: Vec<String>,
    root: PathBuf,
    listeners: usize,
    pasv: (u16, u16),
    ports: Option<PortBlock>,
    graceful_stop: bool,
    /// Give the process a stdin pipe and hold it open (else /dev/null).
    hold_stdin: bool,
}

impl ServerBuilder {
    /// Serve this directory instead of the fixture's root.
    pub fn root(mut self, dir: &Path) -> Self {
        self.root = Some(dir.to_path_buf());
        self
    }

    /// Replaces the listen addresses.
    pub fn listen(mut self, addrs: &[&str]) -> Self {
        self.listen = addrs.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn cores(mut self, n: usize) -> Self {
        self.cores = n;
        self
    }

    /// How many passive ports (a block leased for this server alone).
    pub fn ports(mut self, n: u16) -> Self {
        self.ports = n;
        self
    }

    /// A fixed passive range instead of a leased block: for a server alone
    /// in its own network namespace, where no other server can clash.
    pub fn pasv_ports(mut self, lo: u16, hi: u16) -> Self {
        self.pasv_range = Some((lo, hi));
        self
    }

    /// `--log-level` (default `debug`: several tests read the log).
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = level.into();
        self
    }

    /// An extra command-line argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.extra.push(a.into());
        self
    }

    /// Extra command-line arguments.
    pub fn args(mut self, args: &[&str]) -> Self {
        self.extra.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Starts the server with RLIMIT_NOFILE set to `n` (soft and hard, so
    /// the server cannot raise it): for running it out of fds on purpose.
    pub fn fd_limit(mut self, n: u64) -> Self {
        self.fd_limit = Some(n);
        self
    }

    /// Sets an environment variable for the server (`TZ`, for one).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Runs the server inside the network namespace `ns` (as named by
    /// `ip netns`).
    pub fn netns(mut self, ns: &str) -> Self {
        self.netns = Some(ns.into());
        self
    }

    /// The value after `flag` in the extra arguments, or `""` when the
    /// flag is there without one; `None` when it is not given.
    fn given(&self, flag: &str) -> Option<&str> {
        let i = self.extra.iter().position(|a| a == flag)?;
        Some(self.extra.get(i + 1).map_or("", String::as_str))
    }

    fn plan(&self, fx: &Fixture, log_level: bool) -> Plan {
        let root = match self.given("--root") {
            Some(r) => PathBuf::from(r),
            None => self.root.clone().unwrap_or_else(|| fx.root.clone()),
        };
        let mut ports = None;
        let pasv = match (self.given("--pasv-ports"), self.pasv_range) {
            (Some(r), _) => r
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .unwrap_or((0, 0)),
            (None, Some(r)) => r,
            (None, None) => {
                let block = port_block(self.ports);
                let r = (block.lo, block.hi);
                ports = Some(block);
                r
            }
        };
        let mut args: Vec<String> = vec!["serve".into()];
        let mut flag = |name: &str, value: String| {
            if self.given(name).is_none() {
                args.push(name.into());
                args.push(value);
            }
        };
        flag("--root", root.to_string_lossy().into_owned());
        flag("--cores", self.cores.to_string());
        flag("--pasv-ports", format!("{}-{}", pasv.0, pasv.1));
        if log_level {
            flag("--log-level", self.log_level.clone());
        }
        if self.given("--listen").is_none() {
            for l in &self.listen {
                args.push("--listen".into());
                args.push(l.clone());
            }
        }
        args.extend(self.extra.iter().cloned());
        let listen: Vec<&String> = args
            .windows(2)
            .filter(|w| w[0] == "--listen")
            .map(|w| &w[1])
            .collect();
        // A server on a fixed port (21 in a namespace) is stopped with
        // SIGTERM first: a killed process's io_uring is torn down
        // asynchronously, and until then its listening socket (held by
        // in-flight ACCEPTs) stays in the SO_REUSEPORT group, where it
        // takes, then resets, connections meant for the next server on
        // that port. Port 0 is never reused that way.
        let graceful_stop = listen
            .iter()
            .any(|l| l.parse::<SocketAddr>().is_ok_and(|a| a.port() != 0));
        Plan {
            listeners: listen.len(),
            args,
            root,
            pasv,
            ports,
            graceful_stop,
            hold_stdin: false,
        }
    }

    /// The program and arguments that run `plan` (`ip netns exec` first
    /// for a namespace).
    fn command(&self, plan: &Plan) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, BIN]);
                c
            }
            None => Command::new(BIN),
        };
        cmd.args(&plan.args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Starts the server and waits for its `listening on` lines.
    pub fn start(self, fx: &Fixture) -> Server {
        self.try_start(fx).unwrap_or_else(|why| panic!("{why}"))
    }

    /// [`Builder::start`], for a start that may fail: `Err` with what the
    /// server printed when it announced no listener within the start-up
    /// limit (or exited).
    pub fn try_start(self, fx: &Fixture) -> Result<Server, String> {
        let plan = self.plan(fx, true);
        // Started as root, the server drops to the ftp/nobody account: it
        // gets the test's tree, as an operator gives a service its
        // directories.
        if self.given("--user").is_none() {
            fx.give_to_server_user(&plan.root);
        }
        let mut cmd = self.command(&plan);
        if let Some(n) = self.fd_limit {
            // SAFETY: setrlimit is async-signal-safe and touches only the
            // struct on this stack.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: n,
                        rlim_max: n,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        Server::spawn(cmd, fx, plan)
    }

    /// Runs `ringftp serve` with these flags, for a start that must fail:
    /// asserts a non-zero exit within 20 s that is not a timeout, and no
    /// `listening on` line (a server that will not serve must not announce
    /// a listener). Without `--log-level` unless the extra arguments give
    /// one, so stderr holds what an operator would see. Returns the run for
    /// the caller's checks of stderr.
    #[track_caller]
    pub fn start_fails(self, fx: &Fixture) -> Run {
        let plan = self.plan(fx, false);
        let args: Vec<&str> = plan.args.iter().map(String::as_str).collect();
        let place = match &self.netns {
            Some(ns) => Place::Netns(ns),
            None => Place::Here,
        };
        let t = Instant::now();
        // With a fd limit: through prlimit(1), which sets it and execs.
        let nofile = self.fd_limit.map(|n| format!("--nofile={n}:{n}"));
        let r = match &nofile {
            Some(lim) => {
                let mut with: Vec<&str> = vec![lim, BIN];
                with.extend(&args);
                run_client_in(place, 30, "prlimit", &with, None, &[])
            }
            None => run_client_in(place, 30, BIN, &args, None, &[]),
        };
        let took = t.elapsed();
        r.fails();
        assert!(
            took < Duration::from_secs(20),
            "{}: took {took:?} to fail",
            r.what
        );
        assert!(
            !r.stdout.contains("listening on"),
            "{}: started serving:\n{}",
            r.what,
            r.stdout
        );
        r
    }
}

static NEXT_LOG: AtomicU32 = AtomicU32::new(0);

/// A running server; stopped on drop.
pub struct Server {
    child: Child,
    /// Held open for a server started by [`Server::launch`].
    _stdin: Option<ChildStdin>,
    /// The server's stdout, line by line, after the `listening on` lines.
    stdout: Mutex<mpsc::Receiver<String>>,
    /// The addresses from the `listening on` lines, in order.
    pub addrs: Vec<SocketAddr>,
    pub root: PathBuf,
    log: PathBuf,
    /// The passive port range it was given ((0, 0) for a server started
    /// by [`Server::launch`]).
    pub pasv: (u16, u16),
    /// The leased block behind `pasv`, given back after the process ends.
    _ports: Option<PortBlock>,
    graceful_stop: bool,
}

impl Server {
    pub fn builder() -> ServerBuilder {
        ServerBuilder::default()
    }

    /// Starts another FTP server, `cmd`, serving `root`: it must print one
    /// `listening on ADDR` line on stdout. Its stderr goes to the log; its
    /// stdin is a pipe held open until the server is dropped (a wrapper
    /// may exit when it closes, as tests/support/pyftpd.py does).
    pub fn launch(cmd: Command, fx: &Fixture, root: &Path) -> Server {
        let plan = Plan {
            args: Vec::new(),
            root: root.to_path_buf(),
            listeners: 1,
            pasv: (0, 0),
            ports: None,
            graceful_stop: false,
            hold_stdin: true,
        };
        Server::spawn(cmd, fx, plan).unwrap_or_else(|why| panic!("{why}"))
    }

    fn spawn(mut cmd: Command, fx: &Fixture, plan: Plan) -> Result<Server, String> {
        let log = fx.work.join(format!(
            "server-{}.log",
            NEXT_LOG.fetch_add(1, Ordering::SeqCst)
        ));
        let what = std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        let stdin = if plan.hold_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        cmd.env_remove("RUST_LOG")
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        die_with_parent(&mut cmd);
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));

        // Read stdout on a thread (so a silent server fails the test
        // instead of hanging it), for as long as the server runs.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(l) = line else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            _stdin: child.stdin.take(),
            child,
            stdout: Mutex::new(rx),
            addrs: Vec::new(),
            root: plan.root,
            log,
            pasv: plan.pasv,
            _ports: plan.ports,
            graceful_stop: plan.graceful_stop,
        };
        let deadline = Instant::now() + START_LIMIT;
        while server.addrs.len() < plan.listeners {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = server.stdout.lock().unwrap().recv_timeout(left);
            match line {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("listening on ") {
                        let addr = a
                            .trim()
                            .parse()
                            .unwrap_or_else(|e| panic!("bad listening line {line:?}: {e}"));
                        server.addrs.push(addr);
                    }
                }
                Err(_) => {
                    return Err(format!(
                    "{what} printed {} of {} `listening on` lines within {START_LIMIT:?}; log:\n{}",
                    server.addrs.len(),
                    plan.listeners,
                    server.log_text()
                ))
                }
            }
        }
        Ok(server)
    }

    /// The first listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    pub fn port(&self) -> u16 {
        self.addr().port()
    }

    /// `ftp://ADDR:PORT` for the first listener (IPv6 in brackets).
    pub fn url(&self) -> String {
        format!("ftp://{}", self.addr())
    }

    /// A logged-in (anonymous) control connection.
    pub fn login(&self) -> Ftp {
        let mut f = Ftp::connect(self.addr());
        f.login();
        f
    }

    /// The server's log so far (stderr, at debug level by default).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The lines the server prints on stdout after its `listening on`
    /// lines, collected for `wait`.
    pub fn more_stdout(&self, wait: Duration) -> Vec<String> {
        let rx = self.stdout.lock().unwrap();
        let deadline = Instant::now() + wait;
        let mut lines = Vec::new();
        while let Ok(l) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            lines.push(l);
        }
        lines
    }

    /// The first stdout line (after the `listening on` lines) that starts
    /// with `prefix`, waiting up to `wait` for it; the lines before it are
    /// dropped.
    #[track_caller]
    pub fn stdout_line(&self, prefix: &str, wait: Duration) -> String {
        let rx = self.stdout.lock().unwrap();
        let deadline = Instant::now() + wait;
        loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) if l.starts_with(prefix) => return l,
                Ok(_) => {}
                Err(_) => panic!("no stdout line starting {prefix:?} within {wait:?}"),
            }
        }
    }

    /// The log once it holds every line the server logged before this
    /// call. The server writes its log from a thread of its own (a slow
    /// reader never stalls a shard), so a line logged just before a reply
    /// may reach the file just after the client read that reply. This
    /// sends `NOOP <marker>` on a new session, waits for the marker's
    /// debug line (the log is written in order) and returns the log. Needs
    /// `--log-level debug` (the builder's default).
    #[track_caller]
    pub fn log_synced(&self) -> String {
        self.log_synced_with(Ftp::connect(self.addr()))
    }

    /// [`Server::log_synced`] from the local address `from`, for a test
    /// whose server refuses the usual one (a ban, a deny list).
    #[track_caller]
    pub fn log_synced_from(&self, from: std::net::IpAddr) -> String {
        self.log_synced_with(Ftp::connect_from(from, self.addr()))
    }

    #[track_caller]
    fn log_synced_with(&self, mut f: Ftp) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let marker = format!(
            "log-sync-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        f.expect(&format!("NOOP {marker}"), 200);
        f.quit();
        self.wait_log(&marker, 1, Duration::from_secs(20))
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Asserts the server still serves: the process runs, a new session
    /// logs in, answers NOOP and downloads `path` byte-exact.
    #[track_caller]
    pub fn assert_serving(&mut self, path: &str) {
        assert!(self.alive(), "ringftp exited; log:\n{}", self.log_text());
        let want = std::fs::read(self.root.join(path.trim_start_matches('/'))).unwrap();
        let mut f = self.login();
        f.expect("NOOP", 200);
        let got = f.retr(path);
        assert_bytes_eq(&format!("after-test download of {path}"), &got, &want);
        f.quit();
    }

    /// The process id (for signals and /proc).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `sig` (e.g. libc::SIGHUP) to the server.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.child.id());
    }

    /// Waits until the log contains `needle` `count` times in all; panics
    /// after `wait`. Returns the log.
    #[track_caller]
    pub fn wait_log(&self, needle: &str, count: usize, wait: Duration) -> String {
        let deadline = Instant::now() + wait;
        loop {
            let log = self.log_text();
            if log.matches(needle).count() >= count {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the log has no {count}x {needle:?} after {wait:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits up to `wait` for the process to exit; its status, or `None`
    /// if it still runs.
    pub fn wait_exit(&mut self, wait: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.graceful_stop && self.alive() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let _ = self.wait_exit(Duration::from_secs(2));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            print_log_tail(&self.log_text());
        }
    }
}

/// Prints the last 60 lines of a server's log (for a failing test).
pub fn print_log_tail(log: &str) {
    let tail: Vec<&str> = log.lines().rev().take(60).collect();
    eprintln!("---- server log (last {} lines) ----", tail.len());
    for l in tail.iter().rev() {
        eprintln!("{l}");
    }
}
