//! GNU wget against the real server: single files and a recursive
//! download of a small tree (passive by default, and active).

mod common;

use common::*;

fn wget(fx: &Fixture, args: &[&str]) -> Run {
    let mut a = vec!["--no-config", "-nv", "--tries=1", "--timeout=20"];
    a.extend_from_slice(args);
    run_client(120, "wget", &a, Some(&fx.work))
}

fn small_tree(fx: &Fixture) {
    fx.write("tree/top.txt", b"top\n");
    fx.write("tree/empty", b"");
    fx.write("tree/data/one.bin", &pattern(11, 333_333));
    fx.write("tree/data/two.bin", &pattern(12, 2 << 20));
    fx.write("tree/data/deep/er/three.txt", &text_lines(100));
    fx.write("tree/with space/file name.txt", b"spaces\n");
    fx.write("tree/caf\u{e9}/\u{65e5}\u{672c}.txt", "utf-8\n".as_bytes());
    fx.write(
        "outside-tree.txt",
        b"not under /tree: must not be fetched\n",
    );
}

#[test]
fn single_file() {
    let fx = Fixture::new();
    fx.standard_tree();
    let srv = Server::builder().start(&fx);
    let r = wget(&fx, &[&format!("{}/dir/b.bin", srv.url()), "-O", "b.bin"]);
    r.ok();
    assert_same_file(&fx.out("b.bin"), &fx.root.join("dir/b.bin"));
    // Without -O: wget names the file itself.
    wget(&fx, &[&format!("{}/hello.txt", srv.url())]).ok();
    assert_same_file(&fx.out("hello.txt"), &fx.root.join("hello.txt"));
    wget(&fx, &[&format!("{}/with%20space.txt", srv.url())]).ok();
    assert_same_file(&fx.out("with space.txt"), &fx.root.join("with space.txt"));
}

#[test]
fn single_file_active() {
    let fx = Fixture::new();
    fx.standard_tree();
    let srv = Server::builder().start(&fx);
    wget(
        &fx,
        &[
            "--no-passive-ftp",
            &format!("{}/dir/a.bin", srv.url()),
            "-O",
            "a.bin",
        ],
    )
    .ok();
    assert_same_file(&fx.out("a.bin"), &fx.root.join("dir/a.bin"));
    let log = srv.log_synced();
    assert!(
        log.contains(": PORT ") || log.contains(": EPRT "),
        "wget --no-passive-ftp did not use PORT/EPRT"
    );
}

fn recursive(active: bool) {
    let fx = Fixture::new();
    small_tree(&fx);
    let srv = Server::builder().start(&fx);
    let url = format!("{}/tree/", srv.url());
    let mut args = vec!["-r", "-nH", "-P", "out", "--restrict-file-names=nocontrol"];
    if active {
        args.push("--no-passive-ftp");
    }
    args.push(&url);
    let r = wget(&fx, &args);
    r.ok();
    assert_same_tree(&fx.out("out/tree"), &fx.root.join("tree"), &[".listing"]);
    let log = srv.log_synced();
    let passive = log.contains(": PASV") || log.contains(": EPSV");
    let activ = log.contains(": PORT ") || log.contains(": EPRT ");
    assert_eq!(
        (passive, activ),
        (!active, active),
        "wget used the wrong data-connection mode"
    );
    assert!(
        !fx.out("out/outside-tree.txt").exists(),
        "wget -r fetched a file outside the requested tree"
    );
}

#[test]
fn recursive_passive() {
    recursive(false);
}

#[test]
fn recursive_active() {
    recursive(true);
}
