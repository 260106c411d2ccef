//! How answers are made: errors (capped, logged), timestamps and statuses in the API's types.

use std::time::{SystemTime, UNIX_EPOCH};

use containerd_shim::api::Status as ApiStatus;
use containerd_shim::protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim::protos::ttrpc::{self, Code};

use crate::process::task::{StateError, Status};

/// The longest error message the shim returns: far below ttrpc's 4 MiB, so that no value an
/// error quotes (errors quote short prefixes, see `wasmbox_wasm::policy::quote`) can make
/// containerd drop the message.
pub(super) const MAX_ERROR_BYTES: usize = 16 * 1024;

pub(super) fn rpc_error(code: Code, message: impl ToString) -> ttrpc::Error {
    let mut message = message.to_string();
    if message.len() > MAX_ERROR_BYTES {
        let mut end = MAX_ERROR_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let len = message.len();
        message.truncate(end);
        message.push_str(&format!("... (cut: {len} bytes in all)"));
    }
    log::warn!("{message}");
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, message))
}

pub(super) fn state_error(e: StateError) -> ttrpc::Error {
    match e {
        StateError::Finished(_) => rpc_error(Code::NOT_FOUND, e),
        StateError::AlreadyStarted(_) | StateError::NotIn { .. } => {
            rpc_error(Code::FAILED_PRECONDITION, e)
        }
    }
}

pub(super) fn timestamp(t: SystemTime) -> Timestamp {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    }
}

pub(super) fn api_status(s: Status) -> ApiStatus {
    match s {
        Status::Created => ApiStatus::CREATED,
        Status::Running => ApiStatus::RUNNING,
        Status::Paused => ApiStatus::PAUSED,
        Status::Stopped => ApiStatus::STOPPED,
    }
}

pub(super) fn exec_not_found(id: &str, exec_id: &str) -> ttrpc::Error {
    rpc_error(Code::NOT_FOUND, format!("exec {exec_id} not found in {id}"))
}

pub(super) fn unsupported(what: &str) -> ttrpc::Error {
    rpc_error(
        Code::UNIMPLEMENTED,
        format!("{what} is not supported by wasmbox"),
    )
}
