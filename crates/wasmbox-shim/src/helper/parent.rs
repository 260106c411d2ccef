//! The shim's side of the `create` helper.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::request::{Answer, CreateRequest, HELPER_ARG};
use super::zygote;
use crate::process::exits::ExitMonitor;

/// A create that takes longer than this is considered stuck and killed.
const HELPER_TIMEOUT: Duration = Duration::from_secs(120);

/// Why the helper did not create the container.
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("{message}")]
    Failed { message: String, bad_cache_entry: bool },
    #[error("create helper: {0}")]
    Process(String),
}

/// How the helper was started.
enum Launched {
    /// Forked by the zygote: the kernel reaps it, its answer is all we learn.
    Zygote(i32),
    /// Exec'd by the shim: the shim's reaper reports its exit.
    Exec(i32),
}

impl Launched {
    fn pid(&self) -> i32 {
        match self {
            Launched::Zygote(p) | Launched::Exec(p) => *p,
        }
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), HelperError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| HelperError::Process(format!("pipe: {e}")))
}

/// Starts the helper: forked by the zygote when there is one, else exec'd.
fn launch(json: &str, stdin: Option<OwnedFd>, out: OwnedFd, err: OwnedFd) -> Result<Launched, HelperError> {
    if let Some(zygote) = zygote::get() {
        match zygote.spawn(json, stdin.as_ref(), &out, &err) {
            Ok(pid) => return Ok(Launched::Zygote(pid)),
            Err(e) => log::warn!("zygote: {e}; exec'ing the create helper"),
        }
    }
    let child = Command::new("/proc/self/exe")
        .arg(HELPER_ARG)
        .arg(json)
        .stdin(stdin.map(Stdio::from).unwrap_or_else(Stdio::null))
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .map_err(|e| HelperError::Process(format!("spawn: {e}")))?;
    Ok(Launched::Exec(child.id() as i32))
}

/// Sends the helper's log (and later the wasm init's) to the shim log for as long as the
/// container holds the pipe.
fn forward_log(err: OwnedFd, id: &str) {
    let tag = id.to_string();
    let spawned = std::thread::Builder::new().name("wasmbox-ctr-log".into()).spawn(move || {
        let id = tag;
        for line in BufReader::new(File::from(err)).lines().map_while(Result::ok) {
            match line.trim_start().split_once(' ') {
                Some(("ERROR", m)) => log::error!("[{id}] {m}"),
                Some(("WARN", m)) => log::warn!("[{id}] {m}"),
                Some((_, m)) => log::info!("[{id}] {m}"),
                None => log::info!("[{id}] {line}"),
            }
        }
    });
    if let Err(e) = spawned {
        log::warn!("no log forwarding for {id}: {e}");
    }
}

/// Runs the helper for `req` with `stdin` as the container's stdin; returns the init's PID.
pub fn create(req: &CreateRequest, stdin: Option<OwnedFd>, exits: &Arc<ExitMonitor>) -> Result<i32, HelperError> {
    let json = serde_json::to_string(req).map_err(|e| HelperError::Process(e.to_string()))?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    // Our copies of the write ends go with `launch`, so EOF means the helper side is done.
    let launched = launch(&json, stdin, out_w, err_w)?;
    forward_log(err_r, &req.id);

    // The answer ends when the helper and the intermediate process are gone and the init has
    // replaced its stdout; read it on a thread so a stuck helper cannot block Create forever.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = File::from(out_r).read_to_string(&mut s);
        let _ = tx.send(s);
    });
    let Ok(output) = rx.recv_timeout(HELPER_TIMEOUT) else {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(launched.pid()), nix::sys::signal::Signal::SIGKILL);
        return Err(HelperError::Process(format!("timed out after {HELPER_TIMEOUT:?}")));
    };
    let status = match launched {
        // The shim's reaper owns waitpid; the exit arrives through the monitor.
        Launched::Exec(pid) => exits.wait(pid, Duration::from_secs(10)).map(|e| e.status as i32),
        Launched::Zygote(_) => None,
    };
    let answer = output
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Answer>(l).ok());
    match answer {
        Some(Answer::Created { pid }) if status.unwrap_or(0) == 0 => Ok(pid),
        Some(Answer::Failed {
            message,
            bad_cache_entry,
        }) => Err(HelperError::Failed {
            message,
            bad_cache_entry,
        }),
        _ => Err(HelperError::Process(match status {
            Some(s) => format!("exited with status {s} without an answer"),
            None => "ended without an answer".to_string(),
        })),
    }
}
