//! Listings as real clients use them (issue 11): one argument parser for
//! LIST, NLST, MLSD and STAT (ls options, then a path whose last
//! component may be a wildcard pattern), `LIST -R` with its depth and
//! entry caps, one dot-file rule for every listing command, symlinks
//! listed alike and resolved as in a chroot, memory of concurrent big
//! listings, and wildcard downloads by tnftp's `mget`, `ncftpget` and
//! Python's ftplib. Byte-level kinds (TYPE A, Telnet, names, replies) are
//! in tests/conformance.rs.

mod common;

use std::io::Read;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::*;

/// The name of a LIST line (`ls -l` style: eight fields, then the name;
/// a symlink's ` -> target` kept).
fn list_name(line: &str) -> &str {
    let mut rest = line;
    for _ in 0..8 {
        rest = rest.trim_start();
        rest = &rest[rest.find(' ').unwrap_or(rest.len())..];
    }
    rest.trim_start()
}

/// The names a listing in `verb`'s format shows, in order (NLST lines as
/// they are, with any directory prefix; LIST names with ` -> target`
/// cut; MLSD names).
fn names_of(verb: &str, data: &[u8]) -> Vec<String> {
    let text = String::from_utf8(data.to_vec()).expect("listing is not UTF-8");
    text.split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| match verb {
            "NLST" => l.to_string(),
            "LIST" => {
                let n = list_name(l);
                n.split(" -> ").next().unwrap().to_string()
            }
            "MLSD" => l.split_once(' ').expect("MLSD line").1.to_string(),
            other => panic!("{other}"),
        })
        .collect()
}

/// A `LIST -R` or `STAT -R` text reduced to its shape: `dir:` headers
/// and blank lines as they are, entries by name.
fn shape(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .map(|l| {
            if l.is_empty() || l.ends_with(':') {
                l.to_string()
            } else {
                list_name(l).to_string()
            }
        })
        .collect()
}

/// The body lines of a multi-line 213 (STAT with a path), without the
/// first ("Status follows:") and last ("End of status...") lines.
fn stat_body(r: &Reply) -> Vec<String> {
    assert_eq!(r.code, 213, "{r:?}");
    assert_eq!(r.lines[0], "213-Status follows:", "{r:?}");
    r.lines[1..r.lines.len() - 1]
        .iter()
        .map(|l| l.strip_prefix(' ').unwrap_or(l).to_string())
        .collect()
}

fn data_lines(data: &[u8]) -> Vec<String> {
    String::from_utf8(data.to_vec())
        .unwrap()
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect()
}

// ------------------------------------------------------------ one parser

/// `ls` options, then a path, the same for every command: `STAT -la dir`
/// is dir's listing (the same lines LIST sends), `LIST -la dir`, `NLST
/// -a dir`, `MLSD -a dir` list dir; options in several words or merged
/// mean the same; a name with spaces after the options is one path.
#[test]
fn every_listing_command_parses_options_then_a_path() {
    let fx = Fixture::new();
    fx.write("dir/one.txt", b"1\n");
    fx.write("dir/.dot", b"d\n");
    mkdir(&fx.root, "dir/sub");
    fx.write("with space/inner.txt", b"i\n");
    let srv = Server::builder().start(&fx);
    let mut f = srv.login();

    let list = f.transfer("LIST -la dir");
    let lines = data_lines(&list);
    assert_eq!(names_of("LIST", &list), [".dot", "one.txt", "sub"]);
    let r = f.expect("STAT -la dir", 213);
    assert_eq!(stat_body(&r), lines, "STAT -la dir and LIST -la dir differ");
    assert_eq!(r.lines.last().unwrap(), "213 End of status");
    for line in [
        "LIST -l -a dir",
        "LIST -al dir",
        "LIST  -A   dir",
        "LIST -a -l -- dir",
    ] {
        assert_eq!(data_lines(&f.transfer(line)), lines, "{line}");
    }
    assert_eq!(
        names_of("NLST", &f.transfer("NLST -a dir")),
        ["dir/.dot", "dir/one.txt", "dir/sub"]
    );
    assert_eq!(
        names_of("MLSD", &f.transfer("MLSD -a dir")),
        [".dot", "one.txt", "sub"]
    );
    for cmd in ["LIST -l with space", "LIST with space"] {
        assert_eq!(names_of("LIST", &f.transfer(cmd)), ["inner.txt"], "{cmd}");
    }
    assert_eq!(
        names_of("NLST", &f.transfer("NLST -l with space")),
        ["with space/inner.txt"]
    );
    let r = f.expect("STAT -l with space", 213);
    assert_eq!(stat_body(&r).len(), 1, "{r:?}");
    // A single file: LIST and NLST name it as typed.
    assert_eq!(
        names_of("NLST", &f.transfer("NLST -l dir/one.txt")),
        ["dir/one.txt"]
    );
    assert_eq!(
        names_of("LIST", &f.transfer("LIST -l dir/one.txt")),
        ["dir/one.txt"]
    );
    // MLSD of a file is 501 (RFC 3659: MLST is for files).
    let _data = f.epsv_connect();
    f.expect("MLSD dir/one.txt", 501);
    f.expect("STAT -la nowhere", 550);
    f.quit();
}

// ------------------------------------------------------------ wildcards

/// The last component may be a pattern (`*`, `?`, `[...]`, `[!...]`);
/// braces and backslash are literal; a path that exists as typed is never
/// a pattern; a middle component is never expanded; a pattern that
/// matches nothing is an empty listing with 150 and 226, as vsftpd
/// answers. NLST names carry the typed directory, as `ls dir/*.txt` does.
#[test]
fn wildcards_in_the_last_component() {
    let fx = Fixture::new();
    for name in [
        "a.txt",
        "b.txt",
        "ab.txt",
        "c.log",
        ".h.txt",
        "lit*.txt",
        "lit-x.txt",
        "{a,b}.txt",
        "x\\y.txt",
    ] {
        fx.write(&format!("p/{name}"), name.as_bytes());
    }
    mkdir(&fx.root, "p/sub.txt");
    fx.write("br[ack]/in.txt", b"in\n");
    let srv = Server::builder().start(&fx);
    let mut f = srv.login();

    let all_txt = [
        "a.txt",
        "ab.txt",
        "b.txt",
        "lit*.txt",
        "lit-x.txt",
        "sub.txt",
        "x\\y.txt",
        "{a,b}.txt",
    ];
    // (pattern, names it lists, dot-files it matches: shown with -a, and
    // always by STAT with a path)
    let table: &[(&str, &[&str], &[&str])] = &[
        ("p/*.txt", &all_txt, &[".h.txt"]),
        ("p/?.txt", &["a.txt", "b.txt"], &[]),
        ("p/[ab].txt", &["a.txt", "b.txt"], &[]),
        ("p/[!a].txt", &["b.txt"], &[]),
        ("p/[a-b]b.txt", &["ab.txt"], &[]),
        ("p/*.log", &["c.log"], &[]),
        (
            "p/*",
            &[
                "a.txt",
                "ab.txt",
                "b.txt",
                "c.log",
                "lit*.txt",
                "lit-x.txt",
                "sub.txt",
                "x\\y.txt",
                "{a,b}.txt",
            ],
            &[".h.txt"],
        ),
        // Exists as typed: that file alone.
        ("p/lit*.txt", &["lit*.txt"], &[]),
        ("p/{a,b}.txt", &["{a,b}.txt"], &[]),
        // A pattern, matching the literal '*' too.
        ("p/lit?.txt", &["lit*.txt"], &[]),
        // Braces and backslash are literal.
        ("p/{a,b}*", &["{a,b}.txt"], &[]),
        ("p/x\\*", &["x\\y.txt"], &[]),
        // A pattern that starts with a dot names dot-files itself, as
        // `ls .*` does; never `.` or `..`.
        ("p/.h*", &[".h.txt"], &[]),
        ("p/.*", &[".h.txt"], &[]),
        ("p/[.]*", &[], &[".h.txt"]),
        ("p/*.pdf", &[], &[]),
        // An inverted range is a pattern that matches nothing.
        ("p/[z-a]", &[], &[]),
        ("p/[z-a]*", &[], &[]),
    ];
    for (path, plain, dots) in table {
        let mut with_dots: Vec<&str> = plain.iter().chain(dots.iter()).copied().collect();
        with_dots.sort();
        let single = *path == "p/lit*.txt" || *path == "p/{a,b}.txt";
        for (arg, want) in [
            (path.to_string(), plain.to_vec()),
            (format!("-a {path}"), with_dots.clone()),
        ] {
            let prefixed: Vec<String> = want.iter().map(|n| format!("p/{n}")).collect();
            let (nlst, r) = f.transfer_bytes(format!("NLST {arg}").as_bytes());
            assert_eq!(r.lines, ["226 Transfer complete."], "NLST {arg}");
            assert_eq!(names_of("NLST", &nlst), prefixed, "NLST {arg}");
            // LIST of a single file names it as typed, as `ls -l` does.
            let list_want: Vec<String> = if single {
                prefixed.clone()
            } else {
                want.iter().map(|n| n.to_string()).collect()
            };
            assert_eq!(
                names_of("LIST", &f.transfer(&format!("LIST {arg}"))),
                list_want,
                "LIST {arg}"
            );
            if !single {
                // (MLSD of a single file is 501.)
                assert_eq!(
                    names_of("MLSD", &f.transfer(&format!("MLSD {arg}"))),
                    want,
                    "MLSD {arg}"
                );
            }
        }
        let body = stat_body(&f.expect(&format!("STAT {path}"), 213));
        let stat_names: Vec<&str> = body.iter().map(|l| list_name(l)).collect();
        assert_eq!(stat_names, with_dots, "STAT {path}");
    }
    // Relative to the working directory: names without a prefix.
    f.expect("CWD p", 250);
    assert_eq!(
        names_of("NLST", &f.transfer("NLST ?.txt")),
        ["a.txt", "b.txt"]
    );
    assert_eq!(
        names_of("NLST", &f.transfer("NLST ../p/?.txt")),
        ["../p/a.txt", "../p/b.txt"]
    );
    f.expect("CWD /", 250);
    // A wildcard in a middle component is literal: no such directory.
    for arg in ["q*/a.txt", "p*/*.txt", "?/a.txt"] {
        for verb in ["LIST", "NLST", "MLSD"] {
            let _data = f.epsv_connect();
            f.expect(&format!("{verb} {arg}"), 550);
        }
        f.expect(&format!("STAT {arg}"), 550);
    }
    // ... and where that literal directory exists, it is listed.
    assert_eq!(
        names_of("NLST", &f.transfer("NLST br[ack]")),
        ["br[ack]/in.txt"]
    );
    assert_eq!(
        names_of("NLST", &f.transfer("NLST br[ack]/*.txt")),
        ["br[ack]/in.txt"]
    );
    f.quit();
}

/// A pattern typed with a trailing `/` (or `/.`) matches only
/// directories and symlinks that lead to one, as the shell's `*/` does
/// (POSIX: such a path resolves only to a directory); NLST names carry the
/// typed directory, not the pattern and its slash.
#[test]
fn a_pattern_ending_in_a_slash_matches_directories_only() {
    let fx = Fixture::new();
    fx.write("w/file.txt", b"f\n");
    fx.write("w/dir1/in", b"1\n");
    fx.write("w/dir2.txt/in", b"2\n");
    fx.write("w/.hid/in", b"h\n");
    symlink(&fx.root, "w/link-dir", "dir1");
    symlink(&fx.root, "w/link-file", "file.txt");
    symlink(&fx.root, "w/dangling", "nowhere");
    let srv = Server::builder().start(&fx);
    let mut f = srv.login();
    let dirs = ["dir1", "dir2.txt", "link-dir"];
    // (pattern, what it lists, and whether STAT, which shows dot-files,
    // adds .hid)
    let table: &[(&str, &[&str], bool)] = &[
        ("w/*/", &dirs, true),
        ("w/*/.", &dirs, true),
        ("w/*//", &dirs, true),
        ("w/d*/", &["dir1", "dir2.txt"], false),
        ("w/*.txt/", &["dir2.txt"], false),
        ("w/link-*/", &["link-dir"], false),
        ("w/file*/", &[], false),
        ("w/?angling/", &[], false),
    ];
    for (arg, want, hidden) in table {
        let prefixed: Vec<String> = want.iter().map(|n| format!("w/{n}")).collect();
        assert_eq!(
            names_of("NLST", &f.transfer(&format!("NLST {arg}"))),
            prefixed,
            "NLST {arg}"
        );
        assert_eq!(
            names_of("LIST", &f.transfer(&format!("LIST {arg}"))),
            *want,
            "LIST {arg}"
        );
        assert_eq!(
            names_of("MLSD", &f.transfer(&format!("MLSD {arg}"))),
            *want,
            "MLSD {arg}"
        );
        let body = stat_body(&f.expect(&format!("STAT {arg}"), 213));
        let stat_names: Vec<&str> = body
            .iter()
            .map(|l| list_name(l).split(" -> ").next().unwrap())
            .collect();
        let hid: &[&str] = if *hidden { &[".hid"] } else { &[] };
        assert_eq!(stat_names, [hid, want].concat(), "STAT {arg}");
    }
    // Dot-files with -a, as with any pattern; relative to the working
    // directory, names without a prefix.
    assert_eq!(
        names_of("NLST", &f.transfer("NLST -a w/*/")),
        ["w/.hid", "w/dir1", "w/dir2.txt", "w/link-dir"]
    );
    f.expect("CWD w", 250);
    assert_eq!(names_of("NLST", &f.transfer("NLST */")), dirs);
    assert_eq!(
        names_of("NLST", &f.transfer("NLST ../w/d*/")),
        ["../w/dir1", "../w/dir2.txt"]
    );
    // Without the slash the same pattern matches everything, as before.
    assert_eq!(
        names_of("NLST", &f.transfer("NLST *")),
        ["dir1", "dir2.txt", "file.txt", "link-dir", "link-file"]
    );
    f.quit();
}

/// `mget *.txt` in tnftp (Debian's `ftp`: NLST with the pattern, then
/// RETR of each name) and `ncftpget 'reports/*.txt'` fetch exactly the
/// matching files, byte for byte; Python's ftplib nlst() with a pattern
/// and STAT with ls options work as well, and lftp set to list over STAT
/// (`STAT -la dir`) shows the directory.
#[test]
fn real_clients_list_and_download_by_wildcard() {
    let fx = Fixture::new();
    fx.write("reports/jan.txt", &pattern(1, 3000));
    fx.write("reports/feb.txt", &pattern(2, 5000));
    fx.write("reports/mar.csv", b"not a txt\n");
    fx.write("reports/.hidden.txt", b"hidden\n");
    let srv = Server::builder().start(&fx);
    let host = srv.addr().ip().to_string();
    let port = srv.port().to_string();
    let want = ["feb.txt", "jan.txt"];

    // tnftp: a script on stdin.
    let out = fx.out("tnftp");
    std::fs::create_dir_all(&out).unwrap();
    let script = fx.out("tnftp.script");
    std::fs::write(
        &script,
        "user anonymous itest@example.com\nbinary\ncd reports\nmget *.txt\nbye\n",
    )
    .unwrap();
    let r = run_client(
        60,
        "sh",
        &[
            "-c",
            &format!("exec tnftp -inv {host} {port} < '{}'", script.display()),
        ],
        Some(&out),
    );
    r.ok();
    assert_eq!(names_in(&out), want, "tnftp mget *.txt:\n{}", r.all());
    for n in want {
        assert_same_file(&out.join(n), &fx.root.join("reports").join(n));
    }

    // ncftpget: a pattern in a path.
    let out = fx.out("ncftp");
    std::fs::create_dir_all(&out).unwrap();
    let home = fx.out("ncftp-home");
    std::fs::create_dir_all(&home).unwrap();
    let r = run_client_env(
        60,
        "ncftpget",
        &[
            "-P",
            &port,
            "-t",
            "20",
            &host,
            &out.to_string_lossy(),
            "reports/*.txt",
        ],
        None,
        &[("HOME", &home.to_string_lossy())],
    );
    r.ok();
    assert_eq!(names_in(&out), want, "ncftpget reports/*.txt:\n{}", r.all());
    for n in want {
        assert_same_file(&out.join(n), &fx.root.join("reports").join(n));
    }

    python_scenario("conformance_client.py", "wildcards", &[&host, &port]);

    // lftp with ftp:use-stat-for-list lists over the control connection
    // with `STAT -la dir` (lftp#365): the whole directory, dot-files too.
    let r = lftp_in(
        Place::Here,
        &format!("ftp://{host}:{port}"),
        "set ftp:use-stat-for-list true; set ftp:use-mlsd false",
        "debug; ls -la reports",
        &fx.work,
        &fx.out("lftp-home"),
    );
    r.ok();
    assert!(
        r.all().contains("---> STAT -la reports"),
        "lftp did not list over STAT:\n{}",
        r.all()
    );
    let names: Vec<&str> = r.stdout.lines().map(list_name).collect();
    assert_eq!(
        names,
        [".hidden.txt", "feb.txt", "jan.txt", "mar.csv"],
        "lftp ls -la reports over STAT:\n{}",
        r.all()
    );
}

// ------------------------------------------------------------ dot-files

/// One dot-file rule for LIST, NLST and MLSD alike: hidden unless `-a`
/// or `-A` is given (any option word holding one), shown always with
/// `--show-dotfiles`; STAT with a path always shows them.
#[test]
fn dot_files_follow_one_rule_in_every_listing_command() {
    let fx = Fixture::new();
    fx.write("d/.hidden", b"h\n");
    fx.write("d/.dotdir/x", b"x\n");
    fx.write("d/visible.txt", b"v\n");
    mkdir(&fx.root, "d/sub");
    let plain = ["sub", "visible.txt"];
    let with_dots = [".dotdir", ".hidden", "sub", "visible.txt"];
    for show in [false, true] {
        let mut b = Server::builder();
        if show {
            b = b.arg("--show-dotfiles");
        }
        let srv = b.start(&fx);
        let mut f = srv.login();
        for verb in ["LIST", "NLST", "MLSD"] {
            for opts in ["", "-l", "-a", "-A", "-la", "-lA", "-l -a", "-t"] {
                let line = format!("{verb} {opts} d").replace("  ", " ");
                let got: Vec<String> = names_of(verb, &f.transfer(&line))
                    .into_iter()
                    .map(|n| n.trim_start_matches("d/").to_string())
                    .collect();
                let dots = show || opts.contains(['a', 'A']);
                let want: &[&str] = if dots { &with_dots } else { &plain };
                assert_eq!(got, want, "{line} (--show-dotfiles {show})");
            }
            // In the working directory, without a path.
            f.expect("CWD d", 250);
            let got = names_of(verb, &f.transfer(verb));
            let want: &[&str] = if show { &with_dots } else { &plain };
            assert_eq!(got, want, "{verb} in d (--show-dotfiles {show})");
            f.expect("CWD /", 250);
        }
        for line in ["STAT d", "STAT -l d", "STAT -a d"] {
            let body = stat_body(&f.expect(line, 213));
            let got: Vec<&str> = body.iter().map(|l| list_name(l)).collect();
            assert_eq!(got, with_dots, "{line} (--show-dotfiles {show})");
        }
        f.quit();
    }
}

// ------------------------------------------------------------ symlinks

/// Symlinks as a chroot sees them: a link that resolves inside the root
/// (relative or absolute, the root as `/`) is listed by LIST (as a link,
/// with its target), NLST and MLSD (as what it points to) alike and can
/// be used (CWD, RETR, LIST through it); one that dangles, or points out
/// of the root (which, resolved from the root, dangles), is in no listing
/// and reaches nothing. An account's root is its home.
#[test]
fn symlinks_are_listed_alike_and_resolve_in_the_root() {
    let fx = Fixture::new();
    fx.write("dir/sub/f.txt", b"f\n");
    let outside = fx.out("secret.txt");
    std::fs::write(&outside, b"secret\n").unwrap();
    symlink(&fx.root, "abs", "/dir/sub");
    symlink(&fx.root, "abs-file", "/dir/sub/f.txt");
    symlink(&fx.root, "rel", "dir/sub/f.txt");
    symlink(&fx.root, "dangling", "nope");
    symlink(&fx.root, "out-abs", "/etc");
    symlink(&fx.root, "out-rel", "../../../../../../../../etc");
    symlink(&fx.root, "out-host", &outside.to_string_lossy());
    symlink(&fx.root, "out-work", "../work/secret.txt");
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    fx.write("pub/x.txt", b"root pub\n");
    fx.write("alice/pub/y.txt", b"alice pub\n");
    symlink(&fx.root, "alice/pub-link", "/pub");
    symlink(&fx.root, "alice/root-link", "/../pub/x.txt");
    let srv = Server::builder().users(&users).start(&fx);
    let mut f = srv.login();

    let want = ["abs", "abs-file", "alice", "dir", "pub", "rel"];
    for verb in ["LIST", "NLST", "MLSD"] {
        assert_eq!(names_of(verb, &f.transfer(verb)), want, "{verb}");
        assert_eq!(
            names_of(verb, &f.transfer(&format!("{verb} -a"))),
            want,
            "{verb} -a"
        );
    }
    let list = String::from_utf8(f.transfer("LIST")).unwrap();
    for (name, target) in [
        ("abs", "/dir/sub"),
        ("abs-file", "/dir/sub/f.txt"),
        ("rel", "dir/sub/f.txt"),
    ] {
        let line = list
            .split("\r\n")
            .find(|l| list_name(l).starts_with(&format!("{name} -> ")))
            .unwrap_or_else(|| panic!("no {name} link in LIST:\n{list}"));
        assert!(line.starts_with('l'), "{line}");
        assert_eq!(list_name(line), format!("{name} -> {target}"));
    }
    let mlsd = String::from_utf8(f.transfer("MLSD")).unwrap();
    for (name, facts) in [
        ("abs", "type=dir;"),
        ("abs-file", "type=file;size=2;"),
        ("rel", "type=file;size=2;"),
    ] {
        let line = mlsd
            .split("\r\n")
            .find(|l| l.ends_with(&format!("; {name}")))
            .unwrap_or_else(|| panic!("no {name} in MLSD:\n{mlsd}"));
        assert!(line.starts_with(facts), "{line}");
    }

    // Through the links.
    f.expect("CWD abs", 250);
    assert_eq!(
        f.expect("PWD", 257).lines,
        ["257 \"/abs\" is the current directory"]
    );
    assert_eq!(names_of("NLST", &f.transfer("NLST")), ["f.txt"]);
    assert_eq!(f.retr("f.txt"), b"f\n");
    f.expect("CDUP", 250);
    assert_eq!(
        f.expect("PWD", 257).lines,
        ["257 \"/\" is the current directory"]
    );
    assert_eq!(f.retr("abs/f.txt"), b"f\n");
    assert_eq!(f.retr("abs-file"), b"f\n");
    assert_eq!(f.retr("rel"), b"f\n");
    assert_eq!(names_of("LIST", &f.transfer("LIST abs")), ["f.txt"]);
    f.expect("SIZE abs-file", 213);
    // Nothing outside.
    for name in ["dangling", "out-abs", "out-rel", "out-host", "out-work"] {
        f.expect(&format!("CWD {name}"), 550);
        f.expect(&format!("SIZE {name}"), 550);
        let _data = f.epsv_connect();
        f.expect(&format!("RETR {name}"), 550);
    }
    for path in [
        "../work/secret.txt",
        "/../../work/secret.txt",
        "../../../etc/passwd",
    ] {
        f.expect(&format!("SIZE {path}"), 550);
    }
    f.expect("CWD ../../..", 250);
    assert_eq!(
        f.expect("PWD", 257).lines,
        ["257 \"/\" is the current directory"]
    );
    f.quit();

    // Alice's root is her home: /pub there is her pub, not the server's.
    let mut a = srv.login_as("alice", "alice-pw");
    assert_eq!(names_of("NLST", &a.transfer("NLST")), ["pub", "pub-link"]);
    assert_eq!(a.retr("pub-link/y.txt"), b"alice pub\n");
    a.expect("SIZE pub-link/x.txt", 550);
    a.expect("SIZE root-link", 550);
    a.quit();
}

// ------------------------------------------------------------ LIST -R

/// A deep tree: `r/f0`, `r/a/f1`, ... down to `r/a/b/c/d/e/g/f6`.
fn deep_tree(fx: &Fixture) {
    let mut dir = String::from("r");
    for (i, sub) in ["a", "b", "c", "d", "e", "g", ""].iter().enumerate() {
        fx.write(&format!("{dir}/f{i}"), format!("{i}\n").as_bytes());
        if sub.is_empty() {
            break;
        }
        dir = format!("{dir}/{sub}");
    }
}

/// The shape of `LIST -R r` down to `levels` levels below r.
fn deep_shape(levels: usize) -> Vec<String> {
    let subs = ["a", "b", "c", "d", "e", "g"];
    let mut out = Vec::new();
    let mut dir = String::from("r");
    for level in 0..=levels.min(6) {
        if level > 0 {
            out.push(String::new());
        }
        out.push(format!("{dir}:"));
        let sub = subs.get(level);
        let mut entries = vec![format!("f{level}")];
        entries.extend(sub.map(|s| s.to_string()));
        entries.sort();
        out.extend(entries);
        if let Some(sub) = sub {
            dir = format!("{dir}/{sub}");
        }
    }
    out
}

/// `LIST -R` is `ls -lR`: a `typed:` header, the entries, a blank line,
/// the next directory's header (named from what the client typed),
/// depth first; below `--list-max-depth` levels it stops, and the 226
/// (multi-line) says so; `STAT -R` is the same text with the note in
/// parentheses. Without -R there is no header.
#[test]
fn list_recursive_is_ls_lr_and_capped_in_depth() {
    let fx = Fixture::new();
    deep_tree(&fx);
    for (depth, levels) in [
        (None, 5),
        (Some(0), 0),
        (Some(1), 1),
        (Some(2), 2),
        (Some(6), 6),
        (Some(7), 6),
    ] {
        let mut b = Server::builder();
        if let Some(d) = depth {
            b = b.args(&["--list-max-depth", &d.to_string()]);
        }
        let srv = b.start(&fx);
        let mut f = srv.login();
        let (data, r) = f.transfer_bytes(b"LIST -R r");
        let text = String::from_utf8(data).unwrap();
        let mut got = shape(&text);
        assert_eq!(got.pop().as_deref(), Some(""), "ends with CRLF");
        assert_eq!(
            got,
            deep_shape(levels),
            "--list-max-depth {depth:?}:\n{text}"
        );
        let cut = levels < 6;
        let d = depth.unwrap_or(5);
        let note = format!(
            "Listing not descended below {d} {} (--list-max-depth).",
            if d == 1 { "level" } else { "levels" }
        );
        if cut {
            assert_eq!(
                r.lines,
                [format!("226-{note}"), "226 Transfer complete.".into()]
            );
        } else {
            assert_eq!(r.lines, ["226 Transfer complete."]);
        }
        // STAT -R: the same text on the control connection.
        let s = f.expect("STAT -R r", 213);
        assert_eq!(shape(&stat_body(&s).join("\n")), deep_shape(levels));
        let last = s.lines.last().unwrap();
        if cut {
            assert_eq!(*last, format!("213 End of status ({note})"));
        } else {
            assert_eq!(last, "213 End of status");
        }
        // Relative to the working directory, headers as typed.
        f.expect("CWD r/a", 250);
        let text = f.listing("LIST -lR .");
        let headers: Vec<&str> = text.split("\r\n").filter(|l| l.ends_with(':')).collect();
        let want: &[&str] = if levels == 0 {
            &[".:"]
        } else {
            &[".:", "./b:"]
        };
        assert_eq!(headers[..want.len()], *want, "{text}");
        let text = f.listing("LIST -lR");
        assert!(text.starts_with(".:\r\n"), "{text}");
        let s = f.expect("STAT -R .", 213);
        assert_eq!(s.lines[1], ".:", "{s:?}");
        f.expect("CWD /", 250);
        // Without -R: r's own entries.
        assert_eq!(names_of("LIST", &f.transfer("LIST r")), ["a", "f0"]);
        f.quit();
    }
}

/// LIST -R goes on past a subdirectory it may not read, as `ls -R` does,
/// and the 226 (STAT: its last line) says how many it left out; one that
/// vanished is not counted.
#[test]
fn list_recursive_says_what_it_could_not_read() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let users = fx.users_file("users.toml", &[Account::full("alice")]);
    let srv = Server::builder().users(&users).start(&fx);
    for f in ["a/x.txt", "locked/y.txt", "m/locked2/z.txt", "z/w.txt"] {
        fx.write(&format!("alice/r/{f}"), b"data\n");
    }
    let lock = |rel: &str, mode: u32| {
        std::fs::set_permissions(fx.root.join(rel), std::fs::Permissions::from_mode(mode)).unwrap();
    };
    lock("alice/r/locked", 0o000);
    lock("alice/r/m/locked2", 0o000);
    let mut f = srv.login_as("alice", "alice-pw");
    let (data, r) = f.transfer_bytes(b"LIST -R r");
    let text = String::from_utf8(data).unwrap();
    let headers: Vec<&str> = text.split("\r\n").filter(|l| l.ends_with(':')).collect();
    assert_eq!(headers, ["r:", "r/a:", "r/m:", "r/z:"], "{text}");
    assert!(
        text.contains(" locked\r\n") && text.contains(" w.txt\r\n"),
        "{text}"
    );
    assert_eq!(
        r.lines,
        [
            "226-2 directories could not be read.",
            "226 Transfer complete."
        ]
    );
    let s = f.expect("STAT -R r/m", 213);
    assert_eq!(
        s.lines.last().unwrap(),
        "213 End of status (1 directory could not be read.)"
    );
    // Readable again: the whole tree, no note.
    lock("alice/r/locked", 0o755);
    lock("alice/r/m/locked2", 0o755);
    let (_, r) = f.transfer_bytes(b"LIST -R r");
    assert_eq!(r.lines, ["226 Transfer complete."]);
    f.quit();
    // Anonymous sessions list only world-readable directories: one that
    // is searchable but not readable (0711) is shown, not descended, and
    // counted.
    fx.write("pub/ok/a.txt", b"a\n");
    fx.write("pub/x711/b.txt", b"b\n");
    lock("pub/x711", 0o711);
    // Not shown to anonymous at all: neither listed nor counted.
    fx.write("pub/hid700/c.txt", b"c\n");
    lock("pub/hid700", 0o700);
    let mut anon = srv.login();
    let (data, r) = anon.transfer_bytes(b"LIST -R pub");
    let text = String::from_utf8(data).unwrap();
    let headers: Vec<&str> = text.split("\r\n").filter(|l| l.ends_with(':')).collect();
    assert_eq!(headers, ["pub:", "pub/ok:"], "{text}");
    assert!(text.contains(" x711\r\n"), "{text}");
    assert_eq!(
        r.lines,
        [
            "226-1 directory could not be read.",
            "226 Transfer complete."
        ]
    );
    assert!(!text.contains("hid700"), "{text}");
    anon.quit();
    // The entry cap counts what is sent: hidden entries do not use it up.
    for (name, mode) in [
        ("a.txt", 0o644),
        ("b.txt", 0o600),
        ("c.txt", 0o644),
        ("d.txt", 0o644),
    ] {
        fx.write(&format!("capped/{name}"), b"x\n");
        lock(&format!("capped/{name}"), mode);
    }
    let capped = Server::builder()
        .args(&["--list-max-entries", "2"])
        .start(&fx);
    let mut anon = capped.login();
    let (data, r) = anon.transfer_bytes(b"NLST capped");
    assert_eq!(
        String::from_utf8(data).unwrap(),
        "capped/a.txt\r\ncapped/c.txt\r\n"
    );
    assert_eq!(
        r.lines,
        [
            "226-Listing cut at 2 entries (--list-max-entries).",
            "226 Transfer complete."
        ]
    );
    anon.quit();
}

/// `--list-max-entries` caps every listing command, LIST -R's levels
/// together; a listing cut there ends with a 226 that says so (STAT in
/// parentheses); one of exactly the cap is complete.
#[test]
fn listings_are_capped_in_entries() {
    let fx = Fixture::new();
    for i in 0..5 {
        fx.write(&format!("flat/f{i}"), b"x\n");
    }
    for i in 0..3 {
        fx.write(&format!("three/f{i}"), b"x\n");
    }
    deep_tree(&fx);
    let srv = Server::builder()
        .args(&["--list-max-entries", "3"])
        .start(&fx);
    let mut f = srv.login();
    let note = "Listing cut at 3 entries (--list-max-entries).";
    for verb in ["LIST", "NLST", "MLSD"] {
        let (data, r) = f.transfer_bytes(format!("{verb} flat").as_bytes());
        let got: Vec<String> = names_of(verb, &data)
            .into_iter()
            .map(|n| n.trim_start_matches("flat/").to_string())
            .collect();
        assert_eq!(got, ["f0", "f1", "f2"], "{verb}");
        assert_eq!(
            r.lines,
            [format!("226-{note}"), "226 Transfer complete.".into()],
            "{verb}"
        );
        let (data, r) = f.transfer_bytes(format!("{verb} three").as_bytes());
        assert_eq!(names_of(verb, &data).len(), 3, "{verb}");
        assert_eq!(r.lines, ["226 Transfer complete."], "{verb} three");
    }
    let (data, r) = f.transfer_bytes(b"LIST -R r");
    let got = shape(&String::from_utf8(data).unwrap());
    assert_eq!(got, ["r:", "a", "f0", "", "r/a:", "b", ""]);
    assert_eq!(r.lines[0], format!("226-{note}"));
    let s = f.expect("STAT flat", 213);
    assert_eq!(stat_body(&s).len(), 3);
    assert_eq!(
        s.lines.last().unwrap(),
        &format!("213 End of status ({note})")
    );
    let s = f.expect("STAT three", 213);
    assert_eq!(s.lines.last().unwrap(), "213 End of status");
    // A pattern counts matches only.
    let (data, r) = f.transfer_bytes(b"NLST flat/f[34]");
    assert_eq!(names_of("NLST", &data), ["flat/f3", "flat/f4"]);
    assert_eq!(r.lines, ["226 Transfer complete."]);
    f.quit();
    // A cap of one says so in the singular.
    let srv = Server::builder()
        .args(&["--list-max-entries", "1"])
        .start(&fx);
    let mut f = srv.login();
    let (data, r) = f.transfer_bytes(b"NLST flat");
    assert_eq!(names_of("NLST", &data), ["flat/f0"]);
    assert_eq!(
        r.lines,
        [
            "226-Listing cut at 1 entry (--list-max-entries).",
            "226 Transfer complete."
        ]
    );
    f.quit();
}

/// Listings are rendered a chunk of entries at a time (the first chunk in
/// the same worker trip that reads the directory): every command lists a
/// directory of 0, 1, a chunk's worth and several chunks' worth of
/// entries whole, in name order, each entry once, and the counts, caps
/// and `-R` headers come out the same across the seams.
#[test]
fn listings_are_whole_across_chunks() {
    let fx = Fixture::new();
    let sizes = [0usize, 1, 511, 512, 513, 1300];
    for n in sizes {
        mkdir(&fx.root, &format!("d{n}"));
        for i in 0..n {
            fx.write(&format!("d{n}/f{i:05}"), b"x");
        }
    }
    fx.write("r/sub/s0", b"x");
    for i in 0..700 {
        fx.write(&format!("r/f{i:05}"), b"x");
    }
    let srv = Server::builder().start(&fx);
    let mut f = srv.login();
    for n in sizes {
        let want: Vec<String> = (0..n).map(|i| format!("f{i:05}")).collect();
        for verb in ["LIST", "NLST", "MLSD"] {
            let (data, r) = f.transfer_bytes(format!("{verb} d{n}").as_bytes());
            let got: Vec<String> = names_of(verb, &data)
                .into_iter()
                .map(|x| x.trim_start_matches(&format!("d{n}/")).to_string())
                .collect();
            assert_eq!(got, want, "{verb} d{n}");
            assert_eq!(r.lines, ["226 Transfer complete."], "{verb} d{n}");
        }
        let s = f.expect(&format!("STAT d{n}"), 213);
        let got: Vec<String> = stat_body(&s)
            .iter()
            .map(|l| list_name(l).to_string())
            .collect();
        assert_eq!(got, want, "STAT d{n}");
    }
    let mut want = vec!["r:".to_string()];
    want.extend((0..700).map(|i| format!("f{i:05}")));
    want.extend(["sub", "", "r/sub:", "s0", ""].map(String::from));
    let (data, r) = f.transfer_bytes(b"LIST -R r");
    assert_eq!(shape(&String::from_utf8(data).unwrap()), want, "LIST -R");
    assert_eq!(r.lines, ["226 Transfer complete."]);
    f.quit();
}

// ------------------------------------------------------------ memory

/// Ten clients listing a 20,000-entry directory at once, three rounds:
/// listings stream from the shard's workers a chunk at a time, so the
/// server's RSS stays within a few MiB of where it was (measured about
/// +7 MiB; the bound here is generous) and does not creep round after
/// round. Before streaming: about +110 MiB after one round.
#[test]
fn concurrent_big_listings_keep_memory_bounded() {
    let fx = Fixture::new();
    let many = mkdir(&fx.root, "many");
    for i in 0..20_000 {
        std::fs::File::create(many.join(format!("file-{i:05}.dat"))).unwrap();
    }
    let srv = Server::builder().ports(20).log_level("info").start(&fx);
    let pid = srv.pid();
    // Warm: one listing (the workers start, the pools fill).
    let mut f = srv.login();
    let first = f.transfer("LIST many");
    assert_eq!(data_lines(&first).len(), 20_000);
    let base = settle(pid, |_| true, Duration::from_millis(500)).rss_kib;
    let mut peak = base;
    for round in 0..3 {
        let clients = 10;
        // Every client has its 150 before any reads: all ten listings
        // are under way at once.
        let ready = Arc::new(Barrier::new(clients + 1));
        let go = Arc::new(Barrier::new(clients + 1));
        let addr = srv.addr();
        let threads: Vec<_> = (0..clients)
            .map(|_| {
                let (ready, go) = (ready.clone(), go.clone());
                std::thread::spawn(move || {
                    let mut f = Ftp::connect(addr);
                    f.login();
                    let mut data = f.epsv_connect();
                    f.expect("LIST many", 150);
                    ready.wait();
                    go.wait();
                    let mut buf = Vec::new();
                    data.read_to_end(&mut buf).unwrap();
                    let r = f.read_reply();
                    assert_eq!(r.code, 226, "{r:?}");
                    f.quit();
                    buf.iter().filter(|&&b| b == b'\n').count()
                })
            })
            .collect();
        ready.wait();
        std::thread::sleep(Duration::from_millis(200));
        peak = peak.max(rss_kib(pid));
        go.wait();
        let mut done = 0;
        while done < clients {
            peak = peak.max(rss_kib(pid));
            done = threads.iter().filter(|t| t.is_finished()).count();
            std::thread::sleep(Duration::from_millis(5));
        }
        for t in threads {
            assert_eq!(t.join().unwrap(), 20_000, "round {round}");
        }
    }
    let after = settle(pid, |_| true, Duration::from_millis(500)).rss_kib;
    eprintln!(
        "listing memory: RSS {} KiB idle, {} KiB peak, {} KiB after 3 x 10 listings of 20,000 entries",
        base, peak, after
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    assert!(
        peak < base + 40 * 1024,
        "10 concurrent listings took the server from {:.1} to {:.1} MiB",
        mib(base),
        mib(peak)
    );
    assert!(
        after < base + 20 * 1024,
        "after the listings the idle server holds {:.1} MiB (was {:.1})",
        mib(after),
        mib(base)
    );
    f.quit();
}

/// `STAT -R` of a tree several chunks long (a chunk is 512 entries, one
/// worker job each) is `LIST -R`'s text, entry for entry and in order:
/// it is now gathered chunk by chunk, as a listing streams, so that other
/// sessions' listings take turns with it on the workers.
#[test]
fn stat_recursive_of_many_chunks_is_list_recursive() {
    let fx = Fixture::new();
    for i in 0..1300 {
        fx.write(&format!("big/f{i:04}"), b"x");
    }
    for i in 0..600 {
        fx.write(&format!("big/sub/g{i:04}"), b"y");
    }
    let srv = Server::builder().start(&fx);
    let mut f = srv.login();
    let (data, r) = f.transfer_bytes(b"LIST -R big");
    assert_eq!(r.code, 226, "{r:?}");
    let listed = data_lines(&data);
    // 1,300 files and the directory, then sub's 600, and two headers.
    assert_eq!(listed.len(), 1301 + 600 + 2, "{listed:?}");
    let s = f.expect("STAT -R big", 213);
    let stated: Vec<String> = stat_body(&s)
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(stated, listed);
    assert_eq!(s.lines.last().unwrap(), "213 End of status");
    f.quit();
}
