//! The wasm an image would run under wasmbox, found from containerd's content store alone (no
//! container, no unpacked rootfs): a Wasm OCI image's wasm layer, or the file its config's
//! entrypoint names (resolved as the shim resolves `args[0]`: `#func` suffix, `PATH`, working
//! directory), read from the layer tars.

use oci_spec::image::ImageConfiguration;
use wasmbox_wasm::compile::entrypoint::{search_paths, wasm_binary, EntrypointRef};
use wasmbox_wasm::compile::kind::{classify, describe_head, FileKind};

use super::layers::{find_file, LayerError};
use crate::artifact::select::{self, BlobRef, BlobSource, JSON_LIMIT};
use crate::artifact::ArtifactError;

/// The wasm of an image, ready to compile.
#[derive(Debug)]
pub struct ImageWasm {
    /// Where it was found, for the log: the file's path or the layer's digest.
    pub origin: String,
    pub kind: FileKind,
    /// Binary wasm (WAT already converted).
    pub wasm: Vec<u8>,
}

/// What an image turned out to hold.
#[derive(Debug)]
pub enum Found {
    Wasm(ImageWasm),
    /// Nothing to compile, and why (a native image, no entrypoint...).
    Nothing(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Blob(#[from] ArtifactError),
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error("image {image}: {message}")]
    Invalid { image: String, message: String },
}

/// Which images to look into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every image named: a one-shot compile the user asked for.
    Any,
    /// Images that say they are wasm (platform `wasm`/`wasi*`, or an entrypoint named `*.wasm`
    /// or `*.wat`): the event watcher, which must not unpack every native image pulled.
    LooksWasm,
}

/// The wasm image `image` (whose target descriptor is `target`) would run.
pub fn wasm_of_image(
    source: &mut dyn BlobSource,
    image: &str,
    target: &BlobRef,
    scope: Scope,
) -> Result<Found, ImageError> {
    if let Some(selected) = select::wasm_entrypoint_layer(source, image, target)? {
        let bytes = source.read(&selected.layer, "wasm layer", select::WASM_LIMIT)?;
        let (kind, wasm) = crate::artifact::decode_layer(bytes).map_err(|reason| ImageError::Invalid {
            image: image.to_string(),
            message: format!("wasm layer {} {reason}", selected.layer.digest),
        })?;
        return Ok(Found::Wasm(ImageWasm {
            origin: format!("layer {}", selected.layer.digest),
            kind,
            wasm,
        }));
    }
    let Some((_, manifest)) = select::first_manifest(source, image, target)? else {
        return Ok(Found::Nothing("no manifest for this platform".into()));
    };
    let config_ref = BlobRef::from(manifest.config());
    let bytes = source.read(&config_ref, "image config", JSON_LIMIT)?;
    let config: ImageConfiguration = select::parse(image, "image config", &config_ref.digest, &bytes)?;
    let process = config.config().clone().unwrap_or_default();
    let mut args: Vec<String> = process.entrypoint().clone().unwrap_or_default();
    args.extend(process.cmd().clone().unwrap_or_default());
    let Some(arg0) = args.first().filter(|a| !a.is_empty()) else {
        return Ok(Found::Nothing("the image config names no entrypoint".into()));
    };
    let platform = format!("{}/{}", config.os(), config.architecture());
    if scope == Scope::LooksWasm && !looks_wasm(&platform, arg0) {
        return Ok(Found::Nothing(format!("not a wasm image (platform {platform}, entrypoint {arg0})")));
    }
    let env = process.env().clone().unwrap_or_default();
    let cwd = process.working_dir().clone().filter(|d| !d.is_empty()).unwrap_or_else(|| "/".into());
    let layers: Vec<BlobRef> = manifest.layers().iter().map(BlobRef::from).collect();
    for candidate in EntrypointRef::candidates(arg0) {
        for path in search_paths(&candidate.path, &env, &cwd) {
            let Some(bytes) = find_file(source, &layers, &path)? else {
                continue;
            };
            return wasm_file(image, path, bytes);
        }
    }
    Ok(Found::Nothing(format!("entrypoint {arg0} is not in the image's layers")))
}

fn looks_wasm(platform: &str, arg0: &str) -> bool {
    let (os, arch) = platform.split_once('/').unwrap_or((platform, ""));
    let path = arg0.rsplit_once('#').map_or(arg0, |(p, _)| p);
    arch == "wasm" || os.starts_with("wasi") || path.ends_with(".wasm") || path.ends_with(".wat")
}

fn wasm_file(image: &str, path: String, bytes: Vec<u8>) -> Result<Found, ImageError> {
    let kind = classify(&path, &bytes);
    if kind == FileKind::Native {
        let head = &bytes[..bytes.len().min(16)];
        return Ok(Found::Nothing(format!("entrypoint {path} is not wasm ({}): it runs natively", describe_head(head))));
    }
    // As the shim reads an entrypoint file: WAT converted, an unknown version refused.
    let (kind, wasm) = wasm_binary(&path, kind, bytes).map_err(|e| ImageError::Invalid {
        image: image.to_string(),
        message: e.to_string(),
    })?;
    Ok(Found::Wasm(ImageWasm { origin: path, kind, wasm }))
}

#[cfg(test)]
mod tests {
    use wasmbox_image::{BuiltImage, ImageBuilder, WasmApp, WasmForm, WasmImageBuilder};

    use super::*;
    use crate::artifact::select::test_store::Store;

    const MODULE: &[u8] = b"\0asm\x01\0\0\0";

    fn found(image: &BuiltImage, scope: Scope) -> Found {
        let target = BlobRef::from(image.manifest_descriptor());
        wasm_of_image(&mut Store::of(image), image.reference(), &target, scope).unwrap()
    }

    #[test]
    fn the_entrypoint_file_through_path_and_cmd() {
        let image = ImageBuilder::new("p:1")
            .file("/usr/local/bin/app.wasm", MODULE.to_vec(), 0o755)
            .cmd(["app.wasm#run", "--flag"])
            .build()
            .unwrap();
        let Found::Wasm(w) = found(&image, Scope::LooksWasm) else { panic!("no wasm found") };
        assert_eq!((w.origin.as_str(), w.kind, w.wasm.as_slice()), ("/usr/local/bin/app.wasm", FileKind::Module, MODULE));
    }

    #[test]
    fn wat_is_converted_and_the_layer_form_is_read() {
        let image = ImageBuilder::new("w:1")
            .file("/app/main.wat", b"(module)".to_vec(), 0o644)
            .working_dir("/app")
            .entrypoint(["./main.wat"])
            .build()
            .unwrap();
        let Found::Wasm(w) = found(&image, Scope::LooksWasm) else { panic!("no wasm found") };
        assert_eq!(w.wasm, MODULE);
        let app = WasmApp::from_bytes("hello.wasm", MODULE.to_vec()).unwrap();
        let image = WasmImageBuilder::new("a:1", WasmForm::Artifact, app).build().unwrap();
        let Found::Wasm(w) = found(&image, Scope::LooksWasm) else { panic!("no wasm layer found") };
        assert!(w.origin.starts_with("layer sha256:"), "{}", w.origin);
    }

    #[test]
    fn native_images_are_left_alone() {
        let image = ImageBuilder::new("n:1")
            .file("/bin/server", b"\x7fELF\x02\x01".to_vec(), 0o755)
            .entrypoint(["/bin/server"])
            .build()
            .unwrap();
        let Found::Nothing(why) = found(&image, Scope::LooksWasm) else { panic!("native image compiled") };
        assert!(why.contains("not a wasm image"), "{why}");
        let Found::Nothing(why) = found(&image, Scope::Any) else { panic!("native image compiled") };
        assert!(why.contains("runs natively"), "{why}");
        let image = ImageBuilder::new("e:1").file("/x", b"".to_vec(), 0o644).build().unwrap();
        assert!(matches!(found(&image, Scope::Any), Found::Nothing(_)));
    }

    #[test]
    fn what_looks_like_wasm() {
        assert!(looks_wasm("wasip1/wasm", "/x"));
        assert!(looks_wasm("wasi/wasm32", "x"));
        assert!(looks_wasm("linux/amd64", "/app.wasm#run"));
        assert!(!looks_wasm("linux/amd64", "/bin/sh"));
    }
}
