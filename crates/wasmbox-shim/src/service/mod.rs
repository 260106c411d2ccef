//! The task service: containerd's task API v2 over ttrpc.
//!
//! One service per shim process serves every container of its group (a pod, or one
//! container). Containers are created through the `create` helper and then started, signalled
//! and deleted in-process through libcontainer.
//!
//! Its parts, split by what the calls do; each uses only those listed before it:
//! - [`reply`]: errors, timestamps and statuses in the API's types;
//! - [`tasks`]: the service's data (tasks, execs, locks) and the exit monitor's side;
//! - [`sharing`]: places held for Creates on their way in a shared shim;
//! - [`io`]: terminals and stdin (attach, resize, CloseIO);
//! - [`program`]: which program a process runs, and its compile;
//! - [`status`]: State, Pids, Stats, Connect;
//! - [`create`]: Create, and undoing a Create containerd gave up on;
//! - [`exec`]: Exec, and an exec's Start and Delete;
//! - [`lifecycle`]: Start, Kill, Delete, Wait, Pause, Resume, Update, Shutdown;
//! - [`api`]: the ttrpc `Task` implementation, a thin dispatcher onto the above.

pub mod api;
mod create;
mod exec;
mod io;
mod lifecycle;
mod program;
mod reply;
mod sharing;
mod status;
mod tasks;

pub use api::TaskApi;
pub use tasks::Service;
