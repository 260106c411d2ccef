//! N idle pods through containerd's CRI, as kubelet runs them (RunPodSandbox with the pause
//! image and a CNI network, CreateContainer, StartContainer): what the pods cost together
//! (shims with their helpers, pause, container inits: PSS, processes, threads, over N), how long
//! all N take to come up, and how long to remove them (StopPodSandbox, RemovePodSandbox, until
//! every shim has exited).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use serde::Serialize;
use wasmbox_integration::cri::{self, Cri, Pod};
use wasmbox_integration::{cgroups, Containerd};

use crate::procfs;
use crate::runner::parallel;
use crate::scenarios::density::wait_shims_gone;

/// CRI calls at once, as kubelet's pod workers would issue them; more only queue on 2 cores.
const WORKERS: usize = 4;
/// Until the previous round's shims have exited.
const SHIMS_GONE_TIMEOUT: Duration = Duration::from_secs(120);

/// The subjects' labels, as the JSON and the comparisons name them.
pub const WASM_LABEL: &str = "pod-wasm";
pub const RUNC_LABEL: &str = "pod-runc";

/// One runtime handler and the idle image it runs in each pod.
#[derive(Debug, Clone)]
pub struct PodSubject {
    /// Short name for tables and the JSON (`pod-wasm`, `pod-runc`).
    pub label: String,
    /// The CRI runtime handler (a RuntimeClass's handler).
    pub handler: &'static str,
    /// The image in CRI's namespace.
    pub image: String,
}

/// One round: N pods of one subject.
#[derive(Debug, Clone, Serialize)]
pub struct PodsRun {
    pub subject: String,
    pub n: usize,
    pub round: usize,
    /// PSS of every process the pods add (shims and their helpers, each once; pause; the
    /// containers' processes), divided by N, KiB.
    pub pss_kib_per_pod: f64,
    pub shim_pss_kib_per_pod: f64,
    pub pod_pss_kib_per_pod: f64,
    pub anon_pss_kib_per_pod: f64,
    pub processes_per_pod: f64,
    pub threads_per_pod: f64,
    /// From the first RunPodSandbox until the last StartContainer returned (WORKERS at a time).
    pub up_s: f64,
    /// From the first StopPodSandbox until every RemovePodSandbox returned and every shim exited.
    pub down_s: f64,
}

/// Brings up `n` pods of `subject`, measures them, removes them (timed), and on any failure
/// removes what is left (each [`Pod`] does so when dropped).
pub fn measure(containerd: &Containerd, cri: &Cri, subject: &PodSubject, n: usize, round: usize, settle: Duration) -> Result<PodsRun> {
    wait_shims_gone(containerd, SHIMS_GONE_TIMEOUT)?;
    std::thread::sleep(settle);
    let pods = Mutex::new(Vec::with_capacity(n));
    let started = Instant::now();
    parallel(&vec![(); n], WORKERS, |_| {
        let pod = run_pod(containerd, cri, subject)?;
        pods.lock().map_err(|_| anyhow!("a worker panicked"))?.push(pod);
        Ok(())
    })?;
    let up_s = started.elapsed().as_secs_f64();
    let mut pods = pods.into_inner().map_err(|_| anyhow!("a worker panicked"))?;
    // Let lazily started threads and first page faults happen before reading memory.
    std::thread::sleep(settle);
    let mut run = count(containerd, cri, subject, &pods, round)?;
    run.up_s = up_s;

    let removed = Instant::now();
    let each: Vec<Mutex<&mut Pod>> = pods.iter_mut().map(Mutex::new).collect();
    parallel(&each, WORKERS, |pod| pod.lock().map_err(|_| anyhow!("a worker panicked"))?.stop_and_remove())?;
    wait_shims_gone(containerd, SHIMS_GONE_TIMEOUT)?;
    run.down_s = removed.elapsed().as_secs_f64();
    Ok(run)
}

/// A pod with one idle container, started.
fn run_pod<'a>(containerd: &'a Containerd, cri: &'a Cri, subject: &PodSubject) -> Result<Pod<'a>> {
    let mut pod = Pod::run_in_pod_network(cri, containerd, &subject.label, subject.handler, &[])?;
    let mut config = cri::container_config("idle", &subject.image);
    cri::in_pod_network(&mut config);
    let id = pod.create_container(&config)?;
    cri.start_container(&id)?;
    Ok(pod)
}

/// PSS, processes and threads of the pods' processes and of every shim of the fixture (with
/// the shims' descendants outside the pods, such as wasmbox's zygote), over N.
fn count(containerd: &Containerd, cri: &Cri, subject: &PodSubject, pods: &[Pod], round: usize) -> Result<PodsRun> {
    let mut in_pods = BTreeSet::new();
    for pod in pods {
        for id in std::iter::once(&pod.id).chain(&pod.containers) {
            let status = (id != &pod.id).then(|| cri.container_status(id)).transpose()?;
            if let Some(s) = status {
                if s.state != cri::api::ContainerState::ContainerRunning as i32 {
                    anyhow::bail!("container {id} of pod {} is not running: {s:?}", pod.id);
                }
            }
            // cgroup v1 lists the same processes in every hierarchy; v2 has one directory.
            for dir in cgroups::existing_at(&pod.cgroup_path(id)) {
                in_pods.extend(procfs::cgroup_procs(&dir));
            }
        }
    }
    let shims = containerd.shim_processes();
    in_pods.retain(|p| !shims.iter().any(|s| s.pid == *p));
    let shim_side = procfs::shim_side(&shims, &procfs::children_by_parent(), &in_pods);
    let shim_pss = procfs::sum_pss(&shim_side)?;
    let pod_pss = procfs::sum_pss(&in_pods.iter().copied().collect::<Vec<_>>())?;
    let threads = shim_side
        .iter()
        .chain(&in_pods)
        .map(|p| procfs::thread_names(*p).map(|t| t.len()))
        .sum::<Result<usize>>()?;
    let per = |v: f64| v / pods.len() as f64;
    Ok(PodsRun {
        subject: subject.label.clone(),
        n: pods.len(),
        round,
        pss_kib_per_pod: per((shim_pss.pss_kib + pod_pss.pss_kib) as f64),
        shim_pss_kib_per_pod: per(shim_pss.pss_kib as f64),
        pod_pss_kib_per_pod: per(pod_pss.pss_kib as f64),
        anon_pss_kib_per_pod: per((shim_pss.anon_kib + pod_pss.anon_kib) as f64),
        processes_per_pod: per((shim_side.len() + in_pods.len()) as f64),
        threads_per_pod: per(threads as f64),
        up_s: 0.0,
        down_s: 0.0,
    })
}
