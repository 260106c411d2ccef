//! Confinement of a wasm process (a container's init or an exec), applied once its program is
//! loaded and before the guest's first instruction: so that even a bug in Wasmtime or our WASI
//! host leaves an attacker a process that can do little more than its guest could.
//!
//! - [`capabilities`]: only the capabilities a guest can reach through WASI stay.
//! - [`syscalls`]: the system calls Wasmtime and our host make (plain data, unit-tested).
//! - [`seccomp`]: that list as a seccomp filter, stacked on the spec's.
//!
//! Native processes are never confined here: they run as runc runs them.

pub mod capabilities;
pub mod seccomp;
pub mod syscalls;

use std::os::fd::RawFd;

use libcontainer::oci_spec::runtime::LinuxSeccomp;

/// What a wasm process is confined to, decided from its policy (see [`Confinement::apply`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Confinement {
    /// The guest may use sockets (its own network namespace, listeners, HTTP serving); it
    /// may then bind a low port as well.
    pub network: bool,
    /// Denied calls are logged by the kernel and allowed (`WASMBOX_SECCOMP=log` on the shim):
    /// how the allowlist is traced, never a setting for production.
    pub log_only: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("set no_new_privs: {0}")]
    NoNewPrivs(nix::Error),
    #[error("narrow capabilities: {0}")]
    Capabilities(#[from] caps::errors::CapsError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("{0}")]
    SpecSeccomp(String),
}

impl Confinement {
    /// Whether the shim's environment asks for log mode (read in the shim's helpers, since a
    /// container's process has the spec's environment).
    pub fn log_mode_requested() -> bool {
        std::env::var("WASMBOX_SECCOMP").is_ok_and(|v| v == "log")
    }

    /// Confines the calling process: no_new_privs, the spec's `profile` if it is not applied
    /// yet (an exec's), the reachable capabilities, our filter. `report` are the descriptors a
    /// denied call is reported on (stderr, the shim log).
    pub fn apply(
        &self,
        profile: Option<&LinuxSeccomp>,
        report: &[RawFd],
    ) -> Result<(), ConfineError> {
        // The filter is built first: libseccomp may need what the filter then denies.
        let filter = seccomp::filter(self.network, self.log_only)?;
        nix::sys::prctl::set_no_new_privs().map_err(ConfineError::NoNewPrivs)?;
        if let Some(profile) = profile {
            // With no_new_privs set, installing it needs no privilege (whatever capabilities
            // the exec was given).
            seccomp::install_container_profile(profile).map_err(ConfineError::SpecSeccomp)?;
        }
        capabilities::narrow(&capabilities::reachable(self.network))?;
        seccomp::install(&filter, report)?;
        drop(filter);
        // What libseccomp allocated to build the filter would stay in this process's heap,
        // counted against every idle container: give it back.
        // SAFETY: a plain libc call (madvise and brk are on the allowlist).
        unsafe { libc::malloc_trim(0) };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// The call [`confined_child`] makes once confined, named in its environment.
    const TRY: &str = "WASMBOX_CONFINE_TRY";

    /// Runs as a child of [`a_confined_process_cannot_escape`] (this test binary again, so the
    /// filter is installed in a process of its own); a no-op otherwise.
    #[test]
    fn confined_child() {
        let Ok(call) = std::env::var(TRY) else { return };
        let path = c"/bin/true";
        Confinement {
            network: false,
            log_only: false,
        }
        .apply(None, &[2])
        .expect("confine");
        // SAFETY: each call is made with valid arguments; the filter should stop all of them.
        let rc = unsafe {
            match call.as_str() {
                "execve" => {
                    let argv = [path.as_ptr(), std::ptr::null()];
                    libc::execve(path.as_ptr(), argv.as_ptr(), std::ptr::null()) as i64
                }
                "mount" => libc::mount(
                    c"none".as_ptr(),
                    c"/mnt".as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    std::ptr::null(),
                ) as i64,
                "ptrace" => libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0),
                "socket" => libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) as i64,
                "unshare" => libc::unshare(libc::CLONE_NEWUSER) as i64,
                "nothing" => 0,
                other => panic!("unknown call {other}"),
            }
        };
        println!("the call returned {rc}");
        std::process::exit(0);
    }

    fn run_child(call: &str) -> (Option<i32>, String) {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "confine::tests::confined_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(TRY, call)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn a_confined_process_cannot_escape() {
        // The child itself runs under the filter: it gets this far only if the test runner's
        // own calls are allowed.
        let (status, stderr) = run_child("nothing");
        assert_eq!(
            status,
            Some(0),
            "a harmless confined child failed: {stderr}"
        );
        for (call, nr) in [
            ("execve", libc::SYS_execve),
            ("mount", libc::SYS_mount),
            ("ptrace", libc::SYS_ptrace),
            ("socket", libc::SYS_socket),
            ("unshare", libc::SYS_unshare),
        ] {
            let (status, stderr) = run_child(call);
            assert_eq!(status, Some(seccomp::DENIED_STATUS), "{call}: {stderr}");
            let reason = format!("seccomp filter denied system call {nr} ({call})");
            assert!(stderr.contains(&reason), "{call}: no reason in {stderr:?}");
        }
    }
}
