//! Installs the allowlist of [`super::syscalls`] as a seccomp filter on the calling process
//! (every thread), on top of whatever filter the spec installed: the kernel applies both.
//!
//! A denied call does not run: the kernel raises SIGSYS, whose handler writes which call it
//! was to the container's stderr and the shim log, then exits with 159 (128 + SIGSYS), the
//! status a process killed by SIGSYS reports. In log mode the kernel logs the call and lets
//! it run instead (how the allowlist was found).

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicI32, Ordering};

use libseccomp::{ScmpAction, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};

use super::syscalls::{allowlist, name_of};

/// Where the SIGSYS handler reports (the container's stderr, and the shim log's pipe).
static REPORT_FDS: [AtomicI32; 2] = [AtomicI32::new(-1), AtomicI32::new(-1)];

/// The exit status of a process a denied call stopped: that of a death by SIGSYS.
pub const DENIED_STATUS: i32 = 128 + libc::SIGSYS;

#[derive(Debug, thiserror::Error)]
#[error("seccomp filter: {0}")]
pub struct SeccompError(String);

fn err(what: &str) -> impl Fn(libseccomp::error::SeccompError) -> SeccompError + '_ {
    move |e| SeccompError(format!("{what}: {e}"))
}

/// The filter for a process with or without network; `log_only` logs denied calls instead.
pub fn filter(network: bool, log_only: bool) -> Result<ScmpFilterContext, SeccompError> {
    let deny = if log_only {
        ScmpAction::Log
    } else {
        ScmpAction::Trap
    };
    let mut ctx = ScmpFilterContext::new(deny).map_err(err("new filter"))?;
    // Calls of another architecture's ABI (int 0x80 on x86_64) are denied as well.
    ctx.set_act_badarch(ScmpAction::KillProcess)
        .map_err(err("bad-arch action"))?;
    // Threads made before the filter (there should be none) get it too.
    ctx.set_ctl_tsync(true).map_err(err("tsync"))?;
    // no_new_privs is set by the caller (before dropping capabilities).
    ctx.set_ctl_nnp(false).map_err(err("nnp"))?;
    for allowed in allowlist(network) {
        let call = ScmpSyscall::from_name(allowed.name).map_err(err(allowed.name))?;
        if allowed.only.is_empty() {
            ctx.add_rule(ScmpAction::Allow, call)
                .map_err(err(allowed.name))?;
        }
        for m in &allowed.only {
            let cmp = ScmpArgCompare::new(m.arg, ScmpCompareOp::MaskedEqual(m.mask), m.value);
            ctx.add_rule_conditional(ScmpAction::Allow, call, &[cmp])
                .map_err(err(allowed.name))?;
        }
    }
    // glibc tries clone3 first and falls back to clone (whose flags a filter can read) on
    // ENOSYS.
    let clone3 = ScmpSyscall::from_name("clone3").map_err(err("clone3"))?;
    ctx.add_rule(ScmpAction::Errno(libc::ENOSYS), clone3)
        .map_err(err("clone3"))?;
    Ok(ctx)
}

/// Installs the container's own profile (its spec's `linux.seccomp`) on this process, as
/// libcontainer does for an init and leaves out of an exec, which runc gives it. Needs
/// no_new_privs or CAP_SYS_ADMIN.
pub fn install_container_profile(
    profile: &libcontainer::oci_spec::runtime::LinuxSeccomp,
) -> Result<(), String> {
    let notify = libcontainer::seccomp::initialize_seccomp(profile)
        .map_err(|e| format!("the container's seccomp profile: {e}"))?;
    if let Some(fd) = notify {
        let _ = nix::unistd::close(fd);
        return Err(
            "the container's seccomp profile has a notify listener, which an exec does not support"
                .into(),
        );
    }
    Ok(())
}

/// Loads `filter` on this process. `report` are the descriptors a denied call is reported on.
pub fn install(filter: &ScmpFilterContext, report: &[RawFd]) -> Result<(), SeccompError> {
    for (slot, fd) in REPORT_FDS.iter().zip(report) {
        slot.store(*fd, Ordering::Relaxed);
    }
    // SA_SIGINFO gives the call's number; the handler runs on whatever stack the thread has.
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::SigAction(on_sigsys),
        nix::sys::signal::SaFlags::SA_SIGINFO | nix::sys::signal::SaFlags::SA_ONSTACK,
        nix::sys::signal::SigSet::empty(),
    );
    // SAFETY: the handler only formats into a stack buffer, writes and exits.
    unsafe { nix::sys::signal::sigaction(nix::sys::signal::Signal::SIGSYS, &action) }
        .map_err(|e| SeccompError(format!("SIGSYS handler: {e}")))?;
    filter.load().map_err(err("load"))
}

/// The `si_syscall` field of a SIGSYS siginfo (glibc's `_sigsys` union member): after
/// `si_signo`, `si_errno`, `si_code` and padding, `_call_addr` then `_syscall`.
fn denied_call(info: &libc::siginfo_t) -> i64 {
    #[repr(C)]
    struct SigSys {
        signo: i32,
        errno: i32,
        code: i32,
        _pad: i32,
        call_addr: *mut libc::c_void,
        syscall: i32,
        arch: u32,
    }
    // SAFETY: siginfo_t is larger than this prefix, and for SIGSYS it holds these fields.
    let sys = unsafe { &*(info as *const libc::siginfo_t as *const SigSys) };
    i64::from(sys.syscall)
}

/// Reports denied call `nr` on the report descriptors, async-signal-safely: the shim log's
/// pipe (the second) reads a level first.
fn report(nr: i64) {
    for (i, slot) in REPORT_FDS.iter().enumerate() {
        let fd = slot.load(Ordering::Relaxed);
        if fd >= 0 {
            let mut line = [0u8; 256];
            let len = message(nr, if i == 1 { "ERROR " } else { "" }, &mut line);
            // SAFETY: a plain write of a valid buffer.
            unsafe { libc::write(fd, line.as_ptr().cast(), len) };
        }
    }
}

/// Formats `n` in decimal into `buf`, returning the digits.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

/// Builds the report line in a fixed buffer (no allocation in a signal handler).
fn message(nr: i64, level: &str, out: &mut [u8; 256]) -> usize {
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(out.len() - len);
        out[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    put(level.as_bytes());
    put(b"wasmbox: the wasm sandbox's seccomp filter denied system call ");
    let mut digits = [0u8; 20];
    put(decimal(nr.unsigned_abs(), &mut digits));
    if let Some(name) = name_of(nr) {
        put(b" (");
        put(name.as_bytes());
        put(b")");
    }
    put(b"; the process is stopped (exit status 159)\n");
    len
}

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler.
    let nr = unsafe { info.as_ref() }.map_or(-1, denied_call);
    report(nr);
    // SAFETY: exit_group is allowed by the filter and ends every thread at once.
    unsafe { libc::syscall(libc::SYS_exit_group, DENIED_STATUS) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_names_the_call() {
        let mut out = [0u8; 256];
        let len = message(libc::SYS_execve, "", &mut out);
        let text = std::str::from_utf8(&out[..len]).unwrap();
        assert!(text.contains("system call 59 (execve)"), "{text}");
        let len = message(9999, "ERROR ", &mut out);
        let text = std::str::from_utf8(&out[..len]).unwrap();
        assert!(
            text.starts_with("ERROR wasmbox: ") && text.contains("system call 9999;"),
            "{text}"
        );
    }

    #[test]
    fn the_filter_builds_with_and_without_network() {
        for network in [false, true] {
            let f = filter(network, false).unwrap();
            let out = tempfile::tempfile().unwrap();
            f.export_bpf(&out).unwrap();
            assert!(out.metadata().unwrap().len() > 0);
        }
    }
}
