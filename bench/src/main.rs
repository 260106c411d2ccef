//! `make bench`: wasmbox against runc on one private containerd, in one session.
//!
//! Cold start of a tiny hello, starts of a large WASI program with an empty and a warm compile
//! cache, many concurrent starts, and the memory, processes and threads of idle containers.
//! Every figure is a median with min-max over interleaved runs and a ratio to its baseline
//! from the same session. Writes a Markdown table to stdout, and JSON and PNG files.

mod chart;
mod guests;
mod interrupt;
mod load;
mod meta;
mod options;
mod phases;
mod procfs;
mod report;
mod results;
mod runner;
mod scenarios;
mod stats;
mod subjects;

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use wasmbox_integration::settings::{self, WASMBOX_SHIM_BINARY};
use wasmbox_integration::{Containerd, FixtureOptions};

use crate::options::{Options, USAGE};
use crate::results::{CompareSeries, Concurrent, Large, Results};
use crate::scenarios::{concurrent, density, first_start, serving, starts};
use crate::subjects::{LargeProgram, Subjects};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some(phases::PROBE_FLAG) {
        return match phases::probe_main(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("wasmbox-bench probe: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("wasmbox-bench: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("wasmbox-bench: FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(o: &Options) -> Result<()> {
    preflight(o)?;
    interrupt::install()?;
    let shim_source = meta::shim_source();
    std::fs::create_dir_all(&o.out_dir)
        .with_context(|| format!("creating {}", o.out_dir.display()))?;

    step("building the guests (bench/guests/*.c for wasm32-wasi and static native)");
    let guests = guests::Guests::build()?;
    let mut large = Vec::new();
    match o.large.as_deref() {
        Some(p) => large.push(LargeProgram::load(p, &o.large_args)?),
        None => eprintln!("no --large program given: skipping its figures"),
    }
    match o.python.as_deref() {
        Some(p) => large.push(LargeProgram::python(p)?),
        None => eprintln!("no --python given: skipping CPython's figures"),
    }

    step("waiting for a quiet machine");
    let load = load::wait_for_quiet(o.max_load, o.load_wait)?;
    eprintln!("    load average {:?}", load.load_at_start);

    // Other people's builds share target/: measure a private copy of the shim, so every
    // container of the run uses the binary `shim_source` describes.
    let shim_copy = tempfile::Builder::new()
        .prefix("wbx-bench-shim-")
        .tempdir()?;
    let shim = settings::shim_dir().join(WASMBOX_SHIM_BINARY);
    std::fs::copy(&shim, shim_copy.path().join(WASMBOX_SHIM_BINARY))
        .with_context(|| format!("copying {}", shim.display()))?;

    step("starting a private containerd");
    let containerd = Containerd::start_with(FixtureOptions {
        shim_dir: shim_copy.path().to_path_buf(),
        ..FixtureOptions::default()
    })?;
    eprintln!(
        "    {} (log {})",
        containerd.address().display(),
        containerd.paths().log.display()
    );
    let results = measure(o, &containerd, &guests, &large, load, shim_source);
    // Measurements end with the fixture: its Drop deletes whatever is still there.
    let leftovers = results
        .as_ref()
        .map(|_| meta::leftovers(&containerd))
        .unwrap_or_default();
    drop(containerd);
    let mut results = results?;
    if !leftovers.is_empty() {
        eprintln!(
            "WARNING: left behind after the runs (removed by force):\n  {}",
            leftovers.join("\n  ")
        );
    }
    if !o.pods.is_empty() {
        results.pods = measure_pods(o, shim_copy.path(), &guests)?;
    }
    results.meta.load_at_end = procfs::load_average()?;

    let json = o.out_dir.join("bench.json");
    let png = o.out_dir.join("bench.png");
    let table = report::table(&results);
    let phases = report::phases(&results);
    let anatomy = report::anatomy(&results);
    let text = format!("{table}\n{phases}\n{anatomy}");
    std::fs::write(&json, serde_json::to_vec_pretty(&results)?)
        .with_context(|| format!("writing {}", json.display()))?;
    std::fs::write(o.out_dir.join("bench.md"), &text)?;
    chart::draw(&results, &o.font, &png)?;
    println!("\n{text}");
    println!(
        "load average at start {:.2} (waited {:.0}s), at end {:.2}",
        results.meta.load.load_at_start[0], results.meta.load.waited_s, results.meta.load_at_end[0]
    );
    println!("shim built from {}", results.meta.shim_source);
    println!(
        "raw numbers: {}\nchart:       {}",
        json.display(),
        png.display()
    );
    Ok(())
}

fn measure(
    o: &Options,
    containerd: &Containerd,
    guests: &guests::Guests,
    large: &[LargeProgram],
    load: load::LoadWait,
    shim_source: String,
) -> Result<Results> {
    step("importing the images");
    let s = Subjects::import(containerd, guests, large, o.wasmtime.as_deref())?;

    step(&format!(
        "cold start: {} interleaved ctr run --rm each",
        o.runs
    ));
    let mut subjects = vec![&s.hello_wasm, &s.hello_runc];
    subjects.extend(s.large.iter());
    let series = starts::interleaved(containerd, &subjects, o.runs)?;
    let cold_start = CompareSeries {
        wasm: series[0].clone(),
        runc: series[1].clone(),
    };

    step(&format!(
        "phases of a warm wasm start, {} probe processes each",
        o.phase_runs
    ));
    let phases = probe_phases(o, containerd, guests, large)?;

    let mut large_results = Vec::new();
    for (i, (subject, program)) in s.large.iter().zip(large).enumerate() {
        step(&format!(
            "{}: {} starts with an empty compile cache",
            program.name, o.first_runs
        ));
        let first = first_start::first_starts(containerd, subject, o.first_runs)?;
        step(&format!(
            "{}: {} first starts after a pull-time compile",
            program.name, o.first_runs
        ));
        let (after_pull, pull_compile) = first_start::after_pull_compile(containerd, subject, o.first_runs)?;
        large_results.push(Large {
            program: program.name.clone(),
            label: program.label.clone(),
            wasm_bytes: program.bytes.len(),
            sha256: wasmbox_wasm::compile::digest::sha256_hex(&program.bytes),
            args: program.args.clone(),
            first,
            after_pull,
            pull_compile,
            later: series[2 + i].clone(),
        });
    }

    step(&format!(
        "{} concurrent starts, {} rounds per runtime",
        o.concurrent, o.concurrent_rounds
    ));
    let c = concurrent::concurrent(
        containerd,
        &[&s.hello_wasm, &s.hello_runc],
        o.concurrent,
        o.concurrent_rounds,
    )?;
    let concurrent = Concurrent {
        n: o.concurrent,
        starts: CompareSeries {
            wasm: c[0].clone(),
            runc: c[1].clone(),
        },
    };

    // The preview 1 server against the native C server; the wasi:http component against the
    // same component under `wasmtime serve` (when built) and the native C server.
    let native = (&s.server_runc, serving::Port::Argument);
    let mut http_servers = vec![(&s.http_wasm, serving::Port::Http)];
    if let Some(w) = &s.http_wasmtime {
        http_servers.push((w, serving::Port::InArgs));
    } else {
        eprintln!("no --wasmtime given: the HTTP figures have no wasmtime serve baseline");
    }
    http_servers.push(native);
    // The same for the WASI 0.3 handler (instances reused by both servers).
    let mut http_p3_servers = vec![(&s.http_p3_wasm, serving::Port::Http)];
    http_p3_servers.extend(s.http_p3_wasmtime.as_ref().map(|w| (w, serving::Port::InArgs)));
    http_p3_servers.push(native);
    let servers = [
        ("p1", "preview 1 server", vec![(&s.server_wasm, serving::Port::Preopened), native], SERVING_CLIENTS),
        ("http", "wasi:http component", http_servers, HTTP_CLIENTS),
        ("http3", "WASI 0.3 handler", http_p3_servers, HTTP_CLIENTS),
    ];
    let mut measured = Vec::new();
    for (prefix, what, subjects, clients) in servers {
        if o.serving_rounds == 0 {
            break;
        }
        step(&format!(
            "serving: {what}, {clients} clients, {} interleaved {} s load runs per server",
            o.serving_rounds, o.serving_seconds
        ));
        measured.push(serving::measure(containerd, prefix, &subjects, clients, o.serving_rounds, o.serving_seconds)?);
    }
    let mut measured = measured.into_iter();
    let (serving, http_serving, http_p3_serving) = (measured.next(), measured.next(), measured.next());

    let mut density_runs = Vec::new();
    let mut anatomy = Vec::new();
    for &n in &o.densities {
        for round in 0..o.density_rounds {
            for subject in [&s.idle_wasm, &s.idle_runc] {
                interrupt::check()?;
                step(&format!(
                    "density: {n} idle {}, round {}/{}",
                    subject.label,
                    round + 1,
                    o.density_rounds
                ));
                let (run, a) = density::measure(containerd, subject, n, round, o.settle)?;
                eprintln!(
                    "    per container: PSS {:.0} KiB, MemAvailable drop {:.0} KiB, {} processes, {} threads",
                    run.pss_kib_per_container,
                    run.mem_available_drop_kib_per_container,
                    run.processes_per_container,
                    run.threads_per_container
                );
                if !anatomy
                    .iter()
                    .any(|x: &density::Anatomy| x.subject == a.subject)
                {
                    anatomy.push(a);
                }
                density_runs.push(run);
            }
        }
    }

    // Idle HTTP servers, each in a network namespace of its own on its default port: the
    // component under wasmbox against the native C server under runc.
    let mut http_idle = Vec::new();
    if o.http_idle > 0 {
        let mut native_http = s.server_runc.clone();
        native_http.label = "http-native".into();
        native_http.args.push("8080".into());
        for round in 0..o.density_rounds {
            for subject in [&s.http_wasm, &native_http] {
                interrupt::check()?;
                step(&format!("idle HTTP servers: {} {}, round {}/{}", o.http_idle, subject.label, round + 1, o.density_rounds));
                let (run, _) = density::measure(containerd, subject, o.http_idle, round, o.settle)?;
                eprintln!("    per container: PSS {:.0} KiB, {} threads", run.pss_kib_per_container, run.threads_per_container);
                http_idle.push(run);
            }
        }
    }

    Ok(Results {
        meta: meta::collect(o, load, shim_source)?,
        cold_start,
        large: large_results,
        concurrent,
        density: density_runs,
        anatomy,
        phases,
        serving,
        http_serving,
        http_p3_serving,
        http_idle,
        pods: Vec::new(),
    })
}

/// Idle pods through CRI, wasm and runc interleaved, on a containerd of their own (with the
/// CRI plugin and a CNI network, as a node runs it; the other figures run without CRI).
fn measure_pods(o: &Options, shim_dir: &std::path::Path, guests: &guests::Guests) -> Result<Vec<scenarios::pods::PodsRun>> {
    use scenarios::pods::{self, PodSubject};
    use wasmbox_integration::config::{CRI_RUNC_HANDLER, CRI_WASMBOX_HANDLER};
    use wasmbox_integration::{cri, image};

    step("starting a private containerd with CRI and a CNI network for the pods");
    let containerd = cri::start_with_pod_network_from(FixtureOptions {
        shim_dir: shim_dir.to_path_buf(),
        ..FixtureOptions::default()
    })?;
    let runs = (|| {
        let cri = cri::Cri::connect(&containerd)?;
        let wasm = cri::import_image(&containerd, image::compat_image_at("docker.io/library/wasmbox-bench-pod-wasm:latest", "/idle.wasm", &guests.idle.wasm))?;
        let runc = cri::import_image(&containerd, image::native_image_at("docker.io/library/wasmbox-bench-pod-runc:latest", "/idle", &guests.idle.native))?;
        let subjects = [
            PodSubject { label: pods::WASM_LABEL.into(), handler: CRI_WASMBOX_HANDLER, image: wasm },
            PodSubject { label: pods::RUNC_LABEL.into(), handler: CRI_RUNC_HANDLER, image: runc },
        ];
        let mut runs = Vec::new();
        for &n in &o.pods {
            for round in 0..o.pod_rounds {
                for subject in &subjects {
                    interrupt::check()?;
                    step(&format!("pods: {n} idle {}, round {}/{}", subject.label, round + 1, o.pod_rounds));
                    let run = pods::measure(&containerd, &cri, subject, n, round, o.settle)?;
                    eprintln!(
                        "    per pod: PSS {:.0} KiB (shims {:.0}), {:.2} processes, {:.2} threads; up {:.2} s, removed {:.2} s",
                        run.pss_kib_per_pod, run.shim_pss_kib_per_pod, run.processes_per_pod, run.threads_per_pod, run.up_s, run.down_s
                    );
                    runs.push(run);
                }
            }
        }
        Ok(runs)
    })();
    let leftovers = meta::leftovers(&containerd);
    drop(containerd);
    if !leftovers.is_empty() {
        eprintln!("WARNING: left behind after the pods (removed by force):\n  {}", leftovers.join("\n  "));
    }
    runs
}

/// Concurrent keep-alive clients of the serving figure (issue: 20).
const SERVING_CLIENTS: usize = 20;
/// ...and of the HTTP component figure (HTTP issue: 50).
const HTTP_CLIENTS: usize = 50;

/// Step timings for the hello and the large program, on the artifacts the cold-start runs
/// left in the fixture's compile cache (so before the first-start runs empty it).
fn probe_phases(
    o: &Options,
    containerd: &Containerd,
    guests: &guests::Guests,
    large: &[LargeProgram],
) -> Result<Vec<phases::Phases>> {
    let rootfs = tempfile::Builder::new()
        .prefix("wbx-bench-rootfs-")
        .tempdir()?;
    let mut wasms = vec![(
        "hello-wasm".to_string(),
        "/hello.wasm".to_string(),
        Vec::new(),
    )];
    std::fs::write(rootfs.path().join("hello.wasm"), &guests.hello.wasm)?;
    for l in large {
        wasms.push((format!("{}-wasm", l.label), l.guest_path.clone(), l.args.clone()));
        let files = std::iter::once((&l.guest_path, &l.bytes)).chain(l.files.iter().map(|(p, b)| (p, b)));
        for (path, bytes) in files {
            let host = rootfs.path().join(path.trim_start_matches('/'));
            if let Some(dir) = host.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&host, bytes).with_context(|| format!("writing {}", host.display()))?;
        }
    }
    // The cache trusts a file's stamp only once it is older than 2 s (wasmbox_wasm::compile::stamp);
    // the files in an image's layers always are.
    std::thread::sleep(std::time::Duration::from_secs(3));
    let mut out = Vec::new();
    for (label, guest_path, args) in wasms {
        interrupt::check()?;
        out.push(phases::measure(
            &label,
            rootfs.path(),
            &guest_path,
            &args,
            &containerd.paths().cache,
            o.phase_runs,
        )?);
    }
    Ok(out)
}

fn preflight(o: &Options) -> Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("the bench starts containerd and containers: run it as root");
    }
    let shim = settings::shim_dir().join(WASMBOX_SHIM_BINARY);
    if !shim.is_file() {
        bail!("{} not found: run `make build` first", shim.display());
    }
    if !o.font.is_file() {
        bail!(
            "font {} not found (apt-get install fonts-dejavu-core, or pass --font)",
            o.font.display()
        );
    }
    Ok(())
}

fn step(what: &str) {
    eprintln!("==> {what}");
}
