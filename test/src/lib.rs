//! Integration suite for wasmbox: a private containerd per test driven by `ctr` (and, for the
//! Kubernetes RuntimeClass path, by the CRI API: [`cri`]), guests built from `test/guests/`,
//! images written with `wasmbox-image`, and leftover checks.
//!
//! Environment:
//! - `WASMBOX_CONTAINERD_DIR`: directory with `containerd`, `ctr`, `containerd-shim-runc-v2`
//!   (default `/usr/bin`).
//! - `WASMBOX_SHIM_DIR`: directory with `containerd-shim-wasmbox-v1`
//!   (default `<workspace>/target/release`); first on containerd's PATH.
//! - `WASMBOX_CLI`: the `wasmbox` tool (default `<shim dir>/wasmbox`); `WASMBOX_ORAS`: `oras`
//!   (default `$WASMBOX_CI_CACHE/oras-sid/usr/bin/oras`); `WASMBOX_REGISTRY`: `docker-registry`.
//! - `WASMBOX_DOCKER_DIR`: Docker Engine (`dockerd`, `docker`) for [`docker`]'s tests
//!   (default `$WASMBOX_CI_CACHE/docker-sid`, unpacked by `make docker`); without it they skip.
//! - `WASMBOX_SKIP_INTEGRATION=1`: tests print a skip line and pass (they also skip when not root).

pub mod cgroups;
pub mod config;
pub mod containerd;
pub mod cri;
pub mod cri_stream;
pub mod ctr;
pub mod docker;
pub mod events;
pub mod guests;
pub mod http;
pub mod ids;
pub mod image;
pub mod layout;
pub mod leftovers;
pub mod mounts;
pub mod netns;
pub mod poll;
pub mod precompile;
pub mod probe;
pub mod process;
pub mod registry;
pub mod settings;
pub mod shim_socket;
pub mod suite;
pub mod terminal;
pub mod tools;
pub mod upstream;

pub use containerd::{Containerd, FixtureOptions};
pub use ctr::{RunOutput, RunSpec, TaskInfo};
pub use events::EventStream;
