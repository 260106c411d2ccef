use thiserror::Error;

/// Everything that can go wrong while assembling or writing an image.
#[derive(Debug, Error)]
pub enum ImageError {
    #[error("I/O error while writing the image: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot serialise image JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid OCI data: {0}")]
    Oci(#[from] oci_spec::OciSpecError),
    #[error("invalid path in image {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error(
        "unsupported platform {0:?} (expected linux/amd64, wasi/wasm, wasip1/wasm or wasip2/wasm)"
    )]
    UnsupportedPlatform(String),
    #[error("invalid image reference {0:?}")]
    InvalidReference(String),
    #[error("the layout has no index: add at least one manifest")]
    EmptyIndex,
    #[error("{name} {reason}")]
    NotWasm { name: String, reason: String },
    #[error("{0}")]
    InvalidOption(String),
}

pub type Result<T> = std::result::Result<T, ImageError>;
