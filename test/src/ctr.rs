//! Driving the fixture's containerd with `ctr`: images, runs, tasks.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use wasmbox_image::ImageBuilder;

use crate::containerd::Containerd;
use crate::poll::wait_until;
use crate::process::{run_captured, run_ok, Captured};
use crate::settings::WASMBOX_RUNTIME;

/// Default limit for one ctr command; a run that compiles a module stays well below it.
pub const CTR_TIMEOUT: Duration = Duration::from_secs(120);

/// What `ctr run` (attached) gave back: the guest's stdout, ctr's stderr (guest stderr plus
/// ctr's own errors) and ctr's exit code (the task's exit status, or 1 for ctr's own errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl From<Captured> for RunOutput {
    fn from(c: Captured) -> Self {
        Self {
            stdout: c.stdout_text(),
            stderr: c.stderr_text(),
            code: c.code(),
        }
    }
}

/// One `ctr run`, built up step by step.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub image: String,
    pub id: String,
    pub runtime: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub stdin: Option<Vec<u8>>,
    pub extra_flags: Vec<String>,
    pub timeout: Duration,
}

impl RunSpec {
    /// Runs `image` as container `id` with the wasmbox runtime.
    pub fn new(image: &str, id: &str) -> Self {
        Self {
            image: image.to_string(),
            id: id.to_string(),
            runtime: WASMBOX_RUNTIME.to_string(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            extra_flags: Vec::new(),
            timeout: CTR_TIMEOUT,
        }
    }

    pub fn runtime(mut self, runtime: &str) -> Self {
        self.runtime = runtime.to_string();
        self
    }

    /// Arguments after the container id. ctr (1.6) replaces the whole process args (image
    /// entrypoint and cmd) with them, so the first one must be the program, e.g. `/app.wasm`.
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// Adds `--env NAME=value`.
    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push(format!("{name}={value}"));
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(bytes.into());
        self
    }

    /// Any other `ctr run` flag, placed before the image.
    pub fn flag(mut self, flag: &str) -> Self {
        self.extra_flags.push(flag.to_string());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// One row of `ctr task ls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub id: String,
    pub pid: u32,
    pub status: String,
}

impl Containerd {
    /// `ctr --address <socket> --namespace <ns>` with containerd's PATH, ready for arguments.
    pub fn ctr_command(&self) -> Command {
        let mut cmd = Command::new(self.options().containerd_dir.join("ctr"));
        cmd.arg("--address")
            .arg(self.address())
            .arg("--namespace")
            .arg(self.namespace());
        cmd
    }

    /// Runs ctr with `args`, whatever its exit code.
    pub fn ctr<I, S>(&self, args: I) -> Result<Captured>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.ctr_command();
        cmd.args(args);
        run_captured(&mut cmd, None, CTR_TIMEOUT)
    }

    /// Runs ctr with `args` and fails unless it exits 0; returns its stdout.
    pub fn ctr_ok<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        let mut cmd = self.ctr_command();
        cmd.args(&args);
        run_ok(&format!("ctr {}", shown.join(" ")), &mut cmd, CTR_TIMEOUT)
    }

    /// `ctr image import FILE` (default platform, i.e. linux/amd64 here).
    pub fn import(&self, tar: &Path) -> Result<()> {
        self.import_with(tar, &[])
    }

    /// `ctr image import [flags] FILE`, e.g. `--all-platforms` for wasi/wasm images.
    pub fn import_with(&self, tar: &Path, flags: &[&str]) -> Result<()> {
        let mut args: Vec<&OsStr> = vec![OsStr::new("image"), OsStr::new("import")];
        args.extend(flags.iter().map(OsStr::new));
        args.push(tar.as_os_str());
        self.ctr_ok(args).map(drop)
    }

    /// Writes `image` as a layout tar into the fixture's work dir and imports it; returns its name.
    pub fn import_image(&self, image: ImageBuilder) -> Result<String> {
        let built = image.build()?;
        let file = format!("image-{}.tar", crate::ids::next());
        let tar = self.paths().work.join(file);
        built.write_tar_file(&tar)?;
        self.import(&tar)
            .with_context(|| format!("importing {}", built.reference()))?;
        Ok(built.reference().to_string())
    }

    /// Image names from `ctr image ls -q`.
    pub fn image_names(&self) -> Result<Vec<String>> {
        Ok(self
            .ctr_ok(["image", "ls", "-q"])?
            .lines()
            .map(str::to_string)
            .collect())
    }

    pub fn container_ids(&self) -> Result<Vec<String>> {
        Ok(self
            .ctr_ok(["container", "ls", "-q"])?
            .lines()
            .map(str::to_string)
            .collect())
    }

    fn run_args(&self, spec: &RunSpec, mode: &str) -> Vec<String> {
        let mut args = vec!["run".to_string(), mode.to_string()];
        args.extend(["--runtime".to_string(), spec.runtime.clone()]);
        // Our own fifo dir keeps ctr's IO fifos out of the shared /run/containerd/fifo.
        args.extend([
            "--fifo-dir".to_string(),
            self.paths().fifo.to_string_lossy().into_owned(),
        ]);
        for e in &spec.env {
            args.extend(["--env".to_string(), e.clone()]);
        }
        args.extend(spec.extra_flags.iter().cloned());
        args.extend([spec.image.clone(), spec.id.clone()]);
        args.extend(spec.args.iter().cloned());
        args
    }

    /// The `ctr run --rm ...` command [`Containerd::run`] executes (for display or custom use).
    pub fn run_command(&self, spec: &RunSpec) -> Command {
        let mut cmd = self.ctr_command();
        cmd.args(self.run_args(spec, "--rm"));
        cmd
    }

    /// `ctr run --rm ...`, attached; returns the guest's output and the exit code.
    pub fn run(&self, spec: &RunSpec) -> Result<RunOutput> {
        self.track(&spec.id);
        let mut cmd = self.run_command(spec);
        Ok(run_captured(&mut cmd, spec.stdin.as_deref(), spec.timeout)?.into())
    }

    /// Shorthand for `run` with the wasmbox runtime; empty `args` keep the image's entrypoint
    /// and cmd, otherwise they replace them (see [`RunSpec::args`]).
    pub fn run_rm(&self, image: &str, id: &str, args: &[&str]) -> Result<RunOutput> {
        self.run(&RunSpec::new(image, id).args(args))
    }

    /// `ctr run -d ...`: starts the task and returns once ctr has detached. IO goes to
    /// /dev/null unless the spec passes its own IO flags (e.g. `--log-uri`).
    pub fn run_detached(&self, spec: &RunSpec) -> Result<()> {
        self.track(&spec.id);
        let mut spec = spec.clone();
        if !spec
            .extra_flags
            .iter()
            .any(|f| f.starts_with("--log-uri") || f == "--null-io")
        {
            spec.extra_flags.push("--null-io".to_string());
        }
        let mut cmd = self.ctr_command();
        cmd.args(self.run_args(&spec, "-d"));
        let out = run_captured(&mut cmd, None, spec.timeout)?;
        if !out.status.success() {
            bail!(
                "ctr run -d {} failed ({}): {}",
                spec.id,
                out.status,
                out.stderr_text()
            );
        }
        Ok(())
    }

    /// Parsed `ctr task ls`.
    pub fn tasks(&self) -> Result<Vec<TaskInfo>> {
        let text = self.ctr_ok(["task", "ls"])?;
        Ok(parse_task_list(&text))
    }

    pub fn task(&self, id: &str) -> Result<Option<TaskInfo>> {
        Ok(self.tasks()?.into_iter().find(|t| t.id == id))
    }

    /// Polls `ctr task ls` until task `id` shows `status` (RUNNING, STOPPED, ...).
    pub fn wait_task_status(&self, id: &str, status: &str, timeout: Duration) -> Result<TaskInfo> {
        let mut last = None;
        let found = wait_until(&format!("task {id} to be {status}"), timeout, || {
            let task = self.task(id).ok().flatten();
            last = task.clone();
            task.filter(|t| t.status == status)
        });
        found.with_context(|| format!("last seen: {last:?}"))
    }

    /// `ctr task kill -s SIGNAL ID`.
    pub fn kill_task(&self, id: &str, signal: &str) -> Result<()> {
        self.ctr_ok(["task", "kill", "-s", signal, id]).map(drop)
    }

    /// `ctr task delete ID` for a stopped task; fails if ctr does or the task is still listed.
    pub fn delete_task(&self, id: &str) -> Result<()> {
        self.ctr_ok(["task", "delete", id])?;
        if self.task(id)?.is_some() {
            bail!("task {id} still listed after ctr task delete");
        }
        Ok(())
    }

    /// `ctr task delete ID` (if there is a task) then `ctr container delete ID`.
    pub fn delete_container(&self, id: &str) -> Result<()> {
        if self.task(id)?.is_some() {
            self.delete_task(id)?;
        }
        self.ctr_ok(["container", "delete", id]).map(drop)
    }
}

/// Parses the table `ctr task ls` prints (`TASK PID STATUS` header, one row per task).
pub fn parse_task_list(text: &str) -> Vec<TaskInfo> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let id = cols.next()?.to_string();
            let pid = cols.next()?.parse().ok()?;
            let status = cols.next()?.to_string();
            Some(TaskInfo { id, pid, status })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_task_table() {
        let text = "TASK    PID     STATUS    \nwbx-a   1234    RUNNING\nwbx-b   0       STOPPED\n";
        let tasks = parse_task_list(text);
        assert_eq!(tasks.len(), 2);
        assert_eq!(
            tasks[0],
            TaskInfo {
                id: "wbx-a".into(),
                pid: 1234,
                status: "RUNNING".into()
            }
        );
        assert_eq!(tasks[1].status, "STOPPED");
    }
}
