//! What containerd asks about tasks: State, Pids, Stats, Connect.

use containerd_shim::api::{
    ConnectRequest, ConnectResponse, PidsRequest, PidsResponse, StateRequest, StateResponse,
    StatsRequest, StatsResponse,
};
use containerd_shim::protos::api::ProcessInfo;
use containerd_shim::protos::protobuf::MessageField;
use containerd_shim::protos::ttrpc::{self, Code};
use containerd_shim::TtrpcResult;

use crate::metrics;

use super::reply::*;
use super::tasks::*;

impl Service {
    pub fn state(&self, req: StateRequest) -> TtrpcResult<StateResponse> {
        if !req.exec_id.is_empty() {
            return self.with_exec(&req.id, &req.exec_id, |x| {
                let exit = x.state.exit();
                Ok(StateResponse {
                    id: req.exec_id.clone(),
                    bundle: x.state.bundle.display().to_string(),
                    pid: x.state.pid as u32,
                    status: api_status(x.state.status()).into(),
                    stdin: x.stdin_path.clone(),
                    stdout: x.stdout.clone(),
                    stderr: x.stderr.clone(),
                    exit_status: exit.map(|x| x.status as u32).unwrap_or_default(),
                    exited_at: MessageField::from_option(exit.map(|x| timestamp(x.at))),
                    exec_id: req.exec_id.clone(),
                    ..Default::default()
                })
            });
        }
        self.with_entry(&req.id, |e| {
            let status = api_status(e.state.status());
            let exit = e.state.exit();
            Ok(StateResponse {
                id: req.id.clone(),
                bundle: e.state.bundle.display().to_string(),
                pid: e.state.pid as u32,
                status: status.into(),
                stdin: e.stdin_path.clone(),
                stdout: e.stdout.clone(),
                stderr: e.stderr.clone(),
                exit_status: exit.map(|x| x.status as u32).unwrap_or_default(),
                exited_at: MessageField::from_option(exit.map(|x| timestamp(x.at))),
                ..Default::default()
            })
        })
    }

    pub fn pids(&self, req: PidsRequest) -> TtrpcResult<PidsResponse> {
        let handle = self.with_entry(&req.id, |e| Ok(e.handle.clone()))?;
        let pids = handle
            .pids()
            .map_err(|err| rpc_error(Code::UNKNOWN, format!("pids {}: {err}", req.id)))?;
        Ok(PidsResponse {
            processes: pids
                .into_iter()
                .map(|pid| ProcessInfo {
                    pid: pid as u32,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })
    }

    pub fn stats(&self, req: StatsRequest) -> TtrpcResult<StatsResponse> {
        let handle = self.with_entry(&req.id, |e| Ok(e.handle.clone()))?;
        let stats = handle
            .stats()
            .map_err(|err| rpc_error(Code::UNKNOWN, format!("stats {}: {err}", req.id)))?;
        let any = metrics::to_any(&stats).map_err(|e| rpc_error(Code::INTERNAL, e))?;
        Ok(StatsResponse {
            stats: MessageField::some(any),
            ..Default::default()
        })
    }

    pub fn connect(&self, req: ConnectRequest) -> TtrpcResult<ConnectResponse> {
        if let Some(id) = req.id.strip_prefix(crate::group::JOIN_PREFIX) {
            // A refusal is routine (the start action tries the next shim): no warning.
            self.reserve(id).map_err(|e| {
                log::debug!("not admitting {id}: {e}");
                ttrpc::Error::RpcStatus(ttrpc::get_status(Code::RESOURCE_EXHAUSTED, e.to_string()))
            })?;
            log::debug!("admitted {id}");
            return Ok(ConnectResponse {
                shim_pid: std::process::id(),
                ..Default::default()
            });
        }
        let task_pid = self
            .with_entry(&req.id, |e| Ok(e.state.pid))
            .unwrap_or_default();
        Ok(ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: task_pid as u32,
            ..Default::default()
        })
    }
}
