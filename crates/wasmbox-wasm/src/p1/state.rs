//! The store's data for preview 1 modules: Wasmtime's context, the memory budget, and the
//! layer's own state (its trampolines, the guest's `/`, the sockets' table).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;

use wasmtime::{Caller, Extern, Memory};
use wasmtime_wasi::p1::WasiP1Ctx;

use crate::p1::trampoline::Trampoline;
use crate::policy::memory::Budget;

/// Store data for core modules (WASI preview 1).
pub struct P1State {
    pub(crate) wasi: WasiP1Ctx,
    pub(crate) limits: Budget,
    /// State of the layer around Wasmtime's preview 1 (see [`crate::p1::layer`]).
    pub(crate) layer: State,
}

/// The per-store state of the layer.
#[derive(Default)]
pub struct State {
    /// The trampoline with the guest's memory (set once the guest is instantiated).
    pub(crate) guest: Option<Trampoline>,
    /// The trampoline with a memory of its own, for the sockets layer.
    pub(crate) scratch: Option<Trampoline>,
    /// The guest's `/` (a duplicate of the runner's descriptor), if it has one: for `rofs`.
    pub(crate) root: Option<OwnedFd>,
    /// The preopened and accepted sockets.
    pub(crate) sockets: Table,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Listener,
    Stream,
}

#[derive(Debug)]
pub(crate) struct Socket {
    pub(crate) fd: OwnedFd,
    pub(crate) kind: Kind,
    /// The guest's view: O_NONBLOCK (the host socket is always non-blocking).
    pub(crate) nonblock: bool,
}

/// The guest's sockets by descriptor number.
#[derive(Debug, Default)]
pub struct Table {
    pub(crate) sockets: BTreeMap<u32, Socket>,
    pub(crate) listeners: usize,
}

impl Table {
    /// The table for `listeners` (non-blocking host sockets), at descriptors 3, 4, ...
    pub fn with_listeners(listeners: Vec<OwnedFd>) -> Self {
        let n = listeners.len();
        let sockets = listeners
            .into_iter()
            .enumerate()
            .map(|(i, fd)| {
                (
                    3 + i as u32,
                    Socket {
                        fd,
                        kind: Kind::Listener,
                        nonblock: false,
                    },
                )
            })
            .collect();
        Self {
            sockets,
            listeners: n,
        }
    }

    /// How many preopened listeners precede the guest's directories.
    pub fn listeners(&self) -> usize {
        self.listeners
    }

    pub(crate) fn get(&self, fd: i32) -> Option<&Socket> {
        u32::try_from(fd).ok().and_then(|fd| self.sockets.get(&fd))
    }
}

/// The calling guest's memory (every wrapped module exports it, see [`crate::p1::layer::wrap`]).
pub(crate) fn guest_memory(caller: &mut Caller<'_, P1State>) -> wasmtime::Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(m)) => Ok(m),
        _ => wasmtime::bail!("the module exports no memory"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_sit_at_three_and_up() {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let t = Table::with_listeners(vec![a.into(), b.into()]);
        assert_eq!(t.listeners(), 2);
        assert!(t.get(3).is_some() && t.get(4).is_some());
        assert!(t.get(2).is_none() && t.get(5).is_none() && t.get(-1).is_none());
    }
}
