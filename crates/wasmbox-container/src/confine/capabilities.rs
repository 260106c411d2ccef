//! The capabilities a wasm process keeps: those whose effect its guest can reach through WASI,
//! out of what the spec granted. A guest's file operations may override permission and owner
//! checks as a native process of the same spec could; a guest that listens may bind a low
//! port. Nothing else a capability allows (mounting, tracing, changing ids, raw sockets,
//! killing other processes) has a WASI call that would use it.

use caps::{CapSet, Capability, CapsHashSet};

/// What a guest's WASI calls can use; `listens` when its policy lets it bind sockets.
pub fn reachable(listens: bool) -> CapsHashSet {
    let mut keep: CapsHashSet = [
        Capability::CAP_DAC_OVERRIDE,
        Capability::CAP_DAC_READ_SEARCH,
        Capability::CAP_FOWNER,
        // Writing a set-id file keeps its mode bits, as for a native writer.
        Capability::CAP_FSETID,
    ]
    .into_iter()
    .collect();
    if listens {
        keep.insert(Capability::CAP_NET_BIND_SERVICE);
    }
    keep
}

/// Narrows this process's sets (every one) to `keep`, within what it has.
pub fn narrow(keep: &CapsHashSet) -> Result<(), caps::errors::CapsError> {
    // Dropping from the bounding set needs CAP_SETPCAP, which goes with the rest below. A
    // spec without it keeps its bounding set; nothing can be exec'd to regain from it anyway.
    if caps::has_cap(None, CapSet::Effective, Capability::CAP_SETPCAP)? {
        for cap in caps::read(None, CapSet::Bounding)?.difference(keep) {
            caps::drop(None, CapSet::Bounding, *cap)?;
        }
    }
    caps::clear(None, CapSet::Ambient)?;
    for set in [CapSet::Effective, CapSet::Inheritable, CapSet::Permitted] {
        let now = caps::read(None, set)?;
        let kept: CapsHashSet = now.intersection(keep).copied().collect();
        if kept != now {
            caps::set(None, set, &kept)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guest_keeps_file_overrides_and_a_low_port_only_when_it_listens() {
        let quiet = reachable(false);
        assert!(quiet.contains(&Capability::CAP_DAC_OVERRIDE));
        assert!(!quiet.contains(&Capability::CAP_NET_BIND_SERVICE));
        assert!(reachable(true).contains(&Capability::CAP_NET_BIND_SERVICE));
        for never in [
            Capability::CAP_SYS_ADMIN,
            Capability::CAP_SETUID,
            Capability::CAP_SETGID,
            Capability::CAP_NET_RAW,
            Capability::CAP_KILL,
            Capability::CAP_MKNOD,
            Capability::CAP_SYS_CHROOT,
            Capability::CAP_SETPCAP,
            Capability::CAP_SETFCAP,
            Capability::CAP_CHOWN,
        ] {
            assert!(!reachable(true).contains(&never), "{never} kept");
        }
    }
}
