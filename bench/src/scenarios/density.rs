//! N idle containers running at once: memory per container (PSS of all their processes and of
//! every shim, each counted once, over N; and the drop in MemAvailable), and how many processes
//! and threads each one costs.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use wasmbox_integration::poll::wait_until;
use wasmbox_integration::process::ProcInfo;
use wasmbox_integration::{cgroups, ids, Containerd};

use crate::procfs;
use crate::runner::parallel;
use crate::subjects::Subject;

/// ctr processes starting (or deleting) containers at once; more only queue on 2 cores.
const WORKERS: usize = 4;
/// Until the last of N detached starts shows RUNNING.
const RUNNING_TIMEOUT: Duration = Duration::from_secs(300);
/// Until the shims of deleted containers have exited.
const SHIMS_GONE_TIMEOUT: Duration = Duration::from_secs(60);

/// One round: N containers of one subject.
#[derive(Debug, Clone, Serialize)]
pub struct DensityRun {
    pub subject: String,
    pub n: usize,
    pub round: usize,
    /// PSS of the N containers' processes and of every shim (each once), divided by N, KiB.
    pub pss_kib_per_container: f64,
    pub shim_pss_kib_per_container: f64,
    pub container_pss_kib_per_container: f64,
    /// The anonymous part of the PSS: what each further container adds however many run.
    pub anon_pss_kib_per_container: f64,
    /// (MemAvailable before starting - MemAvailable with all N running) / N, KiB.
    pub mem_available_drop_kib_per_container: f64,
    pub processes_per_container: f64,
    pub threads_per_container: f64,
    /// Wall time to start all N (WORKERS at a time) until all were RUNNING.
    pub start_all_s: f64,
}

/// The processes of one container and its shim, with their threads' names.
#[derive(Debug, Clone, Serialize)]
pub struct Anatomy {
    pub subject: String,
    pub processes: Vec<ProcessAnatomy>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProcessAnatomy {
    /// "shim" or "container".
    pub role: String,
    pub pid: i32,
    pub comm: String,
    pub pss: procfs::Pss,
    pub threads: Vec<String>,
}

/// What one container costs, as seen in /proc.
struct Members {
    shim: Vec<i32>,
    container: Vec<i32>,
}

/// Starts `n` containers of `subject`, measures, and deletes them again (also on failure).
pub fn measure(
    containerd: &Containerd,
    subject: &Subject,
    n: usize,
    round: usize,
    settle: Duration,
) -> Result<(DensityRun, Anatomy)> {
    wait_shims_gone(containerd, SHIMS_GONE_TIMEOUT)?;
    // Memory freed by the previous round's exits is returned lazily (RCU, per-cpu caches).
    std::thread::sleep(settle);
    let before = procfs::mem_available_kib()?;
    let ids: Vec<String> = (0..n)
        .map(|_| ids::container_id(&format!("{}-n{n}", subject.label)))
        .collect();
    let result = start_and_measure(containerd, subject, &ids, round, settle, before);
    let stopped = stop_all(containerd, &ids);
    let measured = result?;
    stopped?;
    Ok(measured)
}

fn start_and_measure(
    containerd: &Containerd,
    subject: &Subject,
    ids: &[String],
    round: usize,
    settle: Duration,
    before: u64,
) -> Result<(DensityRun, Anatomy)> {
    let n = ids.len();
    let started = Instant::now();
    parallel(ids, WORKERS, |id| {
        containerd.run_detached(&subject.spec(id))
    })?;
    wait_all_running(containerd, ids)?;
    let start_all_s = started.elapsed().as_secs_f64();
    // Let lazily started threads and first page faults happen before reading memory.
    std::thread::sleep(settle);
    let after = procfs::mem_available_kib()?;

    // Shims may serve several containers each (wasmbox shares them): count every shim of
    // this containerd (and its descendants outside the containers, such as a zygote) once,
    // with the containers' own processes, and divide by N.
    let shims = containerd.shim_processes();
    let children = procfs::children_by_parent();
    let mut containers = Vec::new();
    for id in ids {
        containers.push(container_processes(containerd, &shims, id)?);
    }
    let in_containers: BTreeSet<i32> = containers.iter().flatten().copied().collect();
    let shim_side = procfs::shim_side(&shims, &children, &in_containers);
    let (shim_pss, mut ctr_pss) = (procfs::sum_pss(&shim_side)?, procfs::Pss::default());
    let (mut procs, mut threads) = (0usize, 0usize);
    for pids in &containers {
        ctr_pss = ctr_pss + procfs::sum_pss(pids)?;
    }
    for pid in shim_side.iter().chain(&in_containers) {
        procs += 1;
        threads += procfs::thread_names(*pid)?.len();
    }
    let first = containers.first().context("no containers")?;
    let own_shim = serving_shim(first, &shims, &children, &in_containers);
    let anatomy = describe(subject, &Members { shim: own_shim, container: first.clone() })?;
    let per = |v: f64| v / n as f64;
    let run = DensityRun {
        subject: subject.label.clone(),
        n,
        round,
        pss_kib_per_container: per((shim_pss.pss_kib + ctr_pss.pss_kib) as f64),
        shim_pss_kib_per_container: per(shim_pss.pss_kib as f64),
        container_pss_kib_per_container: per(ctr_pss.pss_kib as f64),
        anon_pss_kib_per_container: per((shim_pss.anon_kib + ctr_pss.anon_kib) as f64),
        mem_available_drop_kib_per_container: per(before as f64 - after as f64),
        processes_per_container: per(procs as f64),
        threads_per_container: per(threads as f64),
        start_all_s,
    };
    Ok((run, anatomy))
}

/// The processes in container `id`'s cgroups (never a shim).
fn container_processes(containerd: &Containerd, shims: &[ProcInfo], id: &str) -> Result<Vec<i32>> {
    let shim_pids: Vec<i32> = shims.iter().map(|p| p.pid).collect();
    // cgroup v1 lists the same processes in every hierarchy; v2 has one directory.
    let container: BTreeSet<i32> = cgroups::existing(containerd.namespace(), id)
        .iter()
        .flat_map(|d| procfs::cgroup_procs(d))
        .filter(|p| !shim_pids.contains(p))
        .collect();
    if container.is_empty() {
        bail!("container {id}: no process in its cgroups");
    }
    Ok(container.into_iter().collect())
}

/// The shim-side processes of the shim that is the parent of one of `container`'s processes.
fn serving_shim(container: &[i32], shims: &[ProcInfo], children: &HashMap<i32, Vec<i32>>, in_containers: &BTreeSet<i32>) -> Vec<i32> {
    let shim = shims.iter().find(|s| {
        children.get(&s.pid).is_some_and(|kids| kids.iter().any(|k| container.contains(k)))
    });
    shim.map(|s| procfs::shim_side(std::slice::from_ref(s), children, in_containers)).unwrap_or_default()
}

fn describe(subject: &Subject, m: &Members) -> Result<Anatomy> {
    let mut processes = Vec::new();
    for (role, pids) in [("shim", &m.shim), ("container", &m.container)] {
        for pid in pids {
            processes.push(ProcessAnatomy {
                role: role.to_string(),
                pid: *pid,
                comm: procfs::comm(*pid),
                pss: procfs::pss(*pid)?,
                threads: procfs::thread_names(*pid)?,
            });
        }
    }
    Ok(Anatomy {
        subject: subject.label.clone(),
        processes,
    })
}

fn wait_all_running(containerd: &Containerd, ids: &[String]) -> Result<()> {
    let mut missing = Vec::new();
    let ready = wait_until("all idle containers to be RUNNING", RUNNING_TIMEOUT, || {
        let tasks = containerd.tasks().ok()?;
        missing = ids
            .iter()
            .filter(|id| {
                !tasks
                    .iter()
                    .any(|t| &t.id == *id && t.status == "RUNNING" && t.pid > 0)
            })
            .cloned()
            .collect();
        missing.is_empty().then_some(())
    });
    ready.with_context(|| format!("not running: {missing:?}"))
}

/// Deletes every container (task first, by force); keeps going past errors, returns the first.
fn stop_all(containerd: &Containerd, ids: &[String]) -> Result<()> {
    let deleted = parallel(ids, WORKERS, |id| {
        let _ = containerd.ctr(["task", "delete", "--force", id.as_str()]);
        containerd
            .ctr_ok(["container", "delete", id.as_str()])
            .map(drop)
    });
    let gone = wait_shims_gone(containerd, SHIMS_GONE_TIMEOUT);
    deleted.and(gone)
}

/// Each round starts from a containerd that serves no container (or pod), so rounds do not
/// share pages.
pub fn wait_shims_gone(containerd: &Containerd, timeout: Duration) -> Result<()> {
    let mut left = 0;
    wait_until(
        "the shims of the fixture to exit",
        timeout,
        || {
            left = containerd.shim_processes().len();
            (left == 0).then_some(())
        },
    )
    .with_context(|| format!("{left} shims still running"))
}
