/// Errors of the container layer; messages reach `ctr` users, so they say what failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("container {id}: {source}")]
    Libcontainer {
        id: String,
        #[source]
        source: libcontainer::error::LibcontainerError,
    },
    #[error("container {id}: cgroup: {message}")]
    Cgroup { id: String, message: String },
    #[error("container {id}: invalid signal: {message}")]
    BadSignal { id: String, message: String },
    #[error("container {id} does not exist")]
    NotFound { id: String },
}
