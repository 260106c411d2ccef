//! What the bench runs: each subject is an imported image plus the runtime that runs it.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use wasmbox_integration::image::compat_image_at;
use wasmbox_integration::settings::{RUNC_RUNTIME, WASMBOX_RUNTIME};
use wasmbox_integration::{Containerd, RunSpec};

use crate::guests::Guests;

/// One image run by one runtime.
#[derive(Debug, Clone)]
pub struct Subject {
    /// Short name used in tables, ids and the JSON.
    pub label: String,
    pub image: String,
    pub runtime: &'static str,
    /// Replace the image's entrypoint (ctr 1.6 replaces the whole argv); empty keeps it.
    pub args: Vec<String>,
    /// What stdout must contain for a run to count; empty accepts any output.
    pub expect: String,
    pub timeout: Duration,
}

impl Subject {
    pub fn spec(&self, id: &str) -> RunSpec {
        RunSpec::new(&self.image, id)
            .runtime(self.runtime)
            .args(&self.args)
            .timeout(self.timeout)
    }
}

/// A large WASI program, read from what run.sh fetched: one wasm file, or an interpreter with
/// the files it reads at start (CPython's standard library).
pub struct LargeProgram {
    /// Short name for ids and the chart, e.g. `yosys`.
    pub label: String,
    /// The wasm's file name, as the table names the program.
    pub name: String,
    /// Where the wasm sits in the image (and the probe's rootfs).
    pub guest_path: String,
    pub bytes: Vec<u8>,
    pub args: Vec<String>,
    /// Other files of the image: (absolute path, bytes).
    pub files: Vec<(String, Vec<u8>)>,
    /// What stdout must contain for a run to count; empty accepts any output.
    pub expect: String,
}

impl LargeProgram {
    /// One wasm file at `/<its name>`.
    pub fn load(path: &Path, args: &[String]) -> Result<Self> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("large.wasm")
            .to_string();
        let label = name.split(['-', '.']).next().unwrap_or("large").to_string();
        Ok(Self {
            label,
            guest_path: format!("/{name}"),
            name,
            bytes,
            args: args.to_vec(),
            files: Vec::new(),
            expect: String::new(),
        })
    }

    /// CPython for WASI from `prefix` (`bin/python3.X.wasm` and `lib/python3.X/`), installed
    /// under `/usr/local` where its built-in prefix finds the standard library, running
    /// `print(6*7)`.
    pub fn python(prefix: &Path) -> Result<Self> {
        let bin = prefix.join("bin");
        let wasm = std::fs::read_dir(&bin)
            .with_context(|| format!("listing {}", bin.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "wasm"))
            .with_context(|| format!("no python*.wasm in {}", bin.display()))?;
        let mut p = Self::load(&wasm, &["-c".to_string(), "print(6*7)".to_string()])?;
        p.label = "python".into();
        p.guest_path = format!("/usr/local/bin/{}", p.name);
        p.expect = "42".into();
        let lib = prefix.join("lib");
        for entry in walkdir(&lib)? {
            let rel = entry.strip_prefix(&lib).context("walking the standard library")?;
            let bytes = std::fs::read(&entry).with_context(|| format!("reading {}", entry.display()))?;
            p.files.push((format!("/usr/local/lib/{}", rel.display()), bytes));
        }
        Ok(p)
    }
}

/// Every regular file under `dir`, depth first.
fn walkdir(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                todo.push(entry.path());
            } else if kind.is_file() {
                out.push(entry.path());
            }
        }
    }
    Ok(out)
}

/// Every subject of the bench, imported into the fixture's containerd.
pub struct Subjects {
    pub hello_wasm: Subject,
    pub hello_runc: Subject,
    pub idle_wasm: Subject,
    pub idle_runc: Subject,
    pub server_wasm: Subject,
    pub server_runc: Subject,
    /// The integration suite's wasi:http hello component (`test/guests/http_hello.c`).
    pub http_wasm: Subject,
    /// The same component under `wasmtime serve`, natively under runc (`{port}` in its args).
    pub http_wasmtime: Option<Subject>,
    /// The integration suite's WASI 0.3 hello handler (`test/guests/http_p3_hello.c`).
    pub http_p3_wasm: Subject,
    /// The same 0.3 handler under `wasmtime serve` (its default 0.3 instance reuse).
    pub http_p3_wasmtime: Option<Subject>,
    /// One per large program, in the order given.
    pub large: Vec<Subject>,
}

/// A default start takes well under a second; the limit only catches a hung run.
const RUN_TIMEOUT: Duration = Duration::from_secs(120);
/// A start of the large program with an empty cache compiles tens of MB of wasm on 2 cores.
const COMPILE_RUN_TIMEOUT: Duration = Duration::from_secs(1800);
/// ...and so does the optimizing compile that follows a start on the baseline tier.
pub const BACKGROUND_COMPILE_TIMEOUT: Duration = COMPILE_RUN_TIMEOUT;

impl Subjects {
    pub fn import(
        containerd: &Containerd,
        guests: &Guests,
        large: &[LargeProgram],
        wasmtime: Option<&Path>,
    ) -> Result<Self> {
        let hello = "hello from the bench";
        let hello_wasm = import(
            containerd,
            "hello-wasm",
            "/hello.wasm",
            &guests.hello.wasm,
            WASMBOX_RUNTIME,
            hello,
        )?;
        let hello_runc = import(
            containerd,
            "hello-runc",
            "/hello",
            &guests.hello.native,
            RUNC_RUNTIME,
            hello,
        )?;
        let idle_wasm = import(
            containerd,
            "idle-wasm",
            "/idle.wasm",
            &guests.idle.wasm,
            WASMBOX_RUNTIME,
            "",
        )?;
        let idle_runc = import(
            containerd,
            "idle-runc",
            "/idle",
            &guests.idle.native,
            RUNC_RUNTIME,
            "",
        )?;
        let server_wasm = import(containerd, "server-wasm", "/server.wasm", &guests.server.wasm, WASMBOX_RUNTIME, "")?;
        let mut server_runc = import(containerd, "server-runc", "/server", &guests.server.native, RUNC_RUNTIME, "")?;
        // Its port comes after this (see scenarios::serving).
        server_runc.args = vec!["/server".into()];
        let http = wasmbox_integration::guests::http_hello()?;
        let http_wasm = import(containerd, "http-wasm", "/http.wasm", &http, WASMBOX_RUNTIME, "")?;
        let http_wasmtime = wasmtime.map(|w| import_wasmtime_serve(containerd, "http", w, &http)).transpose()?;
        let http_p3 = wasmbox_integration::guests::http_p3_hello()?;
        let http_p3_wasm = import(containerd, "http-p3-wasm", "/http.wasm", &http_p3, WASMBOX_RUNTIME, "")?;
        let http_p3_wasmtime = wasmtime
            .map(|w| import_wasmtime_serve(containerd, "http-p3", w, &http_p3))
            .transpose()?;
        let large = large
            .iter()
            .map(|p| {
                let label = format!("{}-wasm", p.label);
                let reference = format!("docker.io/library/wasmbox-bench-{label}:latest");
                let image = p
                    .files
                    .iter()
                    .fold(compat_image_at(&reference, &p.guest_path, &p.bytes), |b, (path, bytes)| {
                        b.file(path, bytes.clone(), 0o644)
                    });
                let image = containerd
                    .import_image(image)
                    .with_context(|| format!("importing {reference}"))?;
                Ok(Subject {
                    label,
                    image,
                    runtime: WASMBOX_RUNTIME,
                    args: std::iter::once(p.guest_path.clone()).chain(p.args.iter().cloned()).collect(),
                    expect: p.expect.clone(),
                    timeout: COMPILE_RUN_TIMEOUT,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            hello_wasm,
            hello_runc,
            idle_wasm,
            idle_runc,
            server_wasm,
            server_runc,
            http_wasm,
            http_wasmtime,
            http_p3_wasm,
            http_p3_wasmtime,
            large,
        })
    }
}

/// An image with a static `wasmtime` and the component, serving it as `wasmtime serve` does
/// (all of WASI linked, `-Scli`, as wasmbox links a handler), for runc.
/// (`<prefix>-wasmtime`).
fn import_wasmtime_serve(containerd: &Containerd, prefix: &str, wasmtime: &Path, component: &[u8]) -> Result<Subject> {
    let binary = std::fs::read(wasmtime).with_context(|| format!("reading {}", wasmtime.display()))?;
    let label = format!("{prefix}-wasmtime");
    let reference = format!("docker.io/library/wasmbox-bench-{label}:latest");
    let image = containerd
        .import_image(compat_image_at(&reference, "/wasmtime", &binary).file("/http.wasm", component.to_vec(), 0o644))
        .with_context(|| format!("importing {reference}"))?;
    Ok(Subject {
        label,
        image,
        runtime: RUNC_RUNTIME,
        args: ["/wasmtime", "serve", "-Scli", "--addr", "127.0.0.1:{port}", "/http.wasm"].map(String::from).to_vec(),
        expect: String::new(),
        timeout: RUN_TIMEOUT,
    })
}

/// Imports `bytes` as the entrypoint `path` of image `wasmbox-bench-<label>`.
fn import(
    containerd: &Containerd,
    label: &str,
    path: &str,
    bytes: &[u8],
    runtime: &'static str,
    expect: &str,
) -> Result<Subject> {
    let reference = format!("docker.io/library/wasmbox-bench-{label}:latest");
    let image = containerd
        .import_image(compat_image_at(&reference, path, bytes))
        .with_context(|| format!("importing {reference}"))?;
    Ok(Subject {
        label: label.to_string(),
        image,
        runtime,
        args: Vec::new(),
        expect: expect.to_string(),
        timeout: RUN_TIMEOUT,
    })
}
