//! The other programs image tests drive: the project's own `wasmbox` tool, `oras` (Debian sid,
//! unpacked privately by `test/scripts/fetch-debian-package.sh`), and what the containerd under
//! test can store.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::process::{run_captured, Captured};
use crate::settings;

const TOOL_TIMEOUT: Duration = Duration::from_secs(120);

/// `wasmbox` (the CLI): `WASMBOX_CLI`, else next to the shim under test (`target/release`).
pub fn wasmbox_cli() -> PathBuf {
    env_path("WASMBOX_CLI").unwrap_or_else(|| settings::shim_dir().join("wasmbox"))
}

/// `oras`: `WASMBOX_ORAS`, else where `make` unpacks Debian sid's package, else the PATH.
pub fn oras() -> PathBuf {
    if let Some(p) = env_path("WASMBOX_ORAS") {
        return p;
    }
    let cache =
        env_path("WASMBOX_CI_CACHE").unwrap_or_else(|| PathBuf::from("/var/cache/wasmbox-ci"));
    let fetched = cache.join("oras-sid/usr/bin/oras");
    if fetched.is_file() {
        return fetched;
    }
    PathBuf::from("oras")
}

/// The CNI plugins directory: `WASMBOX_CNI_DIR`, else where `make` unpacks Debian's
/// containernetworking-plugins.
pub fn cni_plugins() -> PathBuf {
    env_path("WASMBOX_CNI_DIR").unwrap_or_else(|| {
        env_path("WASMBOX_CI_CACHE")
            .unwrap_or_else(|| PathBuf::from("/var/cache/wasmbox-ci"))
            .join("cni-bookworm/usr/lib/cni")
    })
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Runs `program args`, whatever its exit code.
pub fn run(program: &Path, args: &[&str]) -> Result<Captured> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_captured(&mut cmd, None, TOOL_TIMEOUT)
        .with_context(|| format!("running {}", program.display()))
}

/// Runs `program args` and fails unless it exits 0; returns its stdout.
pub fn run_ok(program: &Path, args: &[&str]) -> Result<String> {
    let out = run(program, args)?;
    if !out.status.success() {
        bail!(
            "{} {} failed ({}):\nstdout: {}\nstderr: {}",
            program.display(),
            args.join(" "),
            out.status,
            out.stdout_text(),
            out.stderr_text()
        );
    }
    Ok(out.stdout_text())
}

/// `wasmbox image build --format FORMAT -t REFERENCE -o OUT [extra...] APP`.
pub fn build_image(
    format: &str,
    reference: &str,
    app: &Path,
    out: &Path,
    extra: &[&str],
) -> Result<()> {
    let cli = wasmbox_cli();
    if !cli.is_file() {
        bail!(
            "{} is missing: build it with `cargo build --release -p wasmbox-cli` (make build does)",
            cli.display()
        );
    }
    let app = app.to_string_lossy();
    let out = out.to_string_lossy();
    let mut args = vec![
        "image", "build", "--format", format, "-t", reference, "-o", &*out,
    ];
    args.extend_from_slice(extra);
    args.push(&app);
    run_ok(&cli, &args).map(drop)
}

/// A containerd release number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    /// `containerd --version` prints `containerd <module> 1.7.24~ds1 ...`: the first token
    /// starting with a digit.
    pub fn parse(text: &str) -> Option<Self> {
        let token = text
            .split_whitespace()
            .find(|t| t.starts_with(|c: char| c.is_ascii_digit()))?;
        let mut parts = token
            .split(|c: char| !c.is_ascii_digit())
            .map(|p| p.parse::<u32>().ok());
        Some(Self(parts.next()??, parts.next()??, parts.next()??))
    }

    /// containerd stores and unpacks images with non-tar (wasm) layers from 1.6.25 and 1.7.7 on;
    /// before, import and pull fail with "mismatched image rootfs and manifest layers".
    pub fn stores_wasm_layers(self) -> bool {
        match self {
            Version(1, 6, patch) => patch >= 25,
            Version(1, 7, patch) => patch >= 7,
            v => v >= Version(1, 8, 0),
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The version of the containerd under test (`WASMBOX_CONTAINERD_DIR`).
pub fn containerd_version() -> Result<Version> {
    let binary = settings::containerd_dir().join("containerd");
    let text = run_ok(&binary, &["--version"])?;
    Version::parse(&text).with_context(|| format!("cannot read a version in {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian_containerd_versions() {
        let v16 = Version::parse(
            "containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3",
        )
        .unwrap();
        assert_eq!(v16, Version(1, 6, 20));
        assert!(!v16.stores_wasm_layers());
        let v17 =
            Version::parse("containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6")
                .unwrap();
        assert!(v17.stores_wasm_layers());
        let v2 = Version::parse("containerd github.com/containerd/containerd/v2 2.1.9+unknown ")
            .unwrap();
        assert_eq!(v2, Version(2, 1, 9));
        assert!(v2.stores_wasm_layers());
        assert!(Version(1, 6, 25).stores_wasm_layers());
        assert!(!Version(1, 7, 6).stores_wasm_layers());
    }
}
