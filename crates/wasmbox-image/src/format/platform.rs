//! The platforms wasmbox images are published for.

use std::fmt;

use oci_spec::image::{Arch, Os, Platform as OciPlatform, PlatformBuilder};

use crate::error::{ImageError, Result};

/// An image platform: `linux/amd64` for compat images that containerd unpacks by default,
/// `wasi/wasm`, `wasip1/wasm` and `wasip2/wasm` for images that name their Wasm target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    os: String,
    arch: String,
}

const SUPPORTED: [(&str, &str); 4] = [
    ("linux", "amd64"),
    ("wasi", "wasm"),
    ("wasip1", "wasm"),
    ("wasip2", "wasm"),
];

impl Platform {
    pub fn new(os: &str, arch: &str) -> Result<Self> {
        if SUPPORTED.contains(&(os, arch)) {
            Ok(Self {
                os: os.to_string(),
                arch: arch.to_string(),
            })
        } else {
            Err(ImageError::UnsupportedPlatform(format!("{os}/{arch}")))
        }
    }

    /// Parses `os/arch`.
    pub fn parse(text: &str) -> Result<Self> {
        let (os, arch) = text
            .split_once('/')
            .ok_or_else(|| ImageError::UnsupportedPlatform(text.to_string()))?;
        Self::new(os, arch)
    }

    pub fn linux_amd64() -> Self {
        Self {
            os: "linux".into(),
            arch: "amd64".into(),
        }
    }

    pub fn os(&self) -> &str {
        &self.os
    }

    pub fn arch(&self) -> &str {
        &self.arch
    }

    pub fn oci_os(&self) -> Os {
        Os::from(self.os.as_str())
    }

    pub fn oci_arch(&self) -> Arch {
        Arch::from(self.arch.as_str())
    }

    /// The platform object for an index's manifest descriptor.
    pub fn to_oci(&self) -> Result<OciPlatform> {
        Ok(PlatformBuilder::default()
            .os(self.oci_os())
            .architecture(self.oci_arch())
            .build()?)
    }
}

impl Default for Platform {
    fn default() -> Self {
        Self::linux_amd64()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_platforms_round_trip() {
        for text in ["linux/amd64", "wasi/wasm", "wasip1/wasm", "wasip2/wasm"] {
            let p = Platform::parse(text).unwrap();
            assert_eq!(p.to_string(), text);
            assert_eq!(p.oci_os().to_string(), p.os());
            assert_eq!(p.oci_arch().to_string(), p.arch());
        }
    }

    #[test]
    fn others_are_refused() {
        assert!(Platform::parse("linux/arm64").is_err());
        assert!(Platform::parse("wasm").is_err());
    }
}
