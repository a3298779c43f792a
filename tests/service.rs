//! Running as a public service (issue 12): the drop from root, what
//! anonymous may see, the default root, one server per address and the
//! zero-downtime hand-over, the config file and SIGHUP, the banner,
//! --allow/--deny, systemd readiness, the sandbox with reloads, and the
//! shipped unit file. These run as root (CI does).

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The `Name:` line of `/proc/PID/task/TID/status`, split into fields.
fn status_fields(status: &str, name: &str) -> Vec<String> {
    status
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} line"))
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

/// Every thread of `pid`: (name, status text).
fn threads(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = t.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        let status = std::fs::read_to_string(dir.join("status")).unwrap();
        out.push((comm.trim().to_string(), status));
    }
    out
}

/// The CPUs a thread may run on: its `Cpus_allowed_list` (e.g. `0-1`).
fn allowed_cpus(status: &str) -> String {
    status_fields(status, "Cpus_allowed_list").join(" ")
}

#[test]
fn each_shard_is_pinned_to_a_cpu_of_its_own() {
    let fx = Fixture::new();
    fx.standard_tree();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cores = cpus.min(2);
    let srv = Server::builder().cores(cores).start(&fx);
    let mut shards: Vec<(String, String)> = threads(srv.pid())
        .into_iter()
        .filter(|(name, _)| name.starts_with("ringftp-shard"))
        .map(|(name, status)| (name, allowed_cpus(&status)))
        .collect();
    shards.sort();
    assert_eq!(shards.len(), cores, "{shards:?}");
    for (name, allowed) in &shards {
        assert!(
            allowed.parse::<usize>().is_ok(),
            "{name} may run on CPUs {allowed}, not one"
        );
    }
    let mut each: Vec<_> = shards.iter().map(|s| &s.1).collect();
    each.sort();
    each.dedup();
    assert_eq!(each.len(), cores, "two shards share a CPU: {shards:?}");
    assert_eq!(srv.login().retr("hello.txt"), fx.read("hello.txt"));
}

#[test]
fn root_without_user_drops_to_the_ftp_account_in_every_thread() {
    require_root("the privilege tests");
    let fx = Fixture::new();
    fx.standard_tree();
    let srv = Server::builder().cores(2).start(&fx);
    let (name, uid, gid) = server_user();
    // The shards' listing workers and the blocking pool start on demand:
    // make them exist.
    let mut f = srv.login();
    f.listing("LIST dir");
    assert_eq!(f.retr("hello.txt"), fx.read("hello.txt"));
    let all = threads(srv.pid());
    assert!(
        all.len() >= 4,
        "{:?}",
        all.iter().map(|t| &t.0).collect::<Vec<_>>()
    );
    for (thread, status) in &all {
        // Real, effective, saved and filesystem ids.
        assert_eq!(
            status_fields(status, "Uid"),
            vec![uid.to_string(); 4],
            "{thread}"
        );
        assert_eq!(
            status_fields(status, "Gid"),
            vec![gid.to_string(); 4],
            "{thread}"
        );
        assert_eq!(status_fields(status, "NoNewPrivs"), ["1"], "{thread}");
        assert_eq!(
            status_fields(status, "CapEff"),
            ["0000000000000000"],
            "{thread}"
        );
        assert_eq!(
            status_fields(status, "CapPrm"),
            ["0000000000000000"],
            "{thread}"
        );
    }
    srv.wait_log(
        &format!("serving as {name} (started as root without --user)"),
        1,
        Duration::from_secs(20),
    );
    f.quit();
}

/// `ringftp serve --check-config --root ROOT EXTRA...`, as root runs it.
fn check_config(root: &std::path::Path, extra: &[&str]) -> Run {
    let root = root.to_str().unwrap();
    let args = [&["serve", "--check-config", "--root", root][..], extra].concat();
    run_client(20, BIN, &args, None)
}

/// A `--root` the service user may not enter would fail every command and
/// login: start-up refuses it, naming the flag and the fix. One it may
/// enter but not read (a `-wx` drop box) is served, with a warning that
/// listing `/` is refused, and files in it are reached by name. One
/// anonymous sessions cannot enter (no `o+x`) is named in a warning.
#[test]
fn a_root_the_service_user_cannot_use_is_named_at_start() {
    require_root("the privilege tests");
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    fx.write("f.txt", b"by name\n");
    // Root-owned, 0700: the server drops to ftp/nobody before serving.
    let locked = fx.work.join("locked");
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let r = Server::builder().root(&locked).start_fails(&fx);
    assert!(
        r.stderr.contains(&format!("--root {}", locked.display()))
            && r.stderr.contains("cannot enter it")
            && r.stderr.contains("chmod o+x"),
        "{}",
        r.stderr
    );
    // --check-config tries the root as the service user too.
    let check = |root: &std::path::Path| check_config(root, &[]);
    let r = check(&locked);
    r.fails();
    assert!(
        r.stderr.contains("cannot enter it") && !r.stderr.contains("configuration OK"),
        "{}",
        r.stderr
    );
    // Searchable, not readable, by the service user (its owner, 0311).
    let srv = Server::builder().start(&fx);
    // Logged after the check: the warning would be in the log by then.
    let log = srv.wait_log("ringftp serving", 1, Duration::from_secs(20));
    assert!(!log.contains("may not read --root"), "{log}");
    drop(srv);
    std::fs::set_permissions(&fx.root, std::fs::Permissions::from_mode(0o311)).unwrap();
    let r = check(&fx.root);
    r.ok();
    assert!(
        r.stderr.contains("warning: the service user")
            && r.stderr.contains("may not read --root")
            && r.stderr.contains("configuration OK"),
        "{}",
        r.stderr
    );
    let srv = Server::builder().start(&fx);
    srv.wait_log("may not read --root", 1, Duration::from_secs(20));
    let mut f = srv.login();
    assert_eq!(f.retr("f.txt"), b"by name\n");
    f.epsv();
    assert_eq!(f.cmd("LIST").code, 550);
    f.quit();
    drop(srv);
    // Usable by the service user, but not searchable by others: anonymous
    // sessions (which see only world-searchable directories) would be
    // refused everything; said at start unless anonymous is off.
    std::fs::set_permissions(&fx.root, std::fs::Permissions::from_mode(0o750)).unwrap();
    let srv = Server::builder().start(&fx);
    srv.wait_log(
        "mode 0750, not searchable by others",
        1,
        Duration::from_secs(20),
    );
    let mut f = srv.login();
    assert_eq!(f.cmd("SIZE f.txt").code, 550);
    f.quit();
    drop(srv);
    // Both at once (0300: the owner may not read, others not enter).
    std::fs::set_permissions(&fx.root, std::fs::Permissions::from_mode(0o300)).unwrap();
    let r = check(&fx.root);
    r.ok();
    assert!(
        r.stderr.contains("may not read --root") && r.stderr.contains("mode 0300, not searchable"),
        "{}",
        r.stderr
    );
    std::fs::set_permissions(&fx.root, std::fs::Permissions::from_mode(0o750)).unwrap();
    fx.write("alice/a.txt", b"a\n");
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    let srv = Server::builder()
        .users(&users)
        .args(&["--no-anonymous"])
        .start(&fx);
    let log = srv.wait_log("ringftp serving", 1, Duration::from_secs(20));
    assert!(!log.contains("not searchable"), "{log}");
    let mut f = srv.login_as("alice", "alice-pw");
    assert_eq!(f.retr("a.txt"), b"a\n");
    f.quit();
}

#[test]
fn user_flag_with_active_port_20_keeps_only_net_bind_service() {
    require_root("the privilege tests");
    let fx = Fixture::new();
    fx.standard_tree();
    let (name, uid, gid) = server_user();
    let srv = Server::builder()
        .args(&["--user", &format!("{uid}:{gid}"), "--active-port-20"])
        .start(&fx);
    for (thread, status) in threads(srv.pid()) {
        assert_eq!(
            status_fields(&status, "Uid"),
            vec![uid.to_string(); 4],
            "{thread}"
        );
        // CAP_NET_BIND_SERVICE is bit 10, alone in every set that counts.
        assert_eq!(
            status_fields(&status, "CapEff"),
            ["0000000000000400"],
            "{thread}"
        );
        assert_eq!(
            status_fields(&status, "CapPrm"),
            ["0000000000000400"],
            "{thread}"
        );
        assert_eq!(
            status_fields(&status, "CapBnd"),
            ["0000000000000400"],
            "{thread}"
        );
    }
    srv.wait_log(&format!("serving as {name}"), 1, Duration::from_secs(20));
    // (tests/nat.rs active_port_20_passes_a_source_port_firewall shows the
    // port-20 bind itself working after this drop.)
    let mut f = srv.login();
    assert_eq!(f.retr("hello.txt"), fx.read("hello.txt"));
    f.quit();
}

#[test]
fn user_root_keeps_root_and_says_so() {
    require_root("the privilege tests");
    let fx = Fixture::new();
    fx.write("f.txt", b"x\n");
    let srv = Server::builder().args(&["--user", "root"]).start(&fx);
    let status = std::fs::read_to_string(format!("/proc/{}/status", srv.pid())).unwrap();
    assert_eq!(status_fields(&status, "Uid"), ["0", "0", "0", "0"]);
    srv.wait_log("--user root: serving as root", 1, Duration::from_secs(20));
}

#[test]
fn only_root_may_switch_users_and_low_ports_say_how() {
    require_root("the privilege tests");
    let fx = Fixture::new();
    fx.give_to_server_user(&fx.root);
    let (_, uid, gid) = server_user();
    // Started as the unprivileged user itself, binding port 21.
    let setpriv = [
        format!("--reuid={uid}"),
        format!("--regid={gid}"),
        "--clear-groups".into(),
        "--inh-caps=-all".into(),
        "--bounding-set=-all".into(),
        BIN.into(),
        "serve".into(),
        "--root".into(),
        fx.root.to_string_lossy().into_owned(),
        "--pasv-ports".into(),
        "52990-52999".into(),
    ];
    let run = |extra: &[&str]| {
        let mut args: Vec<&str> = setpriv.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        run_client(20, "setpriv", &args, None)
    };
    let r = run(&["--listen", "127.0.0.1:21"]);
    r.fails();
    assert!(
        r.stderr.contains("setcap cap_net_bind_service=+ep"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("AmbientCapabilities=CAP_NET_BIND_SERVICE"),
        "{}",
        r.stderr
    );
    let r = run(&["--listen", "127.0.0.1:0", "--user", "root"]);
    r.fails();
    assert!(r.stderr.contains("only root can switch"), "{}", r.stderr);
}

/// Started as the service user with an ambient CAP_NET_BIND_SERVICE (what
/// dist/ringftp.service grants), the server gives it up once its
/// listeners are bound, as it does when it drops from root: no thread
/// keeps a capability without --active-port-20.
#[test]
fn capabilities_from_the_service_manager_are_given_up_after_binding() {
    require_root("the privilege tests");
    let fx = Fixture::new();
    fx.write("f", b"x\n");
    fx.give_to_server_user(&fx.root);
    let (_, uid, gid) = server_user();
    let block = port_block(4);
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={uid}"),
        &format!("--regid={gid}"),
        "--clear-groups",
        "--inh-caps=+net_bind_service",
        "--ambient-caps=+net_bind_service",
        BIN,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--pasv-ports",
        &format!("{}-{}", block.lo, block.hi),
        "--root",
    ])
    .arg(&fx.root);
    let srv = Server::launch(cmd, &fx, &fx.root);
    srv.wait_log("gave up the capabilities", 1, Duration::from_secs(20));
    let mut f = srv.login();
    assert_eq!(f.retr("f"), b"x\n");
    f.quit();
    for (thread, status) in threads(srv.pid()) {
        for set in ["CapEff", "CapPrm", "CapInh", "CapAmb"] {
            assert_eq!(
                status_fields(&status, set),
                ["0000000000000000"],
                "{thread} {set}"
            );
        }
    }
}

/// Asserts that `log` has the refusal of `verb` on `path` for not being
/// world-readable, as an operator reads it.
#[track_caller]
fn assert_not_world_readable_logged(log: &str, verb: &str, path: &str) {
    let refused = format!("refused {verb}: not world-readable");
    let at = format!("path={path}");
    assert!(
        log.lines().any(|l| l.contains(&refused) && l.contains(&at)),
        "{log}"
    );
}

/// A tree where the server's own user could read everything, but the
/// world may read only part of it.
fn published_tree(fx: &Fixture) {
    fx.write("alice/.keep", b"");
    fx.write("pub/open.txt", b"for everyone\n");
    fx.write("pub/secret.txt", b"not published\n");
    fx.write(
        "private/inner.txt",
        b"world-readable, in a closed directory\n",
    );
    fx.write("dropbox/in.txt", b"reachable, not listable\n");
    fx.write("openfile.txt", b"top level\n");
    fx.give_to_server_user(&fx.root);
    chmod(&fx.root.join("pub/secret.txt"), 0o600);
    chmod(&fx.root.join("private"), 0o700);
    chmod(&fx.root.join("dropbox"), 0o711);
}

#[test]
fn anonymous_sees_only_world_readable_files_and_directories() {
    let fx = Fixture::new();
    published_tree(&fx);
    let users = fx.users_file("users.toml", &[Account::full("alice").home("/")]);
    let srv = Server::builder().users(&users).start(&fx);
    // The server's user owns everything, so only the rule keeps these out.
    let mut f = srv.login();
    let top = f.listing("NLST");
    assert!(
        top.contains("pub") && top.contains("dropbox") && top.contains("openfile.txt"),
        "{top}"
    );
    assert!(!top.contains("private"), "{top}");
    let list = f.listing("LIST pub");
    assert!(
        list.contains("open.txt") && !list.contains("secret.txt"),
        "{list}"
    );
    let mlsd = f.listing("MLSD pub");
    assert!(
        mlsd.contains("open.txt") && !mlsd.contains("secret.txt"),
        "{mlsd}"
    );
    assert_eq!(f.retr("pub/open.txt"), b"for everyone\n");
    assert_eq!(f.retr("dropbox/in.txt"), b"reachable, not listable\n");
    for line in [
        "SIZE pub/secret.txt",
        "MDTM pub/secret.txt",
        "MLST pub/secret.txt",
        "CWD private",
        "SIZE private/inner.txt",
        "MLST private",
        "STAT private",
    ] {
        let r = f.cmd(line);
        assert_eq!(r.code, 550, "{line}: {r:?}");
    }
    for line in [
        "RETR pub/secret.txt",
        "RETR private/inner.txt",
        "LIST private",
        "NLST private/*.txt",
        "LIST dropbox",
        "MLSD dropbox",
    ] {
        f.epsv();
        let r = f.cmd(line);
        assert_eq!(r.code, 550, "{line}: {r:?}");
    }
    f.expect("CWD dropbox", 250);
    let deep = f.listing("LIST -R /");
    assert!(
        !deep.contains("inner.txt") && !deep.contains("secret.txt"),
        "{deep}"
    );
    f.quit();
    assert_not_world_readable_logged(&srv.log_synced(), "RETR", "/pub/secret.txt");
    // An account is not held to the rule (the kernel's permissions for
    // the server's user apply).
    let mut a = srv.login_as("alice", "alice-pw");
    assert_eq!(a.retr("pub/secret.txt"), b"not published\n");
    a.quit();
}

/// An anonymous session remembers the directories it has found
/// world-searchable (a mirror's worth, not the last few), so it does not
/// stat them again on every request; what it remembers never opens a
/// directory that was private when it looked, however many it has walked
/// through; and a directory made private is closed to every new session at
/// once (one already through it keeps passing until it logs in again, as
/// docs/operations.md says).
#[test]
fn a_directory_made_private_is_closed_to_new_anonymous_sessions_at_once() {
    let fx = Fixture::new();
    for i in 0..300 {
        fx.write(&format!("pub/d{i:03}/f.txt"), b"walked\n");
    }
    fx.write("pub/late/f.txt", b"published until now\n");
    fx.write("pub/closed/f.txt", b"never published\n");
    fx.give_to_server_user(&fx.root);
    chmod(&fx.root.join("pub/closed"), 0o750);
    let srv = Server::builder().start(&fx);
    let mut old = srv.login();
    for round in 0..2 {
        for i in 0..300 {
            let r = old.cmd(&format!("SIZE pub/d{i:03}/f.txt"));
            assert_eq!(r.code, 213, "round {round}, d{i:03}: {r:?}");
            let r = old.cmd("SIZE pub/closed/f.txt");
            assert_eq!(r.code, 550, "after d{i:03}: {r:?}");
        }
    }
    old.expect("SIZE pub/late/f.txt", 213);
    chmod(&fx.root.join("pub/late"), 0o750);
    let mut new = srv.login();
    for line in [
        "SIZE pub/late/f.txt",
        "CWD pub/late",
        "SIZE pub/closed/f.txt",
    ] {
        let r = new.cmd(line);
        assert_eq!(r.code, 550, "a new session: {line}: {r:?}");
    }
    new.epsv();
    assert_eq!(new.cmd("RETR pub/late/f.txt").code, 550);
    new.expect("SIZE pub/d299/f.txt", 213);
    // The session that passed through before the chmod still does.
    old.expect("SIZE pub/late/f.txt", 213);
    new.quit();
    old.quit();
}

/// What a listing leaves out for anonymous cannot be told from a name
/// that does not exist: every command answers a hidden path exactly as
/// it answers a missing one (ProFTPD's HideNoAccess; vsftpd answers both
/// alike). A directory that is shown but not listable (`0711`) says so.
#[test]
fn anonymous_cannot_tell_hidden_names_from_missing_ones() {
    let fx = Fixture::new();
    published_tree(&fx);
    let as_root = nix::unistd::geteuid().is_root();
    // Links: to a hidden file, to a shown one, a loop; a hidden file
    // whose name is a pattern.
    std::os::unix::fs::symlink("secret.txt", fx.root.join("pub/l_secret")).unwrap();
    std::os::unix::fs::symlink("open.txt", fx.root.join("pub/l_open")).unwrap();
    std::os::unix::fs::symlink("loop", fx.root.join("pub/loop")).unwrap();
    fx.write("pub/h*", b"hidden, named like a pattern\n");
    chmod(&fx.root.join("pub/h*"), 0o600);
    // Links from a public directory into one the world may not search
    // (0750: the server's user may): they must not publish what is there.
    fx.write("pub/privtrav/a.txt", b"behind a private directory\n");
    fx.write("pub/privtrav/sub/b.txt", b"deeper\n");
    chmod(&fx.root.join("pub/privtrav"), 0o750);
    std::os::unix::fs::symlink("privtrav/a.txt", fx.root.join("pub/l_privfile")).unwrap();
    std::os::unix::fs::symlink("privtrav/sub", fx.root.join("pub/l_privsub")).unwrap();
    if as_root {
        fx.write("rootonly/inner.txt", b"root's\n");
        chmod(&fx.root.join("rootonly/inner.txt"), 0o644);
        chmod(&fx.root.join("rootonly"), 0o700);
        fx.write("rootdrop/in.txt", b"x\n");
        chmod(&fx.root.join("rootdrop"), 0o711);
        fx.write("pub/groupless.txt", b"world may, group may not\n");
        chmod(&fx.root.join("pub/groupless.txt"), 0o604);
    }
    // A socket, shown (world-readable): not a file to transfer.
    let _sock = std::os::unix::net::UnixListener::bind(fx.root.join("pub/sock")).unwrap();
    chmod(&fx.root.join("pub/sock"), 0o644);
    let srv = Server::builder().start(&fx);
    if as_root {
        // After the start, which gives the tree to the server's user: a
        // directory the server's user cannot search (root's, 0700); shown
        // to the world, but not readable by the server's user, a 0711
        // directory it may not open and a 0604 file of its group.
        let own =
            |p: &str, gid| std::os::unix::fs::chown(fx.root.join(p), Some(0), Some(gid)).unwrap();
        own("rootonly", 0);
        own("rootdrop", 0);
        own("pub/groupless.txt", server_user().2);
    }
    let mut f = srv.login();
    // (hidden path, missing path of the same shape)
    let mut pairs = vec![
        ("pub/secret.txt", "pub/nothere.txt"),
        ("private", "nothere"),
        ("private/inner.txt", "nothere/inner.txt"),
        ("private/*.txt", "nothere/*.txt"),
        // A hidden file used as a directory (ENOTDIR).
        ("pub/secret.txt/x", "pub/nothere.txt/x"),
        // A link to a hidden file; a symlink loop (ELOOP).
        ("pub/l_secret", "pub/nothere"),
        ("pub/loop", "pub/nothere"),
        ("pub/loop/x", "pub/nothere/x"),
        ("pub/l_privfile", "pub/nothere"),
        ("pub/l_privsub", "pub/nothere"),
        ("pub/l_privsub/b.txt", "pub/nothere/b.txt"),
    ];
    if as_root {
        pairs.push(("rootonly/inner.txt", "nothere/inner.txt"));
        pairs.push(("rootonly/*.txt", "nothere/*.txt"));
    }
    let control = ["SIZE", "MDTM", "MLST", "CWD", "STAT"];
    let data = ["RETR", "LIST", "NLST", "MLSD"];
    for (hidden, missing) in &pairs {
        for verb in control.iter().chain(&data) {
            let mut ask = |path: &str| {
                if data.contains(verb) {
                    f.epsv();
                }
                let r = f.cmd(&format!("{verb} {path}"));
                r.text().replace(path, "PATH")
            };
            let (h, m) = (ask(hidden), ask(missing));
            assert!(h.starts_with("550"), "{verb} {hidden}: {h}");
            assert_eq!(h, m, "{verb} {hidden} vs {verb} {missing}");
        }
    }
    // Shown, but not listable: refused as such, and MLSD/MLST `perm`
    // says so (`e`, no `l`).
    f.epsv();
    let r = f.cmd("LIST dropbox");
    assert_eq!(r.text(), "550 Permission denied.");
    let mlsd = f.listing("MLSD /");
    let perm_of = |name: &str| {
        let line = mlsd
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("{name} not in {mlsd}"));
        line.split(';')
            .find_map(|f| f.strip_prefix("perm="))
            .unwrap()
            .to_string()
    };
    assert_eq!(perm_of("dropbox"), "e", "{mlsd}");
    assert_eq!(perm_of("pub"), "el", "{mlsd}");
    assert_eq!(perm_of("openfile.txt"), "r", "{mlsd}");
    let r = f.expect("MLST dropbox", 250);
    assert!(r.lines[1].contains(";perm=e;"), "{r:?}");
    // Listings leave out a link to a hidden file, as a dangling one; a
    // hidden file named like a pattern lists as the pattern: nothing.
    for line in ["LIST pub", "NLST pub", "MLSD pub", "STAT pub"] {
        let out = if line.starts_with("STAT") {
            f.cmd(line).text()
        } else {
            f.listing(line)
        };
        assert!(out.contains("l_open"), "{line}: {out}");
        for absent in ["l_secret", "loop", "secret.txt", "h*", "privtrav", "l_priv"] {
            assert!(!out.contains(absent), "{line} shows {absent}: {out}");
        }
    }
    assert_eq!(f.cmd("SIZE pub/sock").text(), "550 Not a plain file.");
    f.epsv();
    assert_eq!(f.cmd("RETR pub/sock").text(), "550 Not a plain file.");
    // A link to a published file in a published directory works.
    assert_eq!(f.retr("pub/l_open"), b"for everyone\n");
    for verb in ["LIST", "NLST", "MLSD"] {
        assert_eq!(f.listing(&format!("{verb} pub/h*")), "", "{verb}");
        assert_eq!(f.listing(&format!("{verb} pub/z*")), "", "{verb}");
    }
    if as_root {
        // Shown, so refused for what they are, not as missing.
        f.epsv();
        assert_eq!(f.cmd("RETR rootdrop").text(), "550 Not a plain file.");
        f.epsv();
        assert_eq!(f.cmd("RETR dropbox").text(), "550 Not a plain file.");
        f.expect("SIZE pub/groupless.txt", 213);
        f.epsv();
        assert_eq!(
            f.cmd("RETR pub/groupless.txt").text(),
            "550 Permission denied."
        );
    }
    f.expect("CWD dropbox", 250);
    // CWD to a file that is shown is "Not a directory.", as for accounts.
    let r = f.cmd("CWD /openfile.txt");
    assert_eq!(r.text(), "550 Not a directory.");
    f.quit();
    // The log still says why.
    assert_not_world_readable_logged(&srv.log_synced(), "SIZE", "/pub/secret.txt");
}

#[test]
fn the_default_root_is_never_slash() {
    let fx = Fixture::new();
    let r = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--pasv-ports",
            "52980-52989",
        ])
        .current_dir("/")
        .output()
        .unwrap();
    assert!(!r.status.success());
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        err.contains("--root") && err.contains("whole filesystem"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&r.stdout).contains("listening on"));
    // Given explicitly, / is accepted (checked, not served).
    let r = run_client(
        20,
        BIN,
        &["serve", "--root", "/", "--check-config"],
        Some(&fx.work),
    );
    r.ok();
    assert!(r.stdout.contains("root = \"/\""), "{}", r.stdout);
}

#[test]
fn a_second_server_on_the_same_address_is_refused() {
    let fx = Fixture::new();
    fx.write("who", b"first\n");
    let first = Server::builder().start(&fx);
    let other = Fixture::new();
    let r = Server::builder()
        .args(&["--listen", &first.addr().to_string()])
        .start_fails(&other);
    assert!(r.stderr.contains("address in use"), "{}", r.stderr);
    assert!(r.stderr.contains("--reuse-port"), "{}", r.stderr);
    // The first one serves every client.
    for _ in 0..6 {
        let mut f = first.login();
        assert_eq!(f.retr("who"), b"first\n");
        f.quit();
    }
}

/// A network namespace of the test's own, removed on drop.
struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        require_root("the hand-over test");
        let name = format!("rftp-{tag}-{}", std::process::id());
        let ip = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {args:?}");
        };
        ip(&["netns", "add", &name]);
        let ns = Netns(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        let st = Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.0,
                "sysctl",
                "-qw",
                "net.ipv4.tcp_migrate_req=1",
            ])
            .status()
            .unwrap();
        assert!(st.success(), "net.ipv4.tcp_migrate_req needs Linux 5.14+");
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn reuse_port_hand_over_refuses_no_connection() {
    let ns = Netns::new("handover");
    let addr: SocketAddr = "127.0.0.1:2121".parse().unwrap();
    let fx = Fixture::new();
    fx.write("f", b"x\n");
    let start = |banner: &str, extra: &[&str], ports: (u16, u16)| {
        Server::builder()
            .netns(&ns.0)
            .listen(&["127.0.0.1:2121"])
            .cores(2)
            .pasv_ports(ports.0, ports.1)
            .args(&["--banner", banner])
            // The metrics listener is handed over as well: the new
            // instance must bind it beside the old one, or it exits.
            .args(&["--metrics-listen", "127.0.0.1:9121"])
            .args(extra)
            .start(&fx)
    };
    let mut old = start("old", &[], (40000, 40009));
    // Clients connect one after another for the whole hand-over, each
    // reading its greeting.
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (ns, stop) = (ns.0.clone(), stop.clone());
        std::thread::spawn(move || {
            within(&ns, || {
                let mut greetings: Vec<String> = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(60);
                while !stop.load(Ordering::Acquire)
                    && Instant::now() < deadline
                    && greetings.len() < 20_000
                {
                    let line = match connect_in_here(addr) {
                        Ok(mut s) => {
                            let l = first_line(&mut s).unwrap_or_else(|| "no greeting".into());
                            let _ = s.write_all(b"QUIT\r\n");
                            l
                        }
                        Err(e) => format!("connect: {e}"),
                    };
                    greetings.push(line);
                }
                greetings
            })
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let new = start("new", &["--reuse-port"], (40010, 40019));
    std::thread::sleep(Duration::from_millis(300));
    old.signal(libc::SIGTERM);
    assert!(
        old.wait_exit(Duration::from_secs(20)).is_some(),
        "the old server did not stop"
    );
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Release);
    let greetings = client.join().unwrap();
    let bad: Vec<&String> = greetings
        .iter()
        .filter(|g| *g != "220 old" && *g != "220 new")
        .collect();
    let olds = greetings.iter().filter(|g| *g == "220 old").count();
    let news = greetings.iter().filter(|g| *g == "220 new").count();
    assert!(
        bad.is_empty(),
        "{} of {} connections failed: {:?}",
        bad.len(),
        greetings.len(),
        &bad[..bad.len().min(5)]
    );
    assert!(olds > 0 && news > 0, "old {olds}, new {news}");
    assert_eq!(greetings.last().map(String::as_str), Some("220 new"));
    let health = within(&ns.0, || {
        let mut s = connect_in_here("127.0.0.1:9121".parse().unwrap()).unwrap();
        s.write_all(b"GET /health HTTP/1.0\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    });
    assert!(
        health.starts_with("HTTP/1.1 200") || health.starts_with("HTTP/1.0 200"),
        "{health}"
    );
    println!("hand-over: {} connections, {olds} greeted by the old server, {news} by the new, none refused", greetings.len());
    drop(new);
}

/// A plain connect from the calling thread (inside `within`).
fn connect_in_here(to: SocketAddr) -> std::io::Result<std::net::TcpStream> {
    let s = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(10))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

/// SIGUSR1 and SIGUSR2 (nginx's "reopen logs" and "upgrade") would end
/// the process by their default action, cutting every transfer: they are
/// ignored, with a warning.
#[test]
fn user_signals_do_not_stop_the_server() {
    let fx = Fixture::new();
    fx.write("f", b"x\n");
    let mut srv = Server::builder().start(&fx);
    let mut f = srv.login();
    for (sig, name) in [(libc::SIGUSR1, "SIGUSR1"), (libc::SIGUSR2, "SIGUSR2")] {
        srv.signal(sig);
        srv.wait_log(&format!("{name} ignored"), 1, Duration::from_secs(30));
        f.expect("NOOP", 200);
    }
    assert_eq!(f.retr("f"), b"x\n");
    f.quit();
    assert!(srv.alive());
}

#[test]
fn banner_text_file_and_sighup() {
    let fx = Fixture::new();
    let banner = fx.work.join("banner.txt");
    std::fs::write(
        &banner,
        "Welcome to the mirror.\n220 is not an end\nBe nice.\n",
    )
    .unwrap();
    let srv = Server::builder()
        .args(&["--banner", &format!("@{}", banner.display())])
        .start(&fx);
    let mut s = connect_from(IpAddr::V4(Ipv4Addr::LOCALHOST), srv.addr());
    let lines: Vec<String> = (0..3).filter_map(|_| first_line(&mut s)).collect();
    assert_eq!(
        lines,
        [
            "220-Welcome to the mirror.",
            " 220 is not an end",
            "220 Be nice."
        ]
    );
    // Replaced by rename (as an editor does), then SIGHUP.
    let tmp = fx.work.join("banner.new");
    std::fs::write(&tmp, "Moved to ftp2.example.org.\n").unwrap();
    std::fs::rename(&tmp, &banner).unwrap();
    srv.signal(libc::SIGHUP);
    srv.wait_log("SIGHUP: configuration reloaded", 1, Duration::from_secs(20));
    let mut f = connect_from(IpAddr::V4(Ipv4Addr::LOCALHOST), srv.addr());
    assert_eq!(
        first_line(&mut f).as_deref(),
        Some("220 Moved to ftp2.example.org.")
    );
}

#[test]
fn allow_and_deny_for_ipv4_and_ipv6() {
    let fx = Fixture::new();
    fx.write("f", b"x\n");
    let srv = Server::builder()
        .listen(&["127.0.0.1:0", "[::1]:0"])
        .args(&[
            "--allow",
            "127.0.0.0/8",
            "--deny",
            "127.0.0.2",
            "--allow",
            "::1/128",
            "--deny",
            "::/0",
        ])
        .start(&fx);
    let greet = |from: IpAddr, to: SocketAddr| {
        let mut s = connect_from(from, to);
        first_line(&mut s).unwrap_or_default()
    };
    let v4 = srv.addrs[0];
    let v6 = srv.addrs[1];
    assert!(greet("127.0.0.1".parse().unwrap(), v4).starts_with("220 "));
    assert!(greet("127.0.0.3".parse().unwrap(), v4).starts_with("220 "));
    assert_eq!(
        greet("127.0.0.2".parse().unwrap(), v4),
        "421 Access denied for your address."
    );
    assert!(greet("::1".parse().unwrap(), v6).starts_with("220 "));
    srv.wait_log("refused: --deny 127.0.0.2/32", 1, Duration::from_secs(20));

    // Deny ::1 itself: the most specific rule wins for IPv6 too.
    let other = Fixture::new();
    other.write("f", b"x\n");
    let srv6 = Server::builder()
        .listen(&["[::1]:0"])
        .args(&["--deny", "::1", "--allow", "::/0"])
        .start(&other);
    assert_eq!(
        greet("::1".parse().unwrap(), srv6.addrs[0]),
        "421 Access denied for your address."
    );
    srv6.wait_log("refused: --deny ::1/128", 1, Duration::from_secs(20));
}

#[test]
fn config_file_sighup_applies_live_keys_and_names_the_rest() {
    let fx = Fixture::new();
    fx.write("f", b"x\n");
    let conf = fx.work.join("ringftp.toml");
    std::fs::write(
        &conf,
        "banner = \"first\"\nmax-sessions = 100\nidle-timeout = \"300s\"\n",
    )
    .unwrap();
    let srv = Server::builder()
        .args(&["--config", conf.to_str().unwrap()])
        .start(&fx);
    let greet = |from: &str| {
        let mut s = connect_from(from.parse().unwrap(), srv.addr());
        first_line(&mut s).unwrap_or_default()
    };
    assert_eq!(greet("127.0.0.2"), "220 first");
    std::fs::write(
        &conf,
        "banner = \"second\"\nmax-sessions = 100\nidle-timeout = \"200s\"\ndeny = [\"127.0.0.2\"]\n",
    )
    .unwrap();
    srv.signal(libc::SIGHUP);
    let log = srv.wait_log("SIGHUP: configuration reloaded", 1, Duration::from_secs(20));
    assert!(
        log.contains("SIGHUP: banner = \"second\": in force"),
        "{log}"
    );
    assert!(
        log.contains("SIGHUP: idle-timeout = \"200s\": takes effect only after a restart"),
        "{log}"
    );
    // No --users: no users file to speak of.
    assert!(!log.contains("users file"), "{log}");
    assert_eq!(greet("127.0.0.1"), "220 second");
    assert_eq!(greet("127.0.0.2"), "421 Access denied for your address.");
    // A broken file changes nothing.
    std::fs::write(&conf, "no-such-key = 1\n").unwrap();
    srv.signal(libc::SIGHUP);
    let log = srv.wait_log("configuration not reloaded", 1, Duration::from_secs(20));
    assert!(log.contains("unknown key `no-such-key`"), "{log}");
    assert_eq!(greet("127.0.0.1"), "220 second");
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let fx = Fixture::new();
    let conf = fx.work.join("c.toml");
    std::fs::write(
        &conf,
        format!(
            "root = {:?}\nmax-per-ip = 7\n",
            fx.root.display().to_string()
        ),
    )
    .unwrap();
    let r = run_client(
        20,
        BIN,
        &[
            "serve",
            "--config",
            conf.to_str().unwrap(),
            "--check-config",
            "--max-per-ip",
            "9",
        ],
        None,
    );
    r.ok();
    assert!(
        r.stdout.contains("max-per-ip = 9  # command line"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains(&format!("  # {}", conf.display())),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("pasv-ports = \"50000-50999\"  # default"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("configuration OK"), "{}", r.stderr);
    std::fs::write(&conf, "max_per_ip = 7\n").unwrap();
    let r = run_client(
        20,
        BIN,
        &[
            "serve",
            "--config",
            conf.to_str().unwrap(),
            "--check-config",
        ],
        None,
    );
    r.fails();
    assert!(
        r.stderr.contains("unknown key `max_per_ip`"),
        "{}",
        r.stderr
    );
    // A log level start-up would refuse is refused here too, from the
    // file or the command line.
    std::fs::write(
        &conf,
        format!(
            "root = {:?}\nlog-level = \",\"\n",
            fx.root.display().to_string()
        ),
    )
    .unwrap();
    let file = [
        "serve",
        "--config",
        conf.to_str().unwrap(),
        "--check-config",
    ];
    let r = run_client(20, BIN, &file, None);
    r.fails();
    assert!(r.stderr.contains("--log-level"), "{}", r.stderr);
    let flag = [&file[..], &["--log-level", "verbose"]].concat();
    let r = run_client(20, BIN, &flag, None);
    r.fails();
    assert!(r.stderr.contains("not a level"), "{}", r.stderr);
    // RUST_LOG wins when set and not blank; blank, --log-level decides.
    let rust_log = |value: &str, level: &str| {
        Command::new(BIN)
            .args(["serve", "--check-config", "--log-level", level, "--root"])
            .arg(&fx.root)
            .env("RUST_LOG", value)
            .output()
            .unwrap()
    };
    for blank in ["", " ", "\t"] {
        let out = rust_log(blank, "debug");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "RUST_LOG={blank:?}: {err}");
        let out = rust_log(blank, "verbose");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "RUST_LOG={blank:?}: {err}");
        assert!(err.contains("--log-level"), "RUST_LOG={blank:?}: {err}");
    }
    let out = rust_log("verbose", "debug");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("RUST_LOG"), "{err}");
    // The printed configuration shows log-level; the check says when
    // RUST_LOG overrides it.
    let out = rust_log("warn", "debug");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("RUST_LOG=\"warn\" is set: it, not log-level, decides"),
        "{err}"
    );
    let out = rust_log(" ", "debug");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("is set"));
}

#[test]
fn systemd_hears_ready_once_every_shard_accepts() {
    let fx = Fixture::new();
    fx.write("f", b"x\n");
    fx.give_to_server_user(&fx.root);
    let sock_path = fx.work.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let block = port_block(4);
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--cores", "2", "--root"])
        .arg(&fx.root)
        .args(["--pasv-ports", &format!("{}-{}", block.lo, block.hi)])
        .env("NOTIFY_SOCKET", &sock_path);
    let srv = Server::launch(cmd, &fx, &fx.root);
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("no READY=1 from the server");
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(msg.starts_with("READY=1\n"), "{msg}");
    assert!(msg.contains(&format!("MAINPID={}", srv.pid())), "{msg}");
    assert!(msg.contains("on 2 shard(s)"), "{msg}");
    let mut f = srv.login();
    assert_eq!(f.retr("f"), b"x\n");
    f.quit();
    srv.signal(libc::SIGTERM);
    let n = sock.recv(&mut buf).expect("no STOPPING=1");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("STOPPING=1"));
}

#[test]
fn the_sandbox_is_on_and_reloads_still_read_a_replaced_users_file() {
    let fx = Fixture::new();
    fx.write("alice/a.txt", b"a\n");
    fx.write("bob/b.txt", b"b\n");
    let etc = fx.work.join("etc");
    std::fs::create_dir(&etc).unwrap();
    let users = fx.users_file("etc/users.toml", &[Account::full("alice")]);
    let srv = Server::builder()
        .users(&users)
        .args(&["--sandbox", "required"])
        .start(&fx);
    srv.wait_log("sandbox: Landlock enforced", 1, Duration::from_secs(20));
    // A new users file renamed over the old one (a new inode), then SIGHUP.
    let newer = fx.users_file(
        "etc/users.new",
        &[Account::full("alice"), Account::full("bob")],
    );
    std::fs::rename(&newer, &users).unwrap();
    srv.signal(libc::SIGHUP);
    srv.wait_log(
        "users file reloaded (2 accounts)",
        1,
        Duration::from_secs(20),
    );
    let mut f = srv.login_as("bob", "bob-pw");
    assert_eq!(f.retr("b.txt"), b"b\n");
    f.quit();
}

#[test]
fn the_shipped_unit_file_verifies() {
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/dist/ringftp.service"))
            .unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/ringftp serve"));
    for want in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=",
        "AmbientCapabilities=CAP_NET_BIND_SERVICE",
        "ProtectSystem=strict",
        "ReadWritePaths=",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
    ] {
        assert!(unit.contains(want), "the unit lacks {want}");
    }
    // systemd-analyze checks that ExecStart's program exists: point it at
    // the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringftp.service");
    std::fs::write(&path, unit.replace("/usr/bin/ringftp", BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (package systemd; tests/run.sh installs it)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Warnings (unknown keys, bad values) go to stderr with status 0.
    assert!(err.trim().is_empty(), "systemd-analyze verify: {err}");
}

#[test]
fn check_config_refuses_what_start_up_would() {
    let fx = Fixture::new();
    let missing_dir = fx.work.join("no/such/dir/xferlog");
    let a_dir = fx.work.clone();
    let new_log = fx.work.join("xferlog");
    let check = |extra: &[&str]| check_config(&fx.root, extra);
    // What serve refuses at start-up, --check-config refuses too, naming
    // the flag.
    for (extra, flag) in [
        (
            vec!["--tls-cert", "/etc/passwd", "--tls-key", "/etc/passwd"],
            "--tls-cert",
        ),
        (
            vec!["--xferlog", missing_dir.to_str().unwrap()],
            "--xferlog",
        ),
        (vec!["--xferlog", a_dir.to_str().unwrap()], "--xferlog"),
        (
            vec!["--listen", "192.0.2.1:2121"],
            "--listen 192.0.2.1:2121",
        ),
    ] {
        let r = check(&extra);
        r.fails();
        assert!(r.stderr.contains(flag), "{extra:?}: {}", r.stderr);
        assert!(
            !r.stderr.contains("configuration OK"),
            "{extra:?}: {}",
            r.stderr
        );
    }
    // A new xferlog in a directory that exists is fine, and the check
    // does not create it.
    let r = check(&["--xferlog", new_log.to_str().unwrap()]);
    assert!(r.stderr.contains("configuration OK"), "{}", r.stderr);
    assert!(!new_log.exists(), "--check-config created the xferlog");
}

/// An account whose home the service user cannot enter (here its own
/// directory, mode 0600) is named at start, by `--check-config` and on
/// SIGHUP, and its logins are refused with 530, as vsftpd and ProFTPD
/// refuse a login whose home they cannot change into. Before, the login
/// got 230 and then 550 for every command, with nothing said at start.
/// `--check-config` also prints the users file's own warnings (argon2
/// parameters other than `ringftp passwd`'s), which it dropped before.
#[test]
fn an_account_whose_home_cannot_be_entered_is_named_and_refused() {
    require_root("the privilege tests");
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let alice = Account::full("alice");
    let bob = Account::new("bob", &["list", "read"]);
    let odd = hash_password("carol-pw").replacen("m=19456,t=2,p=1", "m=8,t=1,p=1", 1);
    assert!(odd.contains("m=8,t=1,p=1"), "{odd}");
    let carol = Account::new("carol", &["list", "read"]).raw_hash(&odd);
    let dave = Account::new("dave", &["list", "read"]).home("/locked/dave");
    let users = fx.users_file(
        "users.toml",
        &[alice.clone(), bob.clone(), carol, dave.clone()],
    );
    fx.write("bob/f.txt", b"bob's\n");
    let bob_home = fx.root.join("bob");
    std::fs::set_permissions(&bob_home, std::fs::Permissions::from_mode(0o600)).unwrap();
    let users_arg = users.to_str().unwrap();

    let srv = Server::builder().users(&users).start(&fx);
    let log = srv.wait_log("cannot enter its home /bob", 1, Duration::from_secs(20));
    assert!(
        log.contains("account \"bob\"") && !log.contains("account \"alice\""),
        "{log}"
    );
    let mut f = Ftp::connect(srv.addr());
    f.expect("USER bob", 331);
    let r = f.cmd("PASS bob-pw");
    assert_eq!(r.code, 530, "{r:?}");
    assert!(r.text().contains("Home directory unavailable"), "{r:?}");
    srv.login_as("alice", "alice-pw").quit();

    // --check-config (as root; the homes as the service user sees them).
    let r = check_config(&fx.root, &["--users", users_arg]);
    r.ok();
    assert!(
        r.stderr.contains("warning: users file account \"bob\"")
            && r.stderr.contains("cannot enter its home /bob")
            && r.stderr.contains("m=8,t=1,p=1")
            && r.stderr.contains("configuration OK"),
        "{}",
        r.stderr
    );

    // bob's home fixed; dave's locked from above (root's 0700 parent,
    // which SIGHUP, loading as the service user, cannot search); carol
    // removed. The reload takes the file, names dave, and carol is gone:
    // one unreachable home does not keep the old accounts in force.
    std::fs::set_permissions(&bob_home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let locked = fx.root.join("locked");
    std::os::unix::fs::chown(&locked, Some(0), Some(0)).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(&users, users_toml(&[alice, bob, dave])).unwrap();
    srv.signal(libc::SIGHUP);
    let log = srv.wait_log(
        "users file reloaded (3 accounts)",
        1,
        Duration::from_secs(20),
    );
    assert_eq!(
        log.matches("cannot enter its home /bob").count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("cannot enter its home /locked/dave").count(),
        1,
        "{log}"
    );
    assert!(!log.contains("not reloaded"), "{log}");
    let mut f = srv.login_as("bob", "bob-pw");
    assert_eq!(f.retr("f.txt"), b"bob's\n");
    f.quit();
    for (user, password) in [("carol", "carol-pw"), ("dave", "dave-pw")] {
        let mut f = Ftp::connect(srv.addr());
        f.expect(&format!("USER {user}"), 331);
        assert_eq!(f.cmd(&format!("PASS {password}")).code, 530, "{user}");
    }
    let r = check_config(&fx.root, &["--users", users_arg]);
    r.ok();
    assert!(
        !r.stderr.contains("/bob") && r.stderr.contains("cannot enter its home /locked/dave"),
        "{}",
        r.stderr
    );
}
