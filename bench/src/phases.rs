//! Where a warm wasm start spends its time, step by step, outside containerd: the shim's own
//! per-start work (read and hash the entrypoint, look it up in the compile cache, which checks
//! the artifact's CRC in every new shim process), the create helper's (load and link the
//! artifact) and the init's (instantiate and run the guest), each timed in a fresh process
//! with the wasmbox-wasm library the shim uses, on the artifact the shim compiled.
//!
//! The parent runs `wasmbox-bench --probe-phases ...` once per sample, so every sample pays
//! what a new shim and a new helper pay (empty "verified" set, nothing loaded yet).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use wasmbox_integration::process::run_captured;
use wasmbox_wasm::cache::{sha256_hex, CompileCache};
use wasmbox_wasm::entrypoint::{self, Entrypoint};
use wasmbox_wasm::program::Program;
use wasmbox_wasm::sandbox::SandboxSpec;

use crate::stats::Series;

/// The flag that makes `wasmbox-bench` the probe child.
pub const PROBE_FLAG: &str = "--probe-phases";
const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

/// One probe process: milliseconds per step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseSample {
    /// Engine configuration, once per shim (and per helper) process.
    pub engine_ms: f64,
    /// openat2 in the rootfs and reading the whole entrypoint file.
    pub read_ms: f64,
    /// SHA-256 of the wasm (the cache key).
    pub sha256_ms: f64,
    /// `get_or_compile` on a hit in a new process: the SHA-256 again, the artifact's
    /// length+CRC check against its sidecar, and the mtime touch.
    pub cache_lookup_ms: f64,
    /// `Program::load`: deserialize the artifact (mmap) and link it against WASI.
    pub load_ms: f64,
    /// Instantiate and run the guest to its exit, in this process.
    pub run_ms: f64,
    pub exit_code: i32,
}

/// Step timings of one wasm, over several probe processes.
#[derive(Debug, Clone, Serialize)]
pub struct Phases {
    pub subject: String,
    pub wasm_bytes: usize,
    pub artifact_bytes: u64,
    pub samples: Vec<PhaseSample>,
}

impl Phases {
    /// (step name, series in ms) in the order a start goes through them.
    pub fn steps(&self) -> Vec<(&'static str, Series)> {
        let s =
            |f: fn(&PhaseSample) -> f64| Series::new("ms", self.samples.iter().map(f).collect());
        vec![
            ("shim: engine setup", s(|p| p.engine_ms)),
            ("shim: read entrypoint", s(|p| p.read_ms)),
            ("shim: sha256 (cache key)", s(|p| p.sha256_ms)),
            (
                "shim: cache lookup (sha256 + CRC check)",
                s(|p| p.cache_lookup_ms),
            ),
            ("helper: load + link artifact", s(|p| p.load_ms)),
            ("init: instantiate + run", s(|p| p.run_ms)),
        ]
    }
}

/// Runs `samples` probe processes for the wasm at `guest_path` inside `rootfs`.
pub fn measure(
    label: &str,
    rootfs: &Path,
    guest_path: &str,
    args: &[String],
    cache_dir: &Path,
    samples: usize,
) -> Result<Phases> {
    // Our own running binary even if a build replaced target/release/wasmbox-bench meanwhile.
    let exe = PathBuf::from("/proc/self/exe");
    let out_dir = tempfile::Builder::new()
        .prefix("wbx-bench-phases-")
        .tempdir()?;
    let mut phases = Phases {
        subject: label.to_string(),
        wasm_bytes: std::fs::metadata(rootfs.join(guest_path.trim_start_matches('/')))?.len()
            as usize,
        artifact_bytes: 0,
        samples: Vec::new(),
    };
    for i in 0..samples {
        let out = out_dir.path().join(format!("{i}.json"));
        let mut cmd = Command::new(&exe);
        cmd.arg(PROBE_FLAG)
            .arg(rootfs)
            .arg(guest_path)
            .arg(cache_dir)
            .arg(&out)
            .args(args);
        let done = run_captured(&mut cmd, None, PROBE_TIMEOUT)?;
        if !done.status.success() {
            bail!(
                "phase probe for {label} failed ({}): {}",
                done.status,
                done.stderr_text()
            );
        }
        let text =
            std::fs::read_to_string(&out).with_context(|| format!("reading {}", out.display()))?;
        let (sample, artifact_bytes): (PhaseSample, u64) = serde_json::from_str(&text)?;
        phases.artifact_bytes = artifact_bytes;
        phases.samples.push(sample);
    }
    Ok(phases)
}

/// The probe child: `--probe-phases ROOTFS GUEST_PATH CACHE_DIR OUT_JSON [ARGS...]`.
pub fn probe_main(args: &[String]) -> Result<()> {
    let [rootfs, guest_path, cache_dir, out, guest_args @ ..] = args else {
        bail!("usage: {PROBE_FLAG} ROOTFS GUEST_PATH CACHE_DIR OUT_JSON [ARGS...]");
    };
    let ms = |t: Instant| t.elapsed().as_secs_f64() * 1000.0;

    let t = Instant::now();
    let engine = wasmbox_wasm::engine::new_engine()?;
    let engine_ms = ms(t);

    let t = Instant::now();
    let Entrypoint::Wasm(wasm) = entrypoint::resolve(Path::new(rootfs), guest_path, &[], "/")?
    else {
        bail!("{guest_path} in {rootfs} is not a wasm entrypoint");
    };
    let read_ms = ms(t);

    let t = Instant::now();
    let _key = sha256_hex(&wasm.wasm);
    let sha256_ms = ms(t);

    let cache = CompileCache::open(PathBuf::from(cache_dir))?;
    let expected = cache.entry_path(&engine, &wasm.wasm, wasm.kind);
    // Measuring a compile here would be a bug: the caller hands over a warm cache.
    if !expected.is_file() {
        bail!(
            "{} is not in the compile cache {cache_dir}",
            wasm.guest_path
        );
    }
    let t = Instant::now();
    let artifact = cache.get_or_compile(&engine, &wasm.wasm, wasm.kind, &wasm.guest_path)?;
    let cache_lookup_ms = ms(t);
    let artifact_bytes = std::fs::metadata(&artifact)?.len();

    let t = Instant::now();
    let program = Program::load(
        &engine,
        &artifact,
        wasm.kind,
        &wasm.guest_path,
        wasm.func.as_deref(),
    )?;
    let load_ms = ms(t);

    let sandbox = SandboxSpec {
        args: std::iter::once(wasm.guest_path.clone())
            .chain(guest_args.iter().cloned())
            .collect(),
        env: Vec::new(),
        cwd: "/".into(),
        // The probe runs on the host: whatever the guest sees of it, it may only read.
        root_readonly: true,
        mounts: Vec::new(),
        network: false,
        memory_limit: None,
    };
    let t = Instant::now();
    let exit_code = wasmbox_wasm::run::run(&program, &sandbox);
    let run_ms = ms(t);

    let sample = PhaseSample {
        engine_ms,
        read_ms,
        sha256_ms,
        cache_lookup_ms,
        load_ms,
        run_ms,
        exit_code,
    };
    std::fs::write(out, serde_json::to_vec(&(sample, artifact_bytes))?)?;
    Ok(())
}
