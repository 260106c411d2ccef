//! Where the suite finds its binaries, and whether it may run at all.

use std::io::Write;
use std::path::PathBuf;

/// The runtime type the shim registers as; containerd maps it to `containerd-shim-wasmbox-v1`.
pub const WASMBOX_RUNTIME: &str = "io.containerd.wasmbox.v1";
/// The shim binary containerd looks up on its PATH for [`WASMBOX_RUNTIME`].
pub const WASMBOX_SHIM_BINARY: &str = "containerd-shim-wasmbox-v1";
/// containerd's own runtime, used by the baseline test that checks the fixture itself.
pub const RUNC_RUNTIME: &str = "io.containerd.runc.v2";
pub const RUNC_SHIM_BINARY: &str = "containerd-shim-runc-v2";

/// The cargo workspace root (this crate lives in `<root>/test`).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("test crate has a parent directory")
        .to_path_buf()
}

/// Directory holding `containerd`, `ctr` and `containerd-shim-runc-v2`
/// (`WASMBOX_CONTAINERD_DIR`, default `/usr/bin`).
pub fn containerd_dir() -> PathBuf {
    env_dir("WASMBOX_CONTAINERD_DIR").unwrap_or_else(|| PathBuf::from("/usr/bin"))
}

/// Directory holding the shim under test (`WASMBOX_SHIM_DIR`, default `<workspace>/target/release`).
pub fn shim_dir() -> PathBuf {
    env_dir("WASMBOX_SHIM_DIR").unwrap_or_else(|| workspace_root().join("target/release"))
}

fn env_dir(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Why the integration tests cannot run here, if they cannot: they need root (containerd,
/// mounts, cgroups) and can be switched off with `WASMBOX_SKIP_INTEGRATION=1`.
pub fn skip_reason() -> Option<String> {
    if std::env::var("WASMBOX_SKIP_INTEGRATION").as_deref() == Ok("1") {
        return Some("WASMBOX_SKIP_INTEGRATION=1".to_string());
    }
    if !nix::unistd::geteuid().is_root() {
        return Some("not running as root".to_string());
    }
    None
}

/// Says that the running test skips (all or the rest of its checks) and why: on its stderr, and
/// as a line in the file `WASMBOX_SKIPPED_LOG` names, if set (`make test` prints them after
/// each stage). A test that returns early counts as passed in cargo's summary; this is how it
/// is still seen.
pub fn skip(reason: &str) {
    // libtest names a test's thread after the test; the binary is the test file.
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| s.rsplit_once('-').map_or(s.clone(), |(name, _hash)| name.to_string()))
        .unwrap_or_default();
    let test = std::thread::current().name().unwrap_or("?").to_string();
    eprintln!("SKIP {binary}::{test}: {reason}");
    if let Some(path) = std::env::var_os("WASMBOX_SKIPPED_LOG").filter(|v| !v.is_empty()) {
        if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
            let _ = writeln!(f, "{binary}::{test}: {reason}");
        }
    }
}

/// Returns early from a test (after printing a skip line) when [`skip_reason`] says so.
#[macro_export]
macro_rules! require_integration {
    () => {
        if let Some(reason) = $crate::settings::skip_reason() {
            $crate::settings::skip(&reason);
            return;
        }
    };
}
