//! The shim's side of the `create` helper.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use super::request::{Answer, CreateRequest};
use super::HELPER_ARG;
use crate::exits::ExitMonitor;

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

/// Runs the helper for `req` with `stdin` as the container's stdin; returns the init's PID.
pub fn create(req: &CreateRequest, stdin: Option<OwnedFd>, exits: &Arc<ExitMonitor>) -> Result<i32, HelperError> {
    let json = serde_json::to_string(req).map_err(|e| HelperError::Process(e.to_string()))?;
    let mut child = Command::new("/proc/self/exe")
        .arg(HELPER_ARG)
        .arg(json)
        .stdin(stdin.map(Stdio::from).unwrap_or_else(Stdio::null))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HelperError::Process(format!("spawn: {e}")))?;
    let pid = child.id() as i32;

    // The helper's log (and later the wasm init's) goes to the shim log for as long as the
    // container holds the pipe.
    if let Some(err) = child.stderr.take() {
        let id = req.id.clone();
        let spawned = std::thread::Builder::new().name("wasmbox-ctr-log".into()).spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                match line.trim_start().split_once(' ') {
                    Some(("ERROR", m)) => log::error!("[{id}] {m}"),
                    Some(("WARN", m)) => log::warn!("[{id}] {m}"),
                    Some((_, m)) => log::info!("[{id}] {m}"),
                    None => log::info!("[{id}] {line}"),
                }
            }
        });
        if let Err(e) = spawned {
            log::warn!("no log forwarding for {}: {e}", req.id);
        }
    }

    // The answer ends when the helper and the intermediate process are gone and the init has
    // replaced its stdout; read it on a thread so a stuck helper cannot block Create forever.
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(mut out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = out.read_to_string(&mut s);
            let _ = tx.send(s);
        });
    }
    // The shim's reaper owns waitpid; the exit arrives through the monitor.
    let Some(exit) = exits.wait(pid, HELPER_TIMEOUT) else {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        return Err(HelperError::Process(format!("timed out after {HELPER_TIMEOUT:?}")));
    };
    let output = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    let answer = output
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Answer>(l).ok());
    match answer {
        Some(Answer::Created { pid }) if exit.status == 0 => Ok(pid),
        Some(Answer::Failed {
            message,
            bad_cache_entry,
        }) => Err(HelperError::Failed {
            message,
            bad_cache_entry,
        }),
        _ => Err(HelperError::Process(format!(
            "exited with status {} without an answer",
            exit.status
        ))),
    }
}
