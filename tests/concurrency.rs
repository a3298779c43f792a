//! `--cores 2` with many concurrent sessions: every download byte-exact,
//! and the sessions spread over both shards (SO_REUSEPORT accept).

mod common;

use std::collections::BTreeMap;
use std::sync::Barrier;

use common::*;

const SESSIONS: usize = 50;

fn files(fx: &Fixture) -> Vec<(String, Vec<u8>)> {
    (0..6)
        .map(|i| {
            let name = format!("f{i}.bin");
            let data = pattern(100 + i, 150_000 + 97_001 * i as usize);
            fx.write(&name, &data);
            (name, data)
        })
        .collect()
}

#[test]
fn fifty_concurrent_sessions_on_two_shards() {
    let fx = Fixture::new();
    let files = files(&fx);
    let srv = Server::builder().cores(2).ports(200).start(&fx);
    let addr = srv.addr();
    // All sessions log in first, then transfer at the same time.
    let barrier = Barrier::new(SESSIONS);
    let shards: Vec<u32> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..SESSIONS)
            .map(|i| {
                let files = &files;
                let barrier = &barrier;
                s.spawn(move || {
                    let mut f = Ftp::connect(addr);
                    f.login();
                    barrier.wait();
                    for k in 0..3 {
                        let (name, data) = &files[(i + k) % files.len()];
                        let got = f.retr(name);
                        assert_bytes_eq(&format!("session {i}: {name}"), &got, data);
                    }
                    let c = f.stat_counters();
                    f.quit();
                    c.shard
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut per_shard = BTreeMap::new();
    for s in &shards {
        *per_shard.entry(*s).or_insert(0) += 1;
    }
    eprintln!("sessions per shard: {per_shard:?}");
    assert_eq!(
        per_shard.keys().copied().collect::<Vec<_>>(),
        [0, 1],
        "sessions per shard: {per_shard:?}"
    );
}

#[test]
fn concurrent_curl_clients() {
    let fx = Fixture::new();
    let files = files(&fx);
    let srv = Server::builder().cores(2).ports(100).start(&fx);
    let url = srv.url();
    std::thread::scope(|s| {
        for i in 0..16 {
            let (name, _) = &files[i % files.len()];
            let dest = fx.out(&format!("{i}-{name}"));
            let url = &url;
            let mode: &[&str] = match i % 3 {
                0 => &[],
                1 => &["--disable-epsv"],
                _ => &["-P", "127.0.0.1"],
            };
            s.spawn(move || {
                let d = dest.to_string_lossy().into_owned();
                let u = format!("{url}/{name}");
                let mut args = mode.to_vec();
                args.extend_from_slice(&["-o", &d, &u]);
                curl(&args).ok();
            });
        }
    });
    for i in 0..16 {
        let (name, data) = &files[i % files.len()];
        let got = std::fs::read(fx.out(&format!("{i}-{name}"))).unwrap();
        assert_bytes_eq(&format!("curl {i}: {name}"), &got, data);
    }
}
