//! Content-addressed blobs: bytes plus the descriptor that names them.

use std::str::FromStr;

use oci_spec::image::{Descriptor, Digest, MediaType, Sha256Digest};
use crate::format::digest::sha256_hex;

use crate::error::Result;

/// One blob of an image layout, already hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    media_type: MediaType,
    bytes: Vec<u8>,
    hex: String,
}

impl Blob {
    pub fn new(media_type: MediaType, bytes: Vec<u8>) -> Self {
        let hex = sha256_hex(&bytes);
        Self {
            media_type,
            bytes,
            hex,
        }
    }

    pub fn media_type(&self) -> &MediaType {
        &self.media_type
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The lowercase hex SHA-256 of the bytes (the file name under `blobs/sha256/`).
    pub fn sha256_hex(&self) -> &str {
        &self.hex
    }

    /// `sha256:<hex>`.
    pub fn digest_string(&self) -> String {
        format!("sha256:{}", self.hex)
    }

    pub fn digest(&self) -> Result<Digest> {
        Ok(Sha256Digest::from_str(&self.hex)?.into())
    }

    /// A plain descriptor (media type, digest, size) for this blob.
    pub fn descriptor(&self) -> Result<Descriptor> {
        Ok(Descriptor::new(
            self.media_type.clone(),
            self.bytes.len() as u64,
            self.digest()?,
        ))
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_names_the_content() {
        let blob = Blob::new(MediaType::ImageConfig, b"{}".to_vec());
        let d = blob.descriptor().unwrap();
        assert_eq!(d.size(), 2);
        assert_eq!(
            d.digest().to_string(),
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
    }
}
