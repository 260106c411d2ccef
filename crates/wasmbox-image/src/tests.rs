//! Whole-image tests: reproducibility and self-consistency of the written layout.

use std::collections::BTreeMap;
use std::io::Read;

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use crate::{sha256_hex, ImageBuilder};

const REF: &str = "docker.io/library/wasmbox-test:v1";

fn sample(platform: (&str, &str)) -> ImageBuilder {
    ImageBuilder::new(REF)
        .platform(platform.0, platform.1)
        .entrypoint(["/app.wasm"])
        .cmd(["--flag", "value"])
        .env(["PATH=/usr/bin", "FOO=bar"])
        .working_dir("/work")
        .label("b.label", "2")
        .label("a.label", "1")
        .label("c.label", "3")
        .file("/app.wasm", b"\0asm\x01\0\0\0".to_vec(), 0o755)
        .file("/etc/greeting", b"hi\n".to_vec(), 0o644)
        .dir("/tmp", 0o1777)
}

fn tar_files(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = tar::Archive::new(bytes);
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type().is_file() {
            let path = entry.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            files.insert(path, data);
        }
    }
    files
}

fn blob<'a>(files: &'a BTreeMap<String, Vec<u8>>, digest: &str) -> &'a [u8] {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    let bytes = files
        .get(&format!("blobs/sha256/{hex}"))
        .expect("blob present");
    assert_eq!(sha256_hex(bytes), hex, "blob content matches its name");
    bytes
}

#[test]
fn two_builds_give_identical_bytes() {
    let mut first = Vec::new();
    let mut second = Vec::new();
    let a = sample(("linux", "amd64")).write_tar(&mut first).unwrap();
    let b = sample(("linux", "amd64")).write_tar(&mut second).unwrap();
    assert_eq!(first, second);
    assert_eq!(a.manifest_digest(), b.manifest_digest());
}

#[test]
fn different_content_gives_a_different_digest() {
    let a = sample(("linux", "amd64")).build().unwrap();
    let b = sample(("linux", "amd64"))
        .file("/extra", b"x".to_vec(), 0o644)
        .build()
        .unwrap();
    assert_ne!(a.manifest_digest(), b.manifest_digest());
    assert_ne!(a.layer_digest(), b.layer_digest());
}

#[test]
fn digests_in_index_and_manifest_match_blobs() {
    let mut bytes = Vec::new();
    let image = sample(("linux", "amd64")).write_tar(&mut bytes).unwrap();
    let files = tar_files(&bytes);

    assert_eq!(files["oci-layout"], br#"{"imageLayoutVersion":"1.0.0"}"#);
    let index: ImageIndex = serde_json::from_slice(&files["index.json"]).unwrap();
    assert_eq!(index.manifests().len(), 1);
    let desc = &index.manifests()[0];
    assert_eq!(desc.digest().to_string(), image.manifest_digest());
    let annotations = desc.annotations().as_ref().unwrap();
    assert_eq!(annotations["io.containerd.image.name"], REF);
    assert_eq!(annotations["org.opencontainers.image.ref.name"], "v1");
    let platform = desc.platform().as_ref().unwrap();
    assert_eq!(platform.os().to_string(), "linux");
    assert_eq!(platform.architecture().to_string(), "amd64");

    let manifest_bytes = blob(&files, image.manifest_digest());
    assert_eq!(desc.size(), manifest_bytes.len() as u64);
    let manifest: ImageManifest = serde_json::from_slice(manifest_bytes).unwrap();
    assert_eq!(manifest.schema_version(), 2);
    assert_eq!(
        manifest.config().digest().to_string(),
        image.config_digest()
    );
    assert_eq!(manifest.layers().len(), 1);
    let layer_desc = &manifest.layers()[0];
    assert_eq!(
        layer_desc.media_type().to_string(),
        "application/vnd.oci.image.layer.v1.tar"
    );

    let config_bytes = blob(&files, manifest.config().digest().as_ref());
    assert_eq!(manifest.config().size(), config_bytes.len() as u64);
    let layer_bytes = blob(&files, layer_desc.digest().as_ref());
    assert_eq!(layer_desc.size(), layer_bytes.len() as u64);

    let config: ImageConfiguration = serde_json::from_slice(config_bytes).unwrap();
    assert_eq!(
        config.rootfs().diff_ids(),
        &vec![image.layer_digest().to_string()]
    );
    let runtime = config.config().as_ref().unwrap();
    assert_eq!(
        runtime.entrypoint().as_deref(),
        Some(&["/app.wasm".to_string()][..])
    );
    assert_eq!(runtime.cmd().as_ref().unwrap().len(), 2);
    assert_eq!(runtime.env().as_ref().unwrap()[1], "FOO=bar");
    assert_eq!(runtime.working_dir().as_deref(), Some("/work"));
    assert_eq!(runtime.labels().as_ref().unwrap()["a.label"], "1");

    let layer = tar_files(layer_bytes);
    assert_eq!(layer["app.wasm"], b"\0asm\x01\0\0\0");
    assert_eq!(layer["etc/greeting"], b"hi\n");
}

#[test]
fn wasm_platforms_are_recorded() {
    for (os, arch) in [("wasi", "wasm"), ("wasip1", "wasm")] {
        let image = sample((os, arch)).build().unwrap();
        let files: BTreeMap<String, Vec<u8>> =
            image.layout().files().unwrap().into_iter().collect();
        let config: ImageConfiguration =
            serde_json::from_slice(blob(&files, image.config_digest())).unwrap();
        assert_eq!(config.os().to_string(), os);
        assert_eq!(config.architecture().to_string(), arch);
        let platform = image.manifest_descriptor().platform().as_ref().unwrap();
        assert_eq!(platform.os().to_string(), os);
    }
}

#[test]
fn setter_errors_surface_at_build() {
    assert!(sample(("linux", "arm64")).build().is_err());
    assert!(sample(("linux", "amd64"))
        .file("../x", b"".to_vec(), 0o644)
        .build()
        .is_err());
    assert!(ImageBuilder::new("has space").build().is_err());
}

#[test]
fn directory_layout_matches_tar() {
    let dir = std::env::temp_dir().join(format!("wasmbox-image-test-{}", std::process::id()));
    let image = sample(("linux", "amd64")).build().unwrap();
    image.write_dir(&dir).unwrap();
    let index = std::fs::read(dir.join("index.json")).unwrap();
    let hex = image.manifest_digest().trim_start_matches("sha256:");
    let manifest = std::fs::read(dir.join("blobs/sha256").join(hex)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let files: BTreeMap<String, Vec<u8>> = image.layout().files().unwrap().into_iter().collect();
    assert_eq!(index, files["index.json"]);
    assert_eq!(sha256_hex(&manifest), hex);
}
