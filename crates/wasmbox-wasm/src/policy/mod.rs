//! What a guest may do beyond what the spec says: the capability policy.
//!
//! Three layers, each narrowing the one before and never widening it:
//! 1. built-in defaults: what a runc container may do (every directory of its tree, any
//!    outbound connection, no time limit);
//! 2. the node operator's config file for the runtime handler ([`OperatorConfig`]: default
//!    egress, caps on what annotations may ask for, defaults for them);
//! 3. the pod's or container's `wasmbox.dev/` annotations in the OCI spec.
//!
//! All of it becomes one plain [`Policy`], made by the shim at Create (where a bad file or
//! annotation fails Create with a message naming it) and applied where the WASI context is
//! built ([`crate::run`]).
//!
//! Its parts, in the order they depend on each other:
//! - [`keys`]: the annotations' names, their defaults, parsing and quoting of values;
//! - [`egress`]: outbound rules and their layers;
//! - [`grants`]: preopened directories and declared listeners;
//! - [`config`]: the operator's file;
//! - [`resolve`]: the three layers made into one [`Policy`].
//!
//! And where it is enforced, each using the plain [`Policy`] only:
//! - [`network`]: the egress and bind rules on a component's sockets;
//! - [`memory`]: the memory budget that keeps linear memories and tables inside the limit;
//! - [`terminate`]: termination signals and the policy's timeout, as epoch interruption.

pub mod config;
pub mod egress;
pub mod grants;
pub mod keys;
pub mod memory;
pub mod network;
pub mod resolve;
pub mod terminate;

pub use config::*;
pub use egress::*;
pub use grants::*;
pub use keys::*;
pub use resolve::*;
