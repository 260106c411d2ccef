//! The pull-time compile (`containerd-shim-wasmbox-v1 precompile`, see the shim's
//! precompile.rs) against a fixture's containerd and compile cache: one-shot runs, and the
//! `--watch` daemon as a child that is killed when dropped.

use std::fs::OpenOptions;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::containerd::{Containerd, NAMESPACE};
use crate::poll::wait_until;
use crate::process::{run_captured, Captured, KillOnDrop};
use crate::settings::WASMBOX_SHIM_BINARY;

/// argv[1] of the pull-time compile (the shim's `precompile::PRECOMPILE_ARG`).
pub const PRECOMPILE_ARG: &str = "precompile";

impl Containerd {
    /// The shim binary as `precompile`, on this fixture's socket and cache.
    fn precompile_command(&self) -> Command {
        let mut cmd = Command::new(self.options().shim_dir.join(WASMBOX_SHIM_BINARY));
        cmd.arg(PRECOMPILE_ARG)
            .arg("--address")
            .arg(self.address())
            .env("WASMBOX_CACHE_DIR", &self.paths().cache)
            .envs(self.options().env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs `precompile IMAGE...` (in the tests' namespace) to its end.
    pub fn precompile(&self, images: &[&str], timeout: Duration) -> Result<Captured> {
        run_captured(self.precompile_command().args(["--namespace", NAMESPACE]).args(images), None, timeout)
    }

    /// Starts `precompile --watch` on every namespace, its output in a file of the fixture's
    /// dir.
    pub fn watch_images(&self) -> Result<ImageWatcher> {
        let log = self.paths().dir.join("precompile-watch.log");
        let file = OpenOptions::new().create(true).append(true).open(&log)?;
        let child = self
            .precompile_command()
            .arg("--watch")
            .env("WASMBOX_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("starting precompile --watch")?;
        Ok(ImageWatcher { child: KillOnDrop(child), log })
    }
}

/// A running `precompile --watch`, killed when dropped.
pub struct ImageWatcher {
    child: KillOnDrop,
    log: PathBuf,
}

impl ImageWatcher {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until its log has a line with `needle`; returns that line. Fails early if the
    /// watcher exited.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        let child = &mut self.child.0;
        let log = &self.log;
        let found = wait_until(&format!("the watcher to log {needle:?}"), timeout, || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(anyhow::anyhow!("the watcher exited ({status})")));
            }
            let text = std::fs::read_to_string(log).unwrap_or_default();
            text.lines().find(|l| l.contains(needle)).map(|l| Ok(l.to_string()))
        });
        found.and_then(|r| r).with_context(|| format!("watcher log:\n{}", self.log()))
    }

    /// True while the watcher runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.0.try_wait(), Ok(None))
    }
}

/// The compile lock of one module's artifact in a fixture's cache, held by the test: a start of
/// that module (its artifact removed) waits for it, so its Create stays under way until this
/// is dropped.
pub struct HeldCompile {
    pub lock: nix::fcntl::Flock<std::fs::File>,
}

impl Containerd {
    /// Learns the artifact name of `wasm` (the module of `image`) from a pull-time compile,
    /// removes the artifact, and takes its compile lock.
    pub fn hold_compile(&self, image: &str, wasm: &[u8]) -> Result<HeldCompile> {
        use nix::fcntl::{Flock, FlockArg};
        let out = self.precompile(&[image], Duration::from_secs(120))?;
        anyhow::ensure!(out.status.success(), "precompile {image}: {}", out.stderr_text());
        let module = crate::suite::cache_artifacts(self, Some(wasm)).pop().context("the module's artifact")?;
        let cache = &self.paths().cache;
        std::fs::remove_file(cache.join(&module))?;
        std::fs::create_dir_all(cache.join("compiling"))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(cache.join("compiling").join(format!("{module}.lock")))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, e)| e)?;
        Ok(HeldCompile { lock })
    }
}
