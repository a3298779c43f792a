//! CPU time and memory of the server under test (`--server-pid`): the
//! whole process tree, including the session processes of forking servers
//! (vsftpd, ProFTPD, pure-ftpd) that come and go during the run.
//!
//! **CPU, from the server's own cgroup when it has one.** When the pid sits
//! in a cgroup (v2 `cpu.stat`, or v1 `cpuacct`) that holds nothing but its
//! tree, the kernel's counter of that cgroup is read at the start and at the
//! end: it includes every process that ever ran in it, whoever reaped it.
//! `loadtest/compare.sh` starts each server in a cgroup of its own for this.
//!
//! **Otherwise, from /proc.** /proc/PID/stat gives a process's own CPU
//! (`utime + stime`, fields 14–15) and that of its children it has reaped
//! (`cutime + cstime`, 16–17; a reaped child's own `c*time` is folded in
//! too, so a whole reaped subtree lands in the reaper). The sampler scans
//! /proc several times a second (every 100 ms, slower when a scan is
//! costly) and keeps every member of the tree it has seen, by pid and start
//! time: the root, every descendant by parent link, and every process once
//! seen a member even after it is reparented (vsftpd's session processes
//! outlive their parent). The tree's CPU is the sum of `self + c*` over
//! live members, plus the time of members that exited *out of reach*: when
//! a member disappears, its last-seen `self + c*` is credited to the tree
//! unless its parent is a live member whose `c*time` grew by at least as
//! much (then the parent holds it, and counting it again would double it).
//! So children reaped by a process that itself exits are counted (through
//! the exiting process's own `c*time`), and so are children reaped outside
//! the tree (init, a subreaper, `SIGCHLD` ignored) from their last sample;
//! only a process that both started and ended between two scans *and* was
//! reaped outside the tree is missed. The report says which method it used
//! (`cpu_source`).
//!
//! **Settling.** At the end the sampler waits (at most 5 s) until the tree
//! has no more processes than at the start, so the CPU of sessions that
//! close after the last request (a forking server's children exiting on
//! QUIT) is in the figure; `cpu_settled` says whether it got there.
//!
//! **Memory** is the sum of `VmRSS` over the tree, once a second; for
//! forking servers that counts shared pages once per process, so the sum of
//! `Pss` (from smaps_rollup, shared pages split between sharers) is given
//! beside it.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::engine::sys;

/// Pause between /proc scans when a scan is cheap.
const SCAN_EVERY: Duration = Duration::from_millis(100);
/// Memory is read at most this often (smaps_rollup walks every mapping).
const MEMORY_EVERY: Duration = Duration::from_secs(1);
/// Longest wait at the end for the tree to shrink back.
const SETTLE_LIMIT: Duration = Duration::from_secs(5);
/// Scans (10 ms apart) until the server's cgroup holds nothing the tree
/// has not seen, before the CPU falls back to the /proc tree.
const CGROUP_TRIES: u32 = 20;

/// The fields of /proc/PID/stat this module uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StatLine {
    pub ppid: u32,
    /// Zombie (or dead): its times are final.
    pub zombie: bool,
    /// utime, stime: the process's own CPU, in clock ticks.
    pub own: (u64, u64),
    /// cutime, cstime: its reaped children's, in clock ticks.
    pub children: (u64, u64),
    /// Start time (field 22), with the pid a process's identity.
    pub started: u64,
}

impl StatLine {
    fn total(&self) -> (u64, u64) {
        (self.own.0 + self.children.0, self.own.1 + self.children.1)
    }
}

/// Parses the text of /proc/PID/stat. The command name (field 2) is in
/// parentheses and may itself contain spaces and parentheses, so fields are
/// counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<StatLine> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); field n is f[n - 3].
    let num = |field: usize| f.get(field - 3)?.parse::<u64>().ok();
    Some(StatLine {
        ppid: num(4)? as u32,
        zombie: matches!(f.first(), Some(&"Z") | Some(&"X")),
        own: (num(14)?, num(15)?),
        children: (num(16)?, num(17)?),
        started: num(22)?,
    })
}

/// The CPU so far of `pid` and its live descendants, their reaped
/// children included (user, system; clock ticks): one scan of /proc
/// through a [`Tree`]. For a tree that keeps its processes through a
/// measurement (`benches/runtime_floor.rs`); a load test uses
/// [`Sampler`], which follows processes that come and go.
///
/// Errors: /proc cannot be read.
pub fn tree_ticks(pid: u32) -> anyhow::Result<(u64, u64)> {
    Ok(Tree::new(pid).update(&scan_proc()?).ticks)
}

/// The CPU so far of the calling thread (user, system; clock ticks),
/// from /proc/thread-self/stat; None if it cannot be read.
pub fn thread_ticks() -> Option<(u64, u64)> {
    parse_stat(&fs::read_to_string("/proc/thread-self/stat").ok()?).map(|s| s.own)
}

/// The value in kB of a `Key:   123 kB` line of a /proc status-like file.
pub(crate) fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Every process's stat line, by pid.
fn scan_proc() -> anyhow::Result<HashMap<u32, StatLine>> {
    let mut all = HashMap::new();
    for entry in fs::read_dir("/proc").context("reading /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes come and go while we scan: a vanished one is skipped.
        if let Some(st) = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat)
        {
            all.insert(pid, st);
        }
    }
    Ok(all)
}

/// The members of a process tree seen so far, and the CPU of those that
/// exited out of reach (see the module docs).
#[derive(Debug)]
pub(crate) struct Tree {
    root: u32,
    /// Live members, by (pid, start time), as last seen.
    members: HashMap<(u32, u64), StatLine>,
    /// Ticks (user, sys) of members gone where no member's c*time took
    /// them in.
    escaped: (u64, u64),
}

/// One reading of a [`Tree`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Reading {
    /// Live, non-zombie members.
    pub processes: usize,
    /// The tree's CPU so far (user, sys), in clock ticks.
    pub ticks: (u64, u64),
}

impl Tree {
    /// A tree rooted at `root` (nothing seen yet).
    pub(crate) fn new(root: u32) -> Tree {
        Tree {
            root,
            members: HashMap::new(),
            escaped: (0, 0),
        }
    }

    /// Updates the tree from one scan of every process (`all`, by pid).
    pub(crate) fn update(&mut self, all: &HashMap<u32, StatLine>) -> Reading {
        let mut now: HashMap<(u32, u64), StatLine> = HashMap::new();
        let mut queue: Vec<u32> = Vec::new();
        let mut add = |pid: u32, st: &StatLine, queue: &mut Vec<u32>| {
            if now.insert((pid, st.started), *st).is_none() {
                queue.push(pid);
            }
        };
        if let Some(st) = all.get(&self.root) {
            add(self.root, st, &mut queue);
        }
        for &(pid, started) in self.members.keys() {
            if let Some(st) = all.get(&pid).filter(|st| st.started == started) {
                add(pid, st, &mut queue);
            }
        }
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (&pid, st) in all {
            children.entry(st.ppid).or_default().push(pid);
        }
        while let Some(p) = queue.pop() {
            for &c in children.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
                add(c, &all[&c], &mut queue);
            }
        }

        // Members gone since the last scan, grouped by their nearest live
        // ancestor (through gone parents: a child reaped by a parent that
        // was reaped in turn lands in the grandparent's c*time), or by none
        // when the chain leaves the tree.
        let before: HashMap<u32, (u64, &StatLine)> = self
            .members
            .iter()
            .map(|(&(pid, started), st)| (pid, (started, st)))
            .collect();
        let live_pid = |pid: u32| {
            before
                .get(&pid)
                .filter(|(started, _)| now.contains_key(&(pid, *started)))
                .is_some()
        };
        let mut gone: HashMap<Option<u32>, (u64, u64)> = HashMap::new();
        for (key, st) in &self.members {
            if now.contains_key(key) {
                continue;
            }
            let mut parent = st.ppid;
            let mut hops = 0;
            let ancestor = loop {
                if live_pid(parent) {
                    break Some(parent);
                }
                match before.get(&parent) {
                    Some((_, p)) if hops < 64 => {
                        parent = p.ppid;
                        hops += 1;
                    }
                    _ => break None,
                }
            };
            let t = st.total();
            let g = gone.entry(ancestor).or_default();
            g.0 += t.0;
            g.1 += t.1;
        }
        for (ancestor, (user, sys)) in gone {
            let grew = ancestor
                .and_then(|a| {
                    let (started, b) = before.get(&a)?;
                    let n = now.get(&(a, *started))?;
                    Some((
                        n.children.0.saturating_sub(b.children.0),
                        n.children.1.saturating_sub(b.children.1),
                    ))
                })
                .unwrap_or((0, 0));
            self.escaped.0 += user.saturating_sub(grew.0);
            self.escaped.1 += sys.saturating_sub(grew.1);
        }
        self.members = now;

        let mut r = Reading {
            processes: 0,
            ticks: self.escaped,
        };
        for st in self.members.values() {
            r.processes += usize::from(!st.zombie);
            let t = st.total();
            r.ticks.0 += t.0;
            r.ticks.1 += t.1;
        }
        r
    }

    /// Live members' pids.
    pub(crate) fn pids(&self) -> Vec<u32> {
        self.members.keys().map(|&(p, _)| p).collect()
    }
}

/// Where the CPU figure comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CpuSource {
    /// A cgroup holding only the server: exact.
    Cgroup(PathBuf),
    /// The /proc tree (see the module docs).
    Proc,
}

impl CpuSource {
    /// `cgroup` or `proc`, as the report names it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            CpuSource::Cgroup(_) => "cgroup",
            CpuSource::Proc => "proc",
        }
    }
}

/// The cgroup directory holding `pid` with a CPU counter (v2 `cpu.stat`,
/// v1 `cpuacct`), when there is one other than a hierarchy's root.
fn cgroup_of(pid: u32) -> Option<PathBuf> {
    let own = fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let mounts = fs::read_to_string("/proc/self/mountinfo").ok()?;
    for line in own.lines() {
        let mut f = line.splitn(3, ':');
        let (_, controllers, path) = (f.next()?, f.next()?, f.next()?);
        if path == "/" {
            continue;
        }
        let v2 = controllers.is_empty();
        if !v2 && !controllers.split(',').any(|c| c == "cpuacct") {
            continue;
        }
        // mountinfo: ... MOUNTPOINT ... - FSTYPE SOURCE SUPEROPTIONS
        let mount = mounts.lines().find_map(|m| {
            let (left, right) = m.split_once(" - ")?;
            let mut r = right.split_whitespace();
            let (fstype, _, opts) = (r.next()?, r.next()?, r.next().unwrap_or(""));
            let ok = if v2 {
                fstype == "cgroup2"
            } else {
                fstype == "cgroup" && opts.split(',').any(|o| o == "cpuacct")
            };
            ok.then(|| left.split_whitespace().nth(4).map(PathBuf::from))?
        })?;
        let dir = mount.join(path.trim_start_matches('/'));
        let counter = if v2 { "cpu.stat" } else { "cpuacct.usage_user" };
        if dir.join(counter).is_file() {
            return Some(dir);
        }
    }
    None
}

/// (user, sys) µs a cgroup has used.
fn cgroup_cpu_us(dir: &Path) -> Option<(u64, u64)> {
    if let Ok(stat) = fs::read_to_string(dir.join("cpu.stat")) {
        let get = |k: &str| {
            stat.lines()
                .find_map(|l| l.strip_prefix(k)?.trim().parse::<u64>().ok())
        };
        return Some((get("user_usec ")?, get("system_usec ")?));
    }
    let ns = |f: &str| {
        fs::read_to_string(dir.join(f))
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    };
    Some((
        ns("cpuacct.usage_user")? / 1000,
        ns("cpuacct.usage_sys")? / 1000,
    ))
}

/// Are all processes of the cgroup at `dir` members of the tree?
fn holds_only(dir: &Path, tree: &[u32]) -> bool {
    let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) else {
        return false;
    };
    procs
        .lines()
        .filter_map(|l| l.trim().parse::<u32>().ok())
        .all(|p| tree.contains(&p))
}

/// Sum of VmRSS and of Pss over `pids`, in bytes (Pss None where a
/// process's smaps_rollup cannot be read).
fn memory(pids: &[u32]) -> (u64, Option<u64>) {
    let mut rss = 0;
    let mut pss = Some(0);
    for p in pids {
        if let Ok(status) = fs::read_to_string(format!("/proc/{p}/status")) {
            rss += kb_field(&status, "VmRSS").unwrap_or(0) * 1024;
        }
        let one = fs::read_to_string(format!("/proc/{p}/smaps_rollup"))
            .ok()
            .and_then(|t| kb_field(&t, "Pss"));
        pss = match (pss, one) {
            (Some(total), Some(kb)) => Some(total + kb * 1024),
            _ => None,
        };
    }
    (rss, pss)
}

/// What the sampler found over a run.
#[derive(Clone, Debug)]
pub(crate) struct Summary {
    pub source: CpuSource,
    /// The tree's CPU during the run, user and system, in µs.
    pub cpu_us: (u64, u64),
    /// The tree shrank back to its size at the start before the last
    /// reading (else the CPU is a lower bound).
    pub settled: bool,
    pub start_rss_bytes: u64,
    pub end_rss_bytes: u64,
    pub peak_rss_bytes: u64,
    pub peak_pss_bytes: Option<u64>,
    pub peak_processes: usize,
}

struct State {
    tree: Tree,
    last: Reading,
    peak_rss: u64,
    peak_pss: Option<u64>,
    peak_processes: usize,
}

impl State {
    fn scan(&mut self) -> anyhow::Result<Reading> {
        self.last = self.tree.update(&scan_proc()?);
        self.peak_processes = self.peak_processes.max(self.last.processes);
        Ok(self.last)
    }

    fn memory(&mut self) -> u64 {
        let (rss, pss) = memory(&self.tree.pids());
        self.peak_rss = self.peak_rss.max(rss);
        self.peak_pss = match (self.peak_pss, pss) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
        rss
    }
}

/// Samples the tree in the background until [`Sampler::finish`].
pub(crate) struct Sampler {
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
    source: CpuSource,
    start: Reading,
    start_cgroup_us: Option<(u64, u64)>,
    start_rss: u64,
}

impl Sampler {
    /// Takes the baseline (failing if the pid is not there) and starts
    /// sampling.
    pub(crate) fn start(pid: u32) -> anyhow::Result<Sampler> {
        let mut state = State {
            tree: Tree::new(pid),
            last: Reading::default(),
            peak_rss: 0,
            peak_pss: Some(0),
            peak_processes: 0,
        };
        let first = state.scan()?;
        if first.processes == 0 && state.tree.members.is_empty() {
            anyhow::bail!("--server-pid {pid}: no such process");
        }
        let start_rss = state.memory();
        // A process forked between the tree scan and the read of
        // cgroup.procs (a forking server's session for the start-up probe,
        // say) is in the cgroup but not yet in the tree: rescan a few times
        // before falling back to /proc, so that every server gets the same
        // (exact) method whenever it has a cgroup of its own.
        let mut source = CpuSource::Proc;
        if let Some(dir) = cgroup_of(pid) {
            for _ in 0..CGROUP_TRIES {
                if holds_only(&dir, &state.tree.pids()) {
                    source = CpuSource::Cgroup(dir);
                    break;
                }
                thread::sleep(SCAN_EVERY / 10);
                state.scan()?;
            }
        }
        let start_cgroup_us = match &source {
            CpuSource::Cgroup(dir) => cgroup_cpu_us(dir),
            CpuSource::Proc => None,
        };
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            thread::Builder::new()
                .name("loadgen-procstat".into())
                .spawn(move || {
                    let mut memory_at = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        let mut s = state.lock().unwrap();
                        let _ = s.scan();
                        if memory_at.elapsed() >= MEMORY_EVERY {
                            s.memory();
                            memory_at = Instant::now();
                        }
                        drop(s);
                        // Keep the sampler's own cost near 10 % of a core
                        // on a huge tree: never sleep less than 9 scans.
                        thread::sleep(SCAN_EVERY.max(t.elapsed() * 9));
                    }
                })?
        };
        Ok(Sampler {
            state,
            stop,
            thread: Some(thread),
            source,
            start: first,
            start_cgroup_us,
            start_rss,
        })
    }

    /// Stops sampling, lets the tree settle, takes the last reading and
    /// returns the summary.
    pub(crate) fn finish(mut self) -> Summary {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut s = self.state.lock().unwrap();
        let waited = Instant::now();
        let mut settled = false;
        loop {
            let r = s.scan().unwrap_or(s.last);
            if r.processes <= self.start.processes {
                settled = true;
                break;
            }
            if waited.elapsed() >= SETTLE_LIMIT {
                break;
            }
            thread::sleep(SCAN_EVERY);
        }
        let end_rss = s.memory();
        let cpu_us = match (&self.source, self.start_cgroup_us) {
            (CpuSource::Cgroup(dir), Some(a)) => cgroup_cpu_us(dir)
                .map(|b| (b.0.saturating_sub(a.0), b.1.saturating_sub(a.1)))
                .unwrap_or_default(),
            _ => {
                let tick_us = 1_000_000 / sys::clock_ticks_per_second().max(1);
                (
                    s.last.ticks.0.saturating_sub(self.start.ticks.0) * tick_us,
                    s.last.ticks.1.saturating_sub(self.start.ticks.1) * tick_us,
                )
            }
        };
        Summary {
            source: self.source.clone(),
            cpu_us,
            settled,
            start_rss_bytes: self.start_rss,
            end_rss_bytes: end_rss,
            peak_rss_bytes: s.peak_rss.max(end_rss),
            peak_pss_bytes: s.peak_pss,
            peak_processes: s.peak_processes.max(self.start.processes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(ppid: u32, own: u64, children: u64, started: u64) -> StatLine {
        StatLine {
            ppid,
            zombie: false,
            own: (own, 0),
            children: (children, 0),
            started,
        }
    }

    #[test]
    fn stat_line_with_a_nasty_command_name() {
        let text = "4242 (my (evil) srv) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 30 12 20 0 3 0 777 1 1";
        let s = parse_stat(text).unwrap();
        assert_eq!(
            s,
            StatLine {
                ppid: 1,
                zombie: false,
                own: (250, 75),
                children: (30, 12),
                started: 777
            }
        );
        assert!(
            parse_stat("9 (z) Z 1 0 0 0 -1 0 0 0 0 0 1 2 3 4 20 0 1 0 5 0 0")
                .unwrap()
                .zombie
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 0"), None);
    }

    #[test]
    fn kb_fields() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\n";
        assert_eq!(kb_field(status, "VmRSS"), Some(1234));
        assert_eq!(kb_field(status, "VmSwap"), None);
        assert_eq!(
            kb_field("Rss:  10 kB\nPss:  7 kB\nPss_Anon: 3 kB\n", "Pss"),
            Some(7)
        );
    }

    /// The cases of the module docs, on made-up scans: root 10 (a forking
    /// server), sessions 20 and 30, 20's helper 21.
    #[test]
    fn exited_members_are_counted_once() {
        let mut t = Tree::new(10);
        let scan = |v: &[(u32, StatLine)]| v.iter().copied().collect::<HashMap<_, _>>();
        let other = (1, st(0, 1_000, 0, 1));
        let r = t.update(&scan(&[
            other,
            (10, st(1, 5, 0, 2)),
            (20, st(10, 7, 0, 3)),
            (21, st(20, 4, 0, 4)),
        ]));
        assert_eq!((r.processes, r.ticks.0), (3, 16), "init is not in the tree");

        // 21 exits and 20 reaps it: 20's cutime takes it in; no double count.
        let r = t.update(&scan(&[other, (10, st(1, 5, 0, 2)), (20, st(10, 8, 5, 3))]));
        assert_eq!(r.ticks.0, 5 + 8 + 5);
        // 20 exits too and the root reaps it (with 21 inside its cutime).
        let r = t.update(&scan(&[other, (10, st(1, 5, 13, 2))]));
        assert_eq!(r.ticks.0, 18);

        // 30 is reparented to init while the root lives on: still a member.
        let r = t.update(&scan(&[other, (10, st(1, 5, 13, 2)), (30, st(1, 9, 0, 6))]));
        assert_eq!(r.ticks.0, 18, "30 was never seen a child of the tree");
        let mut t2 = Tree::new(10);
        t2.update(&scan(&[(10, st(1, 5, 0, 2)), (30, st(10, 2, 0, 6))]));
        let r = t2.update(&scan(&[(10, st(1, 5, 0, 2)), (30, st(1, 9, 0, 6))]));
        assert_eq!(
            (r.processes, r.ticks.0),
            (2, 14),
            "a reparented member stays in"
        );
        // ... and init reaps it: its last-seen time is kept.
        let r = t2.update(&scan(&[(10, st(1, 5, 0, 2))]));
        assert_eq!(r.ticks.0, 14);

        // A session and its helper both gone between two scans, the helper
        // reaped by the session and the session by the root: once.
        let mut t3 = Tree::new(10);
        t3.update(&scan(&[
            (10, st(1, 5, 0, 2)),
            (20, st(10, 7, 0, 3)),
            (21, st(20, 4, 0, 4)),
        ]));
        let r = t3.update(&scan(&[(10, st(1, 5, 8 + 5, 2))]));
        assert_eq!(r.ticks.0, 5 + 13);

        // A pid reused by an unrelated process is not the member.
        let r = t2.update(&scan(&[(10, st(1, 5, 0, 2)), (30, st(1, 100, 0, 99))]));
        assert_eq!(r.ticks.0, 14);
    }

    #[test]
    fn samples_this_process_and_its_children() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"])
            .spawn()
            .unwrap();
        let sampler = Sampler::start(std::process::id()).unwrap();
        child.wait().unwrap();
        let s = sampler.finish();
        assert!(s.peak_processes >= 2, "{s:?}");
        assert!(s.peak_rss_bytes > 0);
        // The shell's loop ran and was reaped by this process: counted.
        assert!(s.cpu_us.0 + s.cpu_us.1 > 0, "{s:?}");
        assert!(Sampler::start(u32::MAX - 1).is_err());
    }
}
