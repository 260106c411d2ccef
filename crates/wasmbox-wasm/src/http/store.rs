//! The stores handlers run in: one per instance, each with the WASI context the spec and the
//! policy grant, the container's memory limit, and a deadline for its guest code.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::WasiCtx;
use wasmtime_wasi_http::WasiHttpCtx;

use crate::http::outbound::Outbound;
use crate::http::proxy::HttpState;
use crate::policy::memory::Budget;

/// Says why a request (or an instance and its requests) failed: in the shim's log as `what`,
/// and on the container's stderr (`wasmbox: request failed: ...`), where kubectl logs shows it.
pub fn report_failure(what: &str, e: &wasmtime::Error) {
    log::error!("{what}: {e:?}");
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("wasmbox: request failed: {e:#}\n").as_bytes(),
    );
}

/// Makes the stores of one handler's instances.
pub struct Stores {
    pub engine: Engine,
    /// Builds an instance's WASI context. Preopening changes the process's working directory
    /// for a moment (see `crate::run::wasi`), so contexts are built one at a time.
    builder: Mutex<Box<dyn FnMut() -> wasmtime::Result<WasiCtx> + Send>>,
    /// Sends the handlers' outbound requests, within the egress policy.
    outbound: Outbound,
    memory_limit: Option<u64>,
    /// What a deadline's trap says.
    timeout: Duration,
}

impl Stores {
    pub fn new(
        engine: Engine,
        builder: Box<dyn FnMut() -> wasmtime::Result<WasiCtx> + Send>,
        outbound: Outbound,
        memory_limit: Option<u64>,
        timeout: Duration,
    ) -> Self {
        Self {
            engine,
            builder: Mutex::new(builder),
            outbound,
            memory_limit,
            timeout,
        }
    }

    /// A store whose guest code is stopped at the first epoch tick after `deadline` (None:
    /// never by time, for whoever enforces time from outside); guest code yields its thread at
    /// every tick, so other requests' tasks get it in turn.
    pub fn store(&self, deadline: Option<Instant>) -> wasmtime::Result<Store<HttpState>> {
        let ctx = {
            let mut build = self
                .builder
                .lock()
                .map_err(|_| wasmtime::format_err!("the WASI context builder is poisoned"))?;
            build()?
        };
        let state = HttpState {
            ctx,
            table: ResourceTable::new(),
            http: WasiHttpCtx::new(),
            outbound: self.outbound.clone(),
            // Each instance within the container's limit; instances running at once are not
            // counted together (the cgroup's limit still holds for the sum).
            limits: Budget::new(None, self.memory_limit),
            deadline,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        let timeout = self.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |s| match s.data().deadline {
            Some(deadline) if Instant::now() >= deadline => Err(wasmtime::format_err!(
                "the request timed out after {timeout:?}"
            )),
            _ => Ok(UpdateDeadline::Yield(1)),
        });
        Ok(store)
    }
}
