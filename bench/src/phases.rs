//! Where a warm wasm start spends its time, step by step, outside containerd: the shim's own
//! per-start work (resolve the entrypoint in the rootfs, look it up in the compile cache), the
//! create helper's (load and link the artifact) and the init's (instantiate and run the guest),
//! each timed in a fresh process with the wasmbox-wasm calls the shim makes, on the artifact
//! the shim compiled. For comparison it also times reading and hashing the whole file, which a
//! warm start skips when the cache remembers the file's digest by its stamp.
//!
//! The parent runs `wasmbox-bench --probe-phases ...` once per sample, so every sample pays
//! what a new shim and a new helper pay (nothing loaded yet in the process).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use wasmbox_integration::process::run_captured;
use wasmbox_wasm::compile::cache::CompileCache;
use wasmbox_wasm::compile::digest::sha256_hex;
use wasmbox_wasm::compile::entrypoint::{self, Entrypoint, WasmEntrypoint};
use wasmbox_wasm::run::program::Program;
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
    /// `entrypoint::resolve`: openat2 in the rootfs, the file's first bytes and its stamp
    /// (a binary module with a stamp is left unread).
    pub resolve_ms: f64,
    /// `get_or_compile_entrypoint` on a warm cache in a new process, as the shim calls it: a
    /// digest remembered for the file's stamp and an artifact already checked this boot need
    /// no reading; otherwise this reads and hashes the file and checks the artifact.
    pub cache_lookup_ms: f64,
    /// For comparison, not a step of a warm start: reading the whole file and its SHA-256,
    /// what a start pays when nothing is remembered for the file (first start after a boot).
    pub read_and_hash_ms: f64,
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
            ("shim: resolve entrypoint", s(|p| p.resolve_ms)),
            ("shim: compile cache lookup", s(|p| p.cache_lookup_ms)),
            ("helper: load + link artifact", s(|p| p.load_ms)),
            ("init: instantiate + run", s(|p| p.run_ms)),
            (
                "(skipped when warm: read + sha256 of the file)",
                s(|p| p.read_and_hash_ms),
            ),
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
    // Sample 0 is a warm-up: it records the file's digest by its stamp, as the cold-start
    // runs did for the files in the containers' rootfs.
    for i in 0..=samples {
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
        if i > 0 {
            phases.samples.push(sample);
        }
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
    let engine = wasmbox_wasm::compile::engine::new_engine()?;
    let engine_ms = ms(t);

    let resolve = || -> Result<WasmEntrypoint> {
        match entrypoint::resolve(
            &entrypoint::ContainerFs::rootfs_only(Path::new(rootfs)),
            guest_path,
            &[],
            "/",
        )? {
            Entrypoint::Wasm(w) => Ok(w),
            _ => bail!("{guest_path} in {rootfs} is not a wasm entrypoint"),
        }
    };
    let t = Instant::now();
    let mut wasm = resolve()?;
    let resolve_ms = ms(t);

    let cache = CompileCache::open(PathBuf::from(cache_dir))?;
    let t = Instant::now();
    let artifact = cache.get_or_compile_entrypoint(&engine, &mut wasm)?;
    // A module's WASI layer needs the trampoline, which the shim looks up in the cache too.
    let trampoline = match wasm.kind {
        wasmbox_wasm::compile::kind::FileKind::Component => None,
        _ => Some(cache.get_or_compile(
            &engine,
            wasmbox_wasm::p1::trampoline_wasm(),
            wasmbox_wasm::compile::kind::FileKind::Module,
            "the WASI trampoline",
        )?),
    };
    let cache_lookup_ms = ms(t);
    let artifact_bytes = std::fs::metadata(&artifact)?.len();

    let t = Instant::now();
    let mut again = resolve()?;
    let _key = sha256_hex(again.bytes()?);
    let read_and_hash_ms = ms(t);

    let t = Instant::now();
    let program = Program::load(
        &engine,
        &artifact,
        wasm.kind,
        &wasm.guest_path,
        wasm.func.as_deref(),
        trampoline.as_deref(),
        false,
    )?;
    let load_ms = ms(t);

    let sandbox = SandboxSpec {
        args: std::iter::once(wasm.guest_path.clone())
            .chain(guest_args.iter().cloned())
            .collect(),
        env: Vec::new(),
        cwd: "/".into(),
        network: false,
        memory_limit: None,
    };
    // The guest's `/` is the probe's rootfs, as a container's is its own (an interpreter
    // reads its library there).
    let root = std::fs::File::open(rootfs).with_context(|| format!("opening {rootfs}"))?;
    let t = Instant::now();
    let policy = wasmbox_wasm::policy::Policy::default();
    let granted = wasmbox_wasm::sandbox::Granted {
        dirs: Some(wasmbox_wasm::sandbox::GuestDirs {
            root: std::os::fd::AsFd::as_fd(&root),
        }),
        memory: None,
        policy: &policy,
    };
    let exit_code = wasmbox_wasm::run::run(&program, &sandbox, granted);
    let run_ms = ms(t);

    let sample = PhaseSample {
        engine_ms,
        resolve_ms,
        cache_lookup_ms,
        read_and_hash_ms,
        load_ms,
        run_ms,
        exit_code,
    };
    std::fs::write(out, serde_json::to_vec(&(sample, artifact_bytes))?)?;
    Ok(())
}
