//! Server cost from /proc: memory (RSS and PSS) and CPU time of a process and
//! all its descendants (nginx and php-fpm fork workers).

use std::collections::HashSet;
use std::fs;

/// Kernel clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
const TICKS: f64 = 100.0;

/// `pids` and every descendant of them, alive now.
pub(crate) fn tree(pids: &[u32]) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(ppid) = stat_fields(pid).and_then(|f| f.get(1).and_then(|s| s.parse().ok()))
            {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut set: HashSet<u32> = pids.iter().copied().collect();
    loop {
        let before = set.len();
        for &(pid, ppid) in &parent_of {
            if set.contains(&ppid) {
                set.insert(pid);
            }
        }
        if set.len() == before {
            break;
        }
    }
    let mut v: Vec<u32> = set.into_iter().collect();
    v.sort();
    v
}

/// Fields of /proc/PID/stat after the command name: [0] state, [1] ppid, …,
/// [11] utime, [12] stime.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

fn kib_field(path: &str, key: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(key)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .unwrap_or(0)
}

/// Memory of a process tree, KiB.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Mem {
    pub(crate) rss: u64,
    pub(crate) pss: u64,
    pub(crate) procs: usize,
}

pub(crate) fn mem(pids: &[u32]) -> Mem {
    let all = tree(pids);
    let mut m = Mem {
        procs: all.len(),
        ..Mem::default()
    };
    for pid in all {
        m.rss += kib_field(&format!("/proc/{pid}/status"), "VmRSS:");
        m.pss += kib_field(&format!("/proc/{pid}/smaps_rollup"), "Pss:");
    }
    m
}

/// CPU seconds (user + system) used so far by a process tree.
pub(crate) fn cpu_secs(pids: &[u32]) -> f64 {
    tree(pids)
        .into_iter()
        .filter_map(stat_fields)
        .map(|f| {
            let t = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
            (t(11) + t(12)) as f64 / TICKS
        })
        .sum()
}
