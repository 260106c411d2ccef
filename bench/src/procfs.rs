//! What the kernel says about processes and memory: PSS, threads, MemAvailable, load average.

use std::path::Path;

use anyhow::{Context, Result};

/// The value in kB of the line `field` (e.g. `Pss:`) in a /proc key-value file.
pub fn kib_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Proportional set size of a process in KiB (/proc/PID/smaps_rollup): its private pages plus
/// its share of every page mapped by several processes, so summing PSS never counts a page
/// twice. Split into anonymous memory (heaps, stacks, relocated data) and file pages (code).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pss {
    pub pss_kib: u64,
    pub anon_kib: u64,
    pub file_kib: u64,
}

impl std::ops::Add for Pss {
    type Output = Pss;
    fn add(self, o: Pss) -> Pss {
        Pss {
            pss_kib: self.pss_kib + o.pss_kib,
            anon_kib: self.anon_kib + o.anon_kib,
            file_kib: self.file_kib + o.file_kib,
        }
    }
}

pub fn pss(pid: i32) -> Result<Pss> {
    let path = format!("/proc/{pid}/smaps_rollup");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_rollup(&text).with_context(|| format!("no Pss lines in {path}"))
}

fn parse_rollup(text: &str) -> Option<Pss> {
    Some(Pss {
        pss_kib: kib_field(text, "Pss:")?,
        anon_kib: kib_field(text, "Pss_Anon:")?,
        file_kib: kib_field(text, "Pss_File:")?,
    })
}

/// The PSS of `pids` together.
pub fn sum_pss(pids: &[i32]) -> Result<Pss> {
    pids.iter().try_fold(Pss::default(), |acc, p| Ok(acc + pss(*p)?))
}

pub use wasmbox_integration::process::{children_by_parent, comm};

/// The shims and every descendant of theirs outside the containers (a zygote or helper,
/// should one still be there): what the containers keep alive beside their own processes.
pub fn shim_side(
    shims: &[wasmbox_integration::process::ProcInfo],
    children: &std::collections::HashMap<i32, Vec<i32>>,
    containers: &std::collections::BTreeSet<i32>,
) -> Vec<i32> {
    let mut side = Vec::new();
    let mut todo: Vec<i32> = shims.iter().map(|p| p.pid).collect();
    while let Some(pid) = todo.pop() {
        if containers.contains(&pid) || side.contains(&pid) {
            continue;
        }
        side.push(pid);
        todo.extend(children.get(&pid).into_iter().flatten());
    }
    side
}

/// The names (`comm`) of every thread of `pid`, the main thread first; an error once it is gone.
pub fn thread_names(pid: i32) -> Result<Vec<String>> {
    let names = wasmbox_integration::process::thread_names(pid);
    if names.is_empty() {
        anyhow::bail!("process {pid} is gone (no /proc/{pid}/task)");
    }
    Ok(names)
}

/// MemAvailable from /proc/meminfo, in KiB.
pub fn mem_available_kib() -> Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    kib_field(&text, "MemAvailable:").context("no MemAvailable in /proc/meminfo")
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> Result<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").context("reading /proc/loadavg")?;
    parse_loadavg(&text).context("unexpected /proc/loadavg format")
}

fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// The pids listed in a cgroup directory's `cgroup.procs` (empty if it is gone).
pub fn cgroup_procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// First line of /proc/cpuinfo's "model name", for the record.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kib_fields() {
        let text = "Rss:                2048 kB\nPss:                1234 kB\nPss_Anon:   10 kB\n";
        assert_eq!(kib_field(text, "Pss:"), Some(1234));
        assert_eq!(kib_field(text, "Pss_Anon:"), Some(10));
        assert_eq!(kib_field(text, "Swap:"), None);
    }

    #[test]
    fn parses_rollup() {
        let text = "Rss: 9 kB\nPss: 7 kB\nPss_Anon: 2 kB\nPss_File: 5 kB\nPss_Shmem: 0 kB\n";
        let p = parse_rollup(text).unwrap();
        assert_eq!((p.pss_kib, p.anon_kib, p.file_kib), (7, 2, 5));
        assert_eq!((p + p).pss_kib, 14);
        assert!(parse_rollup("Pss: 1 kB\n").is_none());
    }

    #[test]
    fn parses_loadavg() {
        assert_eq!(
            parse_loadavg("0.12 0.34 1.50 1/234 5678\n"),
            Some([0.12, 0.34, 1.5])
        );
        assert_eq!(parse_loadavg("x"), None);
    }

    #[test]
    fn sees_own_pss_and_threads() {
        let me = std::process::id() as i32;
        assert!(pss(me).unwrap().pss_kib > 0);
        assert!(!thread_names(me).unwrap().is_empty());
        assert!(mem_available_kib().unwrap() > 0);
    }
}
