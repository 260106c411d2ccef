//! The processes the shim holds, task by task: their state as containerd sees it, their exits,
//! their stdio (FIFOs and terminals) and the rootfs mount under them.
//!
//! - [`task`]: a task's or exec's state machine (created, running, paused, stopped);
//! - [`exits`]: the one reaper of the shim (subreaper), and exits not claimed yet;
//! - [`stdio`]: stdin forwarding and the hold on output FIFOs until their output is read;
//! - [`console`]: a terminal's master, copied to and from the stdio FIFOs;
//! - [`rootfs`]: mounting and unmounting the bundle's rootfs ([`idmap`]: the id-mapped layers
//!   of a user-namespaced pod's).

pub mod console;
pub mod exits;
pub mod idmap;
pub mod rootfs;
pub mod stdio;
pub mod task;
