//! Rewrites this process's command line as `ps` shows it (like `setproctitle`).
//!
//! The wasm init, the zygote and the create helper are forks of the shim, not execs, so they
//! would all show the shim's own command line: `ps` would list several "shims" per
//! container. Each rewrites its argv area in place instead (the kernel reads /proc/PID/cmdline
//! from there); changing its bounds would need CAP_SYS_RESOURCE.

/// The argv area `[start, end)` of this process, from /proc/self/stat (fields 48 and 49).
fn argv_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')')?.1;
    let mut fields = rest.split_whitespace().skip(48 - 3);
    let start = fields.next()?.parse().ok()?;
    let end = fields.next()?.parse().ok()?;
    (end > start).then_some((start, end))
}

/// Shows `title` (truncated to the original command line's length) as the command line, and
/// the base name of its first word as the process name.
pub fn set(title: &str) {
    let first = title.split(' ').next().unwrap_or(title);
    let name = first.rsplit('/').next().unwrap_or(first);
    if let Ok(name) = std::ffi::CString::new(name) {
        // The kernel truncates it to 15 bytes.
        let _ = nix::sys::prctl::set_name(&name);
    }
    let Some((start, end)) = argv_area() else {
        return;
    };
    let len = end - start;
    let bytes = title.as_bytes();
    let n = bytes.len().min(len - 1);
    // SAFETY: [start, end) is this process's own argv area on its initial stack, writable
    // and not referenced by Rust (std copied the arguments at startup).
    unsafe {
        let p = start as *mut u8;
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, n);
        std::ptr::write_bytes(p.add(n), 0, len - n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_argv_area_is_found() {
        let (start, end) = argv_area().expect("argv area");
        assert!(end > start);
    }

    #[test]
    fn a_forked_child_shows_the_new_title() {
        use nix::unistd::{fork, ForkResult};
        // SAFETY: the child only rewrites its argv and exits.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                set("wasmbox-title-test");
                let cmdline = std::fs::read("/proc/self/cmdline").unwrap_or_default();
                let ok = cmdline.starts_with(b"wasmbox-title-test\0");
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
    }
}
