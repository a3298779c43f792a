//! The test harness's own guarantees, which every other integration test
//! relies on: passive port blocks (tests/common/ports.rs) never overlap,
//! whether leased by parallel threads or held by another process, skip
//! ports something has bound, and come back when their holder dies.
//!
//! Each test uses a private registry over a block leased from the shared
//! one, so it cannot disturb (or be disturbed by) servers running
//! elsewhere on the machine.

mod common;

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Command, Stdio};

use common::*;

/// A private registry over `n` ports that the shared registry has leased
/// to this test (returned too, to keep the lease).
fn private(n: u16) -> (Registry, PortBlock, tempfile::TempDir) {
    let block = port_block(n);
    let dir = tempfile::tempdir().unwrap();
    let reg = Registry::new(dir.path(), block.lo, block.hi);
    (reg, block, dir)
}

/// Whether `lease(n)` on `reg` panics (no free block).
fn lease_fails(reg: &Registry, n: u16) -> bool {
    catch_unwind(AssertUnwindSafe(|| reg.lease(n))).is_err()
}

#[test]
fn leases_from_parallel_threads_are_disjoint() {
    let (reg, whole, _dir) = private(400);
    let blocks: Vec<PortBlock> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8u16)
            .map(|t| {
                let reg = reg.clone();
                s.spawn(move || {
                    (0..4u16)
                        .map(|k| reg.lease(1 + (t * 4 + k) % 10))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let mut ranges: Vec<(u16, u16)> = blocks.iter().map(|b| (b.lo, b.hi)).collect();
    ranges.sort();
    assert_eq!(ranges.len(), 32);
    for w in ranges.windows(2) {
        assert!(w[0].1 < w[1].0, "overlapping blocks: {ranges:?}");
    }
    assert!(ranges[0].0 >= whole.lo && ranges[31].1 <= whole.hi);
    // Given back on drop: the whole range is free again.
    drop(blocks);
    let all = reg.lease(400);
    assert_eq!((all.lo, all.hi), (whole.lo, whole.hi));
}

#[test]
fn awhole_given_back_is_not_handed_out_again_at_once() {
    let (reg, block, _dir) = private(10);
    let a = reg.lease(2);
    assert_eq!((a.lo, a.hi), (block.lo, block.lo + 1));
    drop(a);
    let b = reg.lease(2);
    assert_eq!((b.lo, b.hi), (block.lo + 2, block.lo + 3));
}

#[test]
fn a_port_something_has_bound_is_skipped() {
    let (reg, block, _dir) = private(10);
    let taken = block.lo + 3;
    let _l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, taken)).unwrap();
    let got = reg.lease(3);
    assert!(
        got.hi < taken || got.lo > taken,
        "block {}-{} holds the bound port {taken}",
        got.lo,
        got.hi
    );
    drop(got);
    // Six free ports follow the bound one, and three precede it: no seven.
    assert!(lease_fails(&reg, 7), "a block of 7 around a bound port");
    let six = reg.lease(6);
    assert_eq!((six.lo, six.hi), (taken + 1, block.hi));
}

#[test]
fn a_lease_held_by_another_process_is_respected_until_it_dies() {
    let (reg, block, dir) = private(10);
    // Another process holds lo..=lo+4 the way a test binary does: an
    // flock on the lease file (flock(1) takes the same lock).
    let file = dir.path().join(format!("{}-{}", block.lo, block.lo + 4));
    std::fs::write(&file, b"").unwrap();
    // (-o: the lock stays with flock itself, not with its command.)
    let mut holder = Command::new("flock")
        .arg("-o")
        .arg(&file)
        .args(["sh", "-c", "echo locked $$; exec sleep 60"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("flock(1) runs");
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let sleeper = line
        .trim()
        .strip_prefix("locked ")
        .unwrap_or_else(|| panic!("flock(1) said {line:?}"))
        .to_string();
    let rest = reg.lease(5);
    assert_eq!((rest.lo, rest.hi), (block.lo + 5, block.hi));
    assert!(lease_fails(&reg, 1), "a port of a live lease handed out");
    // The holder dies without giving its block back: its lock goes with
    // it, and the next lease reclaims the block.
    holder.kill().unwrap();
    holder.wait().unwrap();
    let _ = Command::new("kill").arg(&sleeper).status();
    let again = reg.lease(5);
    assert_eq!((again.lo, again.hi), (block.lo, block.lo + 4));
}
