//! The task API as containerd calls it: containerd-shim's async ttrpc server on the shim's one
//! runtime thread, each call handed to [`Service`] on tokio's blocking pool.
//!
//! The sync ttrpc server ran three to five workers plus a reader and a writer per connection,
//! a listener and a reaper: ten to fourteen threads that an idle container kept. Here the
//! connections are tasks, and a call holds a thread only while it runs (the pool lets idle
//! threads go, see `main`). Wait, which containerd keeps open per task and exec for their
//! whole life, waits on [`Service::changes`] without a thread.

use std::sync::Arc;

use containerd_shim::api::{
    CloseIORequest, ConnectRequest, ConnectResponse, CreateTaskRequest, CreateTaskResponse,
    DeleteRequest, DeleteResponse, Empty, ExecProcessRequest, KillRequest, PauseRequest,
    PidsRequest, PidsResponse, ResizePtyRequest, ResumeRequest, ShutdownRequest, StartRequest,
    StartResponse, StateRequest, StateResponse, StatsRequest, StatsResponse, UpdateTaskRequest,
    WaitRequest, WaitResponse,
};
use containerd_shim::protos::ttrpc::{self, Code};
use containerd_shim::{Task, TtrpcContext, TtrpcResult};

use super::tasks::Service;

pub struct TaskApi(Arc<Service>);

impl TaskApi {
    pub fn new(service: Service) -> Self {
        Self(Arc::new(service))
    }

    /// Holds a place for container `id` (see `crate::group`), and exits the shim if it is
    /// still empty once the place lapses.
    pub fn expect(&self, id: &str) {
        self.0.expect(id);
        self.settle_after_ttl();
    }

    fn settle_after_ttl(&self) {
        let service = self.0.clone();
        let lapse = service.reservation_ttl() + std::time::Duration::from_millis(100);
        tokio::spawn(async move {
            tokio::time::sleep(lapse).await;
            let _ = tokio::task::spawn_blocking(move || service.settle()).await;
        });
    }

    /// Runs one call of the service off the runtime thread: calls block (helpers, locks,
    /// libcontainer), and the runtime thread must stay free to move every connection's bytes.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Service) -> TtrpcResult<T> + Send + 'static,
    ) -> TtrpcResult<T> {
        let service = self.0.clone();
        tokio::task::spawn_blocking(move || f(&service))
            .await
            .map_err(|e| {
                log::error!("task call failed: {e}");
                ttrpc::Error::RpcStatus(ttrpc::get_status(Code::INTERNAL, e.to_string()))
            })?
    }
}

/// Marks a Create abandoned unless its caller took the answer (see `create` below).
struct GivenUp {
    service: Arc<Service>,
    id: String,
    answered: bool,
}

impl GivenUp {
    fn answered(mut self) {
        self.answered = true;
    }
}

impl Drop for GivenUp {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let (service, id) = (self.service.clone(), std::mem::take(&mut self.id));
        // Off the runtime thread, like every call: it takes the service's locks.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || service.abandon_create(&id))),
            Err(_) => service.abandon_create(&id),
        }
    }
}

/// One method per call, each handed to the service's method of the same name.
macro_rules! blocking_calls {
    ($($name:ident($req:ty) -> $resp:ty;)*) => {
        #[async_trait::async_trait]
        impl Task for TaskApi {
            $(
                async fn $name(&self, _ctx: &TtrpcContext, req: $req) -> TtrpcResult<$resp> {
                    self.call(move |s| s.$name(req)).await
                }
            )*

            async fn create(&self, _ctx: &TtrpcContext, req: CreateTaskRequest) -> TtrpcResult<CreateTaskResponse> {
                // The ttrpc server drops this future when containerd's connection closes (a
                // restart) or the call's deadline passes, while the Create goes on on its
                // thread: containerd will never learn of its task, so the Create undoes itself.
                let given_up = GivenUp { service: self.0.clone(), id: req.id.clone(), answered: false };
                let reply = self.call(move |s| s.create(req)).await;
                given_up.answered();
                reply
            }

            async fn connect(&self, _ctx: &TtrpcContext, req: ConnectRequest) -> TtrpcResult<ConnectResponse> {
                let join = req.id.starts_with(crate::group::JOIN_PREFIX);
                let reply = self.call(move |s| s.connect(req)).await?;
                if join {
                    // Should the admitted container never come, the shim must not stay.
                    self.settle_after_ttl();
                }
                Ok(reply)
            }

            async fn wait(&self, _ctx: &TtrpcContext, req: WaitRequest) -> TtrpcResult<WaitResponse> {
                let mut changes = self.0.changes();
                loop {
                    // Seen before the check: a change after it wakes the wait below.
                    changes.borrow_and_update();
                    let r = req.clone();
                    if let Some(done) = self.call(move |s| s.wait_done(&r)).await? {
                        return Ok(done);
                    }
                    if changes.changed().await.is_err() {
                        return Err(ttrpc::Error::RpcStatus(ttrpc::get_status(
                            Code::UNAVAILABLE,
                            "the shim is shutting down",
                        )));
                    }
                }
            }
        }
    };
}

blocking_calls! {
    start(StartRequest) -> StartResponse;
    state(StateRequest) -> StateResponse;
    kill(KillRequest) -> Empty;
    delete(DeleteRequest) -> DeleteResponse;
    pids(PidsRequest) -> PidsResponse;
    stats(StatsRequest) -> StatsResponse;
    close_io(CloseIORequest) -> Empty;
    shutdown(ShutdownRequest) -> Empty;
    exec(ExecProcessRequest) -> Empty;
    resize_pty(ResizePtyRequest) -> Empty;
    pause(PauseRequest) -> Empty;
    resume(ResumeRequest) -> Empty;
    update(UpdateTaskRequest) -> Empty;
}
