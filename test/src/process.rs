//! Running commands with a deadline, and looking at other processes through /proc.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::poll::wait_until;

/// What a finished command printed and how it ended.
#[derive(Debug, Clone)]
pub struct Captured {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub status: ExitStatus,
}

impl Captured {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The exit code, or 128 + signal like a shell reports it.
    pub fn code(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        self.status
            .code()
            .unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }
}

/// Runs `cmd` (shown as `what` in the error) like [`run_captured`] without stdin, and fails
/// unless it exits 0; returns its stdout.
pub fn run_ok(what: &str, cmd: &mut Command, timeout: Duration) -> Result<String> {
    let out = run_captured(cmd, None, timeout)?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            out.stdout_text(),
            out.stderr_text()
        );
    }
    Ok(out.stdout_text())
}

/// The PATH for a daemon the tests start: `first`, then the caller's PATH, then the system's
/// binary dirs (runc lives in /usr/sbin, which a non-login PATH may lack).
pub fn daemon_path(first: Vec<std::path::PathBuf>) -> std::ffi::OsString {
    let mut dirs = first;
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    for d in ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        dirs.push(std::path::PathBuf::from(d));
    }
    std::env::join_paths(dirs).expect("PATH entries contain no ':'")
}

/// Runs `cmd` to completion, feeding it `stdin` (or nothing), and kills it if it takes longer
/// than `timeout`, so a hung ctr or shim fails a test instead of hanging the suite.
pub fn run_captured(
    cmd: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> Result<Captured> {
    let shown = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("spawning {shown}"))?;

    let writer = stdin.map(|bytes| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        let bytes = bytes.to_vec();
        // A separate thread, so a child that writes before it reads cannot deadlock us.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&bytes);
        })
    });
    let stdout = drain(child.stdout.take().expect("stdout is piped"));
    let stderr = drain(child.stderr.take().expect("stderr is piped"));

    let waited = wait_with_deadline(&mut child, timeout);
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    match waited {
        Some(status) => Ok(Captured {
            stdout,
            stderr,
            status,
        }),
        None => bail!(
            "{shown} did not finish within {timeout:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

fn drain<R: Read + Send + 'static>(mut pipe: R) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        buf
    })
}

/// `cmd` as a shell-like line (program and arguments, quoted only where needed).
pub fn display_command(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| {
            let a = a.to_string_lossy();
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
            if plain {
                a.into_owned()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Waits for `child`; on timeout kills it, reaps it and returns `None`.
pub fn wait_with_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let status = wait_until("child exit", timeout, || child.try_wait().ok().flatten()).ok();
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    status
}

/// The names (`comm`) of a process's threads, sorted by thread id (the main thread first);
/// empty once it is gone.
pub fn thread_names(pid: i32) -> Vec<String> {
    let dir = format!("/proc/{pid}/task");
    let Ok(tasks) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut tids: Vec<i32> = tasks.flatten().filter_map(|t| t.file_name().to_str()?.parse().ok()).collect();
    tids.sort_unstable();
    tids.into_iter()
        .filter_map(|tid| std::fs::read_to_string(format!("{dir}/{tid}/comm")).ok())
        .map(|c| c.trim_end().to_string())
        .collect()
}

/// The process name (`comm`) of `pid`; empty once it is gone.
pub fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end().to_string())
        .unwrap_or_default()
}

/// Every process's children: child pids by parent pid, from /proc/*/stat.
pub fn children_by_parent() -> std::collections::HashMap<i32, Vec<i32>> {
    let mut map: std::collections::HashMap<i32, Vec<i32>> = std::collections::HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return map;
    };
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if let Some(ppid) = parse_ppid(&stat) {
            map.entry(ppid).or_default().push(pid);
        }
    }
    map
}

/// The parent pid from a /proc/PID/stat line; the command name may contain spaces and ')'.
fn parse_ppid(stat: &str) -> Option<i32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// The children of `pid` as (pid, comm).
pub fn children_of(pid: i32) -> Vec<(i32, String)> {
    children_by_parent()
        .remove(&pid)
        .unwrap_or_default()
        .into_iter()
        .map(|child| (child, comm(child)))
        .collect()
}

/// A process seen in /proc.
#[derive(Debug, Clone)]
pub struct ProcInfo {
    pub pid: i32,
    pub argv: Vec<String>,
}

impl ProcInfo {
    /// The file name of argv[0].
    pub fn program(&self) -> &str {
        self.argv
            .first()
            .map(|a| a.rsplit('/').next().unwrap_or(a))
            .unwrap_or("")
    }

    /// Whether `flag` is immediately followed by `value` in argv (`-address /x/sock`).
    pub fn has_flag_value(&self, flag: &str, value: &str) -> bool {
        self.argv.windows(2).any(|w| w[0] == flag && w[1] == value)
    }
}

/// Every process whose cmdline is readable (kernel threads and racing exits are skipped).
pub fn processes() -> Vec<ProcInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            if raw.is_empty() {
                return None;
            }
            let argv = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            Some(ProcInfo { pid, argv })
        })
        .collect()
}

pub fn is_alive(pid: i32) -> bool {
    // A zombie still answers kill(0); it counts as gone for our purposes.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .map(|rest| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Sends SIGKILL to each pid and waits (bounded) until they are gone.
pub fn kill_and_wait(pids: &[i32], timeout: Duration) -> Result<()> {
    for pid in pids {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
    wait_until("killed processes to exit", timeout, || {
        pids.iter().all(|p| !is_alive(*p)).then_some(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ppid_and_finds_children() {
        assert_eq!(parse_ppid("42 (a b) c) S 7 42 42 0"), Some(7));
        assert_eq!(parse_ppid("garbage"), None);
        let me = std::process::id() as i32;
        assert!(children_by_parent().values().any(|kids| kids.contains(&me)));
        assert!(!thread_names(me).is_empty());
        assert!(!comm(me).is_empty());
    }
    use std::time::Instant;

    #[test]
    fn captures_output_and_code() {
        let out = run_captured(
            Command::new("sh").args(["-c", "cat; echo err >&2; exit 3"]),
            Some(b"in"),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.stdout, b"in");
        assert_eq!(out.stderr_text(), "err\n");
        assert_eq!(out.code(), 3);
    }

    #[test]
    fn kills_on_timeout() {
        let started = Instant::now();
        let err = run_captured(
            Command::new("sleep").arg("30"),
            None,
            Duration::from_millis(200),
        );
        assert!(err.is_err());
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn displays_commands_shell_style() {
        let mut cmd = Command::new("ctr");
        cmd.args(["run", "a b", "it's"]);
        assert_eq!(display_command(&cmd), r"ctr run 'a b' 'it'\''s'");
    }

    #[test]
    fn sees_itself_in_proc() {
        let me = std::process::id() as i32;
        assert!(processes().iter().any(|p| p.pid == me));
        assert!(is_alive(me));
    }
}

/// A child process killed and reaped when dropped, whatever path the test takes.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// VmHWM of `pid`: the most it was ever resident, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"))
}
