//! CPU time and memory of the server under test (`--server-pid`), read from
//! /proc, for the whole process tree.
//!
//! Forking servers (vsftpd, ProFTPD) spend most of their CPU in per-session
//! children, so the figure is summed over the tree rooted at the pid: for
//! every live process `utime + stime` (fields 14–15 of /proc/PID/stat) plus
//! `cutime + cstime` (16–17), the CPU of its children that have exited and
//! been reaped. A process is either alive (counted itself) or reaped
//! (counted in its parent's `c*time`), so nothing is counted twice.
//!
//! Memory is the sum of `VmRSS` over the tree; for forking servers that
//! counts shared pages once per process, so the sum of `Pss` (from
//! smaps_rollup, shared pages split between sharers) is reported beside it.
//!
//! A sampler thread reads the tree once a second during the run and once at
//! the end; the report gives the start, the peak and the end.

use std::collections::HashMap;
use std::fs;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use anyhow::Context;

use crate::engine::sys;

/// One reading of the tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub processes: usize,
    pub user_us: u64,
    pub sys_us: u64,
    pub rss_bytes: u64,
    /// None where smaps_rollup cannot be read (another user's process).
    pub pss_bytes: Option<u64>,
}

/// The fields of /proc/PID/stat this module uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatLine {
    pub ppid: u32,
    /// utime + cutime, in clock ticks.
    pub user_ticks: u64,
    /// stime + cstime, in clock ticks.
    pub sys_ticks: u64,
}

/// Parses the text of /proc/PID/stat. The command name (field 2) is in
/// parentheses and may itself contain spaces and parentheses, so fields are
/// counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<StatLine> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); field n is f[n - 3].
    let num = |field: usize| f.get(field - 3)?.parse::<u64>().ok();
    Some(StatLine {
        ppid: num(4)? as u32,
        user_ticks: num(14)? + num(16)?,
        sys_ticks: num(15)? + num(17)?,
    })
}

/// The value in kB of a `Key:   123 kB` line of a /proc status-like file.
pub fn kb_field(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The pids of `root` and all its descendants.
fn tree(root: u32) -> anyhow::Result<Vec<(u32, StatLine)>> {
    let mut all: HashMap<u32, StatLine> = HashMap::new();
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
    let root_stat = *all
        .get(&root)
        .with_context(|| format!("--server-pid {root}: no such process"))?;
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, st) in &all {
        children.entry(st.ppid).or_default().push(pid);
    }
    let mut out = vec![(root, root_stat)];
    let mut i = 0;
    while i < out.len() {
        for &c in children.get(&out[i].0).map(Vec::as_slice).unwrap_or(&[]) {
            out.push((c, all[&c]));
        }
        i += 1;
    }
    Ok(out)
}

/// Reads the tree rooted at `pid` now.
pub fn sample(pid: u32) -> anyhow::Result<Sample> {
    let tick_us = 1_000_000 / sys::clock_ticks_per_second().max(1);
    let mut s = Sample {
        pss_bytes: Some(0),
        ..Sample::default()
    };
    for (p, st) in tree(pid)? {
        s.processes += 1;
        s.user_us += st.user_ticks * tick_us;
        s.sys_us += st.sys_ticks * tick_us;
        if let Ok(status) = fs::read_to_string(format!("/proc/{p}/status")) {
            s.rss_bytes += kb_field(&status, "VmRSS").unwrap_or(0) * 1024;
        }
        let pss = fs::read_to_string(format!("/proc/{p}/smaps_rollup"))
            .ok()
            .and_then(|t| kb_field(&t, "Pss"));
        s.pss_bytes = match (s.pss_bytes, pss) {
            (Some(total), Some(kb)) => Some(total + kb * 1024),
            _ => None,
        };
    }
    Ok(s)
}

/// Start, peak and end of a run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub start: Sample,
    pub end: Sample,
    pub peak_rss_bytes: u64,
    pub peak_pss_bytes: Option<u64>,
    pub peak_processes: usize,
}

/// Samples the tree in the background until [`Sampler::finish`].
pub struct Sampler {
    pid: u32,
    stop: Arc<AtomicBool>,
    summary: Arc<Mutex<Summary>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Sampler {
    /// Takes the baseline sample (failing if the pid is not there) and
    /// starts sampling once a second.
    pub fn start(pid: u32) -> anyhow::Result<Sampler> {
        let first = sample(pid)?;
        let summary = Arc::new(Mutex::new(Summary {
            start: first,
            end: first,
            peak_rss_bytes: first.rss_bytes,
            peak_pss_bytes: first.pss_bytes,
            peak_processes: first.processes,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (stop, summary) = (stop.clone(), summary.clone());
            thread::Builder::new()
                .name("loadgen-procstat".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        thread::sleep(Duration::from_secs(1));
                        if let Ok(s) = sample(pid) {
                            summary.lock().unwrap().add(s);
                        }
                    }
                })?
        };
        Ok(Sampler {
            pid,
            stop,
            summary,
            thread: Some(thread),
        })
    }

    /// Takes the last sample and returns the summary.
    pub fn finish(mut self) -> Summary {
        self.stop.store(true, Ordering::Relaxed);
        let mut summary = *self.summary.lock().unwrap();
        if let Ok(s) = sample(self.pid) {
            summary.add(s);
        }
        // The thread wakes within a second; there is no need to wait for it.
        drop(self.thread.take());
        summary
    }
}

impl Summary {
    fn add(&mut self, s: Sample) {
        self.end = s;
        self.peak_rss_bytes = self.peak_rss_bytes.max(s.rss_bytes);
        self.peak_processes = self.peak_processes.max(s.processes);
        self.peak_pss_bytes = match (self.peak_pss_bytes, s.pss_bytes) {
            (Some(a), Some(b)) => Some(a.max(b)),
            _ => None,
        };
    }

    /// CPU the tree used between the first and the last sample, in µs.
    pub fn cpu_us(&self) -> (u64, u64) {
        (
            self.end.user_us.saturating_sub(self.start.user_us),
            self.end.sys_us.saturating_sub(self.start.sys_us),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_a_nasty_command_name() {
        let text =
            "4242 (my (evil) srv) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 30 12 20 0 3 0 1 1 1";
        let st = parse_stat(text).unwrap();
        assert_eq!(
            st,
            StatLine {
                ppid: 1,
                user_ticks: 250 + 30,
                sys_ticks: 75 + 12
            }
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

    #[test]
    fn samples_this_process_and_its_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let s = sample(std::process::id()).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(s.processes >= 2, "{s:?}");
        assert!(s.rss_bytes > 0);
        assert!(sample(u32::MAX - 1).is_err());
    }
}
