//! Everything one bench run measured, as written to the JSON file, and the comparisons the
//! table and the chart show.

use serde::Serialize;

use crate::load::LoadWait;
use crate::phases::Phases;
use crate::scenarios::density::{Anatomy, DensityRun};
use crate::scenarios::pods::PodsRun;
use crate::scenarios::serving::Serving;
use crate::stats::{Series, Summary};

#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub meta: Meta,
    pub cold_start: CompareSeries,
    /// One per large program (yosys, CPython).
    pub large: Vec<Large>,
    pub concurrent: Concurrent,
    pub density: Vec<DensityRun>,
    pub anatomy: Vec<Anatomy>,
    pub phases: Vec<Phases>,
    pub serving: Option<Serving>,
    /// The HTTP component (wasi:http/proxy) against `wasmtime serve` and the native C server.
    pub http_serving: Option<Serving>,
    /// The WASI 0.3 handler (wasi:http/service) against `wasmtime serve` and the native server.
    pub http_p3_serving: Option<Serving>,
    /// Idle HTTP servers: the component under wasmbox, the native C server under runc.
    pub http_idle: Vec<DensityRun>,
    /// Idle pods through CRI: wasm pods (`pod-wasm`) against runc pods (`pod-runc`).
    pub pods: Vec<PodsRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Meta {
    pub command: String,
    pub unix_time: u64,
    pub kernel: String,
    pub cpu: String,
    pub cores: usize,
    pub containerd: String,
    pub runc: String,
    pub shim_source: String,
    pub load: LoadWait,
    pub load_at_end: [f64; 3],
    pub runs: usize,
}

/// A wasm subject and its runc baseline, measured interleaved.
#[derive(Debug, Clone, Serialize)]
pub struct CompareSeries {
    pub wasm: Series,
    pub runc: Series,
}

#[derive(Debug, Clone, Serialize)]
pub struct Large {
    pub program: String,
    /// Short name (`yosys`, `python`).
    pub label: String,
    pub wasm_bytes: usize,
    pub sha256: String,
    pub args: Vec<String>,
    /// Empty compile cache before each run.
    pub first: Series,
    /// Empty compile cache, then `precompile IMAGE` (what the node's watcher does when the
    /// image is pulled), then the first start.
    pub after_pull: Series,
    /// How long each of those pull-time compiles took (s).
    pub pull_compile: Series,
    /// Cache warm; interleaved with the hello runs of `cold_start`.
    pub later: Series,
}

#[derive(Debug, Clone, Serialize)]
pub struct Concurrent {
    pub n: usize,
    pub starts: CompareSeries,
}

/// One line of the comparison: a figure, its baseline and the target on their ratio.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub figure: String,
    /// A few words for the chart's ratio panel.
    pub short: String,
    pub unit: &'static str,
    pub value: Summary,
    pub baseline_name: String,
    pub baseline: Option<Summary>,
    /// The ratio value/baseline must be at most this (at least, with `at_least`).
    pub target: Option<f64>,
    /// For figures where more is better (requests per second).
    pub at_least: bool,
}

impl Comparison {
    pub fn ratio(&self) -> Option<f64> {
        self.baseline.map(|b| self.value.ratio_to(&b))
    }

    pub fn passes(&self) -> Option<bool> {
        let (ratio, target) = (self.ratio()?, self.target?);
        Some(if self.at_least {
            crate::stats::meets_at_least(ratio, target)
        } else {
            crate::stats::meets(ratio, target)
        })
    }
}

pub const KIB_PER_MIB: f64 = 1024.0;

impl Results {
    /// Subject labels of the density runs, wasm first, in the order measured.
    pub fn density_subjects(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.density {
            if !out.contains(&r.subject) {
                out.push(r.subject.clone());
            }
        }
        out
    }

    pub fn densities(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self.density.iter().map(|r| r.n).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// `f` of every round of `subject` at density `n`, as a series.
    pub fn density_series(
        &self,
        subject: &str,
        n: usize,
        unit: &'static str,
        f: impl Fn(&DensityRun) -> f64,
    ) -> Series {
        let samples = self
            .density
            .iter()
            .filter(|r| r.subject == subject && r.n == n)
            .map(f)
            .collect();
        Series::new(unit, samples)
    }

    /// Every comparison of the targets and the informational ones, in table order.
    pub fn comparisons(&self) -> Vec<Comparison> {
        let mut rows = vec![Comparison {
            figure: "cold start: ctr run --rm hello".into(),
            short: "cold start".into(),
            unit: "ms",
            value: self.cold_start.wasm.summary,
            baseline_name: "runc static hello".into(),
            baseline: Some(self.cold_start.runc.summary),
            target: Some(0.75),
            at_least: false,
        }];
        for l in &self.large {
            rows.push(Comparison {
                figure: format!("{}: later start (cache warm)", l.program),
                short: format!("{}: later vs hello", l.label),
                unit: "ms",
                value: l.later.summary,
                baseline_name: "wasm hello".into(),
                baseline: Some(self.cold_start.wasm.summary),
                target: Some(1.5),
                at_least: false,
            });
            rows.push(Comparison {
                figure: format!("{}: first start (cache empty)", l.program),
                short: format!("{}: first vs later", l.label),
                unit: "ms",
                value: l.first.summary,
                baseline_name: "its later start".into(),
                baseline: Some(l.later.summary),
                target: Some(10.0),
                at_least: false,
            });
            rows.push(Comparison {
                figure: format!(
                    "{}: first start after pull-time compile ({} s)",
                    l.program,
                    crate::report::num(l.pull_compile.summary.median)
                ),
                short: format!("{}: first after pull vs later", l.label),
                unit: "ms",
                value: l.after_pull.summary,
                baseline_name: "its later start".into(),
                baseline: Some(l.later.summary),
                target: Some(10.0),
                at_least: false,
            });
        }
        rows.push(Comparison {
            figure: format!("{} concurrent starts, total wall", self.concurrent.n),
            short: format!("{} concurrent starts", self.concurrent.n),
            unit: "s",
            value: self.concurrent.starts.wasm.summary,
            baseline_name: "runc".into(),
            baseline: Some(self.concurrent.starts.runc.summary),
            target: Some(0.75),
            at_least: false,
        });
        // (figure, short name, wasm subject, [(baseline subject, its name, req/s target,
        // p99 target)]): req/s at least the target, p99 at most.
        let native = "native C server, runc";
        let serving: [(Option<&crate::scenarios::serving::Serving>, &str, &str, &str, Vec<(&str, &str, Option<f64>, Option<f64>)>); 3] = [
            (self.serving.as_ref(), "serving", "p1/server-wasm", "preview 1 server", vec![("p1/server-runc", native, Some(0.5), None)]),
            (
                self.http_serving.as_ref(),
                "HTTP component",
                "http/http-wasm",
                "wasi:http hello",
                vec![("http/http-wasmtime", "wasmtime serve, runc", Some(1.0), Some(1.2)), ("http/server-runc", native, None, None)],
            ),
            (
                self.http_p3_serving.as_ref(),
                "0.3 handler",
                "http3/http-p3-wasm",
                "WASI 0.3 hello handler",
                vec![("http3/http-p3-wasmtime", "wasmtime serve, runc", Some(1.0), Some(1.0)), ("http3/server-runc", native, None, None)],
            ),
        ];
        for (sv, short, wasm, what, baselines) in serving {
            let Some(sv) = sv else { continue };
            let series = |subject: &str, f: &dyn Fn(&crate::scenarios::serving::ServingRun) -> f64| {
                let samples: Vec<f64> = sv.runs.iter().filter(|r| r.subject == subject).map(f).collect();
                (!samples.is_empty()).then(|| crate::stats::Series::new("", samples).summary)
            };
            let Some(value_rps) = series(wasm, &|r| r.requests_per_s) else { continue };
            let Some(value_p99) = series(wasm, &|r| r.p99_ms) else { continue };
            for (baseline, name, rps_target, p99_target) in baselines {
                let (Some(rps), Some(p99)) = (series(baseline, &|r| r.requests_per_s), series(baseline, &|r| r.p99_ms)) else {
                    continue;
                };
                let vs = if name == native { String::new() } else { format!(" vs {}", name.split(',').next().unwrap_or(name)) };
                rows.push(Comparison {
                    figure: format!("{what}: requests/s, {} keep-alive clients", sv.clients),
                    short: format!("{short} req/s{vs}"),
                    unit: "req/s",
                    value: value_rps,
                    baseline_name: name.into(),
                    baseline: Some(rps),
                    target: rps_target,
                    at_least: true,
                });
                rows.push(Comparison {
                    figure: format!("{what}: p99 latency"),
                    short: format!("{short} p99{vs}"),
                    unit: "ms",
                    value: value_p99,
                    baseline_name: name.into(),
                    baseline: Some(p99),
                    target: p99_target,
                    at_least: false,
                });
            }
        }
        if !self.http_idle.is_empty() {
            let pss = |subject: &str| {
                let samples = self.http_idle.iter().filter(|r| r.subject == subject).map(|r| r.pss_kib_per_container / KIB_PER_MIB).collect();
                Series::new("MiB", samples).summary
            };
            let n = self.http_idle[0].n;
            rows.push(Comparison {
                figure: format!("PSS per idle HTTP server, N={n}"),
                short: "HTTP idle PSS".into(),
                unit: "MiB",
                value: pss("http-wasm"),
                baseline_name: "native C server, runc".into(),
                baseline: Some(pss("http-native")),
                target: Some(1.5),
                at_least: false,
            });
        }
        rows.extend(self.pod_comparisons());
        let subjects = self.density_subjects();
        if let [wasm, runc, ..] = subjects.as_slice() {
            // (figure, short name, unit, value per run, target)
            type PerRun = fn(&DensityRun) -> f64;
            let figures: [(&str, &str, &'static str, PerRun, Option<f64>); 3] = [
                ("PSS per idle container", "PSS", "MiB", |r| r.pss_kib_per_container / KIB_PER_MIB, Some(0.8)),
                ("threads per idle container", "threads", "", |r| r.threads_per_container, Some(1.0)),
                (
                    "MemAvailable drop per container",
                    "MemAvailable",
                    "MiB",
                    |r| r.mem_available_drop_kib_per_container / KIB_PER_MIB,
                    None,
                ),
            ];
            for n in self.densities() {
                for (figure, short, unit, f, target) in figures {
                    rows.push(Comparison {
                        figure: format!("{figure}, N={n}"),
                        short: format!("{short} N={n}"),
                        unit,
                        value: self.density_series(wasm, n, unit, f).summary,
                        baseline_name: "runc".into(),
                        baseline: Some(self.density_series(runc, n, unit, f).summary),
                        target,
                        at_least: false,
                    });
                }
            }
        }
        rows
    }

    /// `f` of every round of pod subject `subject` with `n` pods, as a series.
    pub fn pod_series(&self, subject: &str, n: usize, unit: &'static str, f: impl Fn(&PodsRun) -> f64) -> Series {
        let samples = self.pods.iter().filter(|r| r.subject == subject && r.n == n).map(f).collect();
        Series::new(unit, samples)
    }

    /// The pod rows (issue 28's targets): PSS per idle pod at most 0.5x a runc pod, 20 pods up
    /// in at most 0.75x runc's time, removal no slower than runc's.
    fn pod_comparisons(&self) -> Vec<Comparison> {
        let (wasm, runc) = (crate::scenarios::pods::WASM_LABEL, crate::scenarios::pods::RUNC_LABEL);
        let mut ns: Vec<usize> = self.pods.iter().map(|r| r.n).collect();
        ns.sort_unstable();
        ns.dedup();
        type PerRun = fn(&PodsRun) -> f64;
        let mut rows = Vec::new();
        for n in ns {
            let up_target = (n == 20).then_some(0.75);
            let figures: [(&str, &str, &'static str, PerRun, Option<f64>); 5] = [
                ("PSS per idle pod", "pod PSS", "MiB", |r| r.pss_kib_per_pod / KIB_PER_MIB, Some(0.5)),
                ("processes per idle pod", "pod processes", "", |r| r.processes_per_pod, None),
                ("threads per idle pod", "pod threads", "", |r| r.threads_per_pod, None),
                ("pods up (RunPodSandbox to all started)", "pods up", "s", |r| r.up_s, up_target),
                ("pods removed (until every shim exited)", "pods removed", "s", |r| r.down_s, Some(1.0)),
            ];
            for (figure, short, unit, f, target) in figures {
                let value = self.pod_series(wasm, n, unit, f);
                let baseline = self.pod_series(runc, n, unit, f);
                if value.samples.is_empty() || baseline.samples.is_empty() {
                    continue;
                }
                rows.push(Comparison {
                    figure: format!("{figure}, N={n}"),
                    short: format!("{short} N={n}"),
                    unit,
                    value: value.summary,
                    baseline_name: "runc pods".into(),
                    baseline: Some(baseline.summary),
                    target,
                    at_least: false,
                });
            }
        }
        rows
    }
}
