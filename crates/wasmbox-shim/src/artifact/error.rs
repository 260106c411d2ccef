//! Errors of reading a container's wasm from its image. Messages end up in `ctr`/`kubectl`
//! output, so they name the image, blob or layer concerned.

/// Why the image's wasm could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("cannot reach containerd at {address}: {message}")]
    Connect { address: String, message: String },
    #[error("containerd: {what}: {message}")]
    Containerd { what: String, message: String },
    #[error("timed out after {0:?} reading the image from containerd")]
    Timeout(std::time::Duration),
    #[error("blob {digest} is {size} bytes, more than the {limit} bytes wasmbox accepts for a {what}")]
    TooLarge {
        what: &'static str,
        digest: String,
        size: i64,
        limit: i64,
    },
    #[error("blob {digest} does not match its digest (content is {actual}, {len} bytes; descriptor says {size} bytes): refusing it")]
    DigestMismatch {
        digest: String,
        actual: String,
        size: i64,
        len: usize,
    },
    #[error("unsupported digest {0:?} (only sha256 is supported)")]
    UnsupportedDigest(String),
    #[error("image {image}: invalid {what} {digest}: {message}")]
    InvalidJson {
        image: String,
        what: &'static str,
        digest: String,
        message: String,
    },
    #[error("image {image}: the wasm layer {digest} is not listed in the Wasm config's layerDigests")]
    LayerNotInConfig { image: String, digest: String },
    #[error("image {image}: wasm layer {digest} ({media_type}) {reason}")]
    NotWasm {
        image: String,
        digest: String,
        media_type: String,
        reason: String,
    },
}
