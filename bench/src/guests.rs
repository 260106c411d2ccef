//! The bench's guest programs, built from `bench/guests/*.c` for both sides of each comparison:
//! wasm32-wasi with clang (wasmbox) and a static native ELF with gcc (runc).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use wasmbox_integration::process::run_captured;

const COMPILE_TIMEOUT: Duration = Duration::from_secs(120);

/// A guest built both ways.
pub struct Pair {
    pub wasm: Vec<u8>,
    pub native: Vec<u8>,
}

/// The hello of the start benchmarks and the idle program of the density benchmark.
pub struct Guests {
    pub hello: Pair,
    pub idle: Pair,
    /// The integration suite's HTTP server (`test/guests/server.c`), for the serving figure.
    pub server: Pair,
}

impl Guests {
    pub fn build() -> Result<Self> {
        Ok(Self {
            hello: pair("hello")?,
            idle: pair("idle")?,
            server: pair_from(&wasmbox_integration::guests::sources_dir(), "server")?,
        })
    }
}

fn sources_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("guests")
}

fn pair(name: &str) -> Result<Pair> {
    pair_from(&sources_dir(), name)
}

fn pair_from(dir: &Path, name: &str) -> Result<Pair> {
    let src = dir.join(format!("{name}.c"));
    if !src.is_file() {
        bail!("guest source {} not found", src.display());
    }
    Ok(Pair {
        wasm: compile(&src, "clang", &["--target=wasm32-wasi", "-O2", "-Wall"])?,
        native: compile(&src, "gcc", &["-static", "-O2", "-Wall"])?,
    })
}

/// Runs `compiler flags -o OUT SRC` in a scratch dir and returns OUT's bytes.
fn compile(src: &Path, compiler: &str, flags: &[&str]) -> Result<Vec<u8>> {
    let scratch = tempfile::Builder::new()
        .prefix("wbx-bench-guest-")
        .tempdir()?;
    let out = scratch.path().join("out");
    let mut cmd = Command::new(compiler);
    cmd.args(flags).arg("-o").arg(&out).arg(src);
    let result = run_captured(&mut cmd, None, COMPILE_TIMEOUT)?;
    if !result.status.success() {
        bail!(
            "{compiler} {} failed ({}):\n{}",
            src.display(),
            result.status,
            result.stderr_text()
        );
    }
    std::fs::read(&out)
        .with_context(|| format!("reading {compiler}'s output for {}", src.display()))
}
