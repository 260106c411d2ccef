//! OCI Wasm images built by the project's own tool (`wasmbox image build`), through a real
//! registry and back, run by the shim:
//! - compat images (a filesystem layer holding the module): every containerd, also with
//!   platform wasi/wasm;
//! - wasm-layer images (standard config, `application/wasm` layer, read by the shim from
//!   containerd's content store): containerd 1.7 and 2.x; containerd 1.6 before 1.6.25 refuses
//!   to store them ("mismatched image rootfs and manifest layers") before the shim is asked;
//! - the CNCF Wasm artifact (config `application/vnd.wasm.config.v0+json`), pushed with oras:
//!   containerd stores it (1.7, 2.x) but `ctr run` refuses its config media type before any
//!   shim is asked.

use std::path::{Path, PathBuf};

use wasmbox_integration::containerd::Containerd;
use wasmbox_integration::registry::Registry;
use wasmbox_integration::suite::{assert_clean, start};
use wasmbox_integration::tools::{self, Version};
use wasmbox_integration::{guests, ids, require_integration, RunSpec};

/// What containerd 1.6 before 1.6.25 says about any image with wasm layers.
const OLD_CONTAINERD_REFUSAL: &str = "mismatched image rootfs and manifest layers";
/// What `ctr run` (1.7, 2.x) says about the CNCF artifact's config.
const ARTIFACT_CONFIG_REFUSAL: &str =
    "unknown image config media type application/vnd.wasm.config.v0+json";

fn version() -> Version {
    tools::containerd_version().unwrap_or_else(|e| panic!("containerd version: {e:#}"))
}

/// Writes `bytes` as `<work>/<name>` for the tool to read.
fn app_file(containerd: &Containerd, name: &str, bytes: &[u8]) -> PathBuf {
    let path = containerd.paths().work.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `wasmbox image build --format FORMAT -t REFERENCE [extra] APP` into `<work>/<file>.tar`.
fn build(
    containerd: &Containerd,
    format: &str,
    reference: &str,
    app: &Path,
    extra: &[&str],
) -> PathBuf {
    let out = containerd
        .paths()
        .work
        .join(format!("image-{}.tar", ids::container_id(format)));
    tools::build_image(format, reference, app, &out, extra).unwrap_or_else(|e| panic!("{e:#}"));
    out
}

fn content_digests(containerd: &Containerd) -> Vec<String> {
    containerd
        .ctr_ok(["content", "ls", "-q"])
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// Pushes `reference` to the registry, removes it (and its content) locally, pulls it back.
/// `wasm_digest` must be gone after the removal, so the run that follows used the registry's copy.
fn push_remove_pull(
    containerd: &Containerd,
    reference: &str,
    pull_flags: &[&str],
    wasm_digest: &str,
) {
    containerd
        .ctr_ok(["image", "push", "--plain-http", reference])
        .unwrap();
    containerd
        .ctr_ok(["image", "rm", "--sync", reference])
        .unwrap();
    assert!(!containerd
        .image_names()
        .unwrap()
        .contains(&reference.to_string()));
    assert!(
        !content_digests(containerd).contains(&wasm_digest.to_string()),
        "the wasm is still in the content store after image rm --sync"
    );
    let mut args = vec!["image", "pull", "--plain-http"];
    args.extend_from_slice(pull_flags);
    args.push(reference);
    containerd.ctr_ok(args).unwrap();
}

#[test]
fn the_tool_is_reproducible_and_refuses_machine_code() {
    require_integration!();
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("hello.wasm");
    std::fs::write(&app, &*guests::hello().unwrap()).unwrap();
    for format in ["compat", "wasm", "artifact"] {
        let (a, b) = (dir.path().join("a.tar"), dir.path().join("b.tar"));
        tools::build_image(
            format,
            "localhost:5000/wasmbox/hello:v1",
            &app,
            &a,
            &["--annotation", "k=v"],
        )
        .unwrap();
        tools::build_image(
            format,
            "localhost:5000/wasmbox/hello:v1",
            &app,
            &b,
            &["--annotation", "k=v"],
        )
        .unwrap();
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{format}: two builds differ"
        );
    }

    // Wasmtime's precompiled modules are ELF files; so are native programs.
    let cwasm = dir.path().join("app.cwasm");
    std::fs::write(&cwasm, b"\x7fELF\x02\x01\x01\0precompiled").unwrap();
    let not_wasm = dir.path().join("script.wasm");
    std::fs::write(&not_wasm, b"#!/bin/sh\necho hi\n").unwrap();
    for (input, expected) in [
        (&cwasm, "precompiled"),
        (&not_wasm, "neither a wasm binary nor valid WAT"),
    ] {
        let out = dir.path().join("refused.tar");
        let err = tools::build_image("wasm", "r:1", input, &out, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "{err}");
        assert!(!out.exists(), "a refused build left {}", out.display());
    }
}

#[test]
fn compat_image_round_trips_through_a_registry() {
    require_integration!();
    let containerd = start();
    let registry = Registry::start().unwrap();
    let hello = guests::hello().unwrap();
    let reference = registry.reference("wasmbox/hello-compat:v1");
    let tar = build(
        &containerd,
        "compat",
        &reference,
        &app_file(&containerd, "hello.wasm", &hello),
        &[],
    );
    containerd.import(&tar).unwrap();

    push_remove_pull(&containerd, &reference, &[], &sha256(&hello));
    let id = ids::container_id("compat-pulled");
    let out = containerd.run_rm(&reference, &id, &[]).unwrap();

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "hello from wasm\n");
    assert_clean(&containerd, &id);
}

#[test]
fn compat_image_for_platform_wasi_wasm_runs() {
    require_integration!();
    let containerd = start();
    let reference = ids::image_ref("compat-wasi");
    let app = app_file(&containerd, "hello.wasm", &guests::hello().unwrap());
    let tar = build(
        &containerd,
        "compat",
        &reference,
        &app,
        &["--platform", "wasi/wasm"],
    );
    containerd
        .import_with(&tar, &["--platform", "wasi/wasm"])
        .unwrap();
    let id = ids::container_id("compat-wasi");

    let out = containerd
        .run(&RunSpec::new(&reference, &id).flag("--platform=wasi/wasm"))
        .unwrap();

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "hello from wasm\n");
    assert_clean(&containerd, &id);
}

#[test]
fn wasm_layer_image_round_trips_through_a_registry() {
    require_integration!();
    let containerd = start();
    let registry = Registry::start().unwrap();
    let module = guests::args_env().unwrap();
    let reference = registry.reference("wasmbox/args-env-wasm:v1");
    let app = app_file(&containerd, "args_env.wasm", &module);
    let tar = build(
        &containerd,
        "wasm",
        &reference,
        &app,
        &[
            "--arg",
            "one",
            "--arg",
            "two words",
            "--env",
            "IMAGE_VAR=from-image",
        ],
    );
    let imported = containerd.import_with(&tar, &["--platform", "wasip1/wasm"]);
    let version = version();
    if !version.stores_wasm_layers() {
        let err = format!("{:#}", imported.unwrap_err());
        assert!(err.contains(OLD_CONTAINERD_REFUSAL), "{err}");
        wasmbox_integration::settings::skip(&format!("the rest: containerd {version} cannot store wasm layers ({OLD_CONTAINERD_REFUSAL}); the shim is never asked"));
        return;
    }
    imported.unwrap();

    push_remove_pull(
        &containerd,
        &reference,
        &["--platform", "wasip1/wasm"],
        &sha256(&module),
    );
    let id = ids::container_id("wasm-pulled");
    let out = containerd
        .run(
            &RunSpec::new(&reference, &id)
                .flag("--platform=wasip1/wasm")
                .env("FOO", "bar"),
        )
        .unwrap();

    assert_eq!(
        out.code,
        0,
        "{out:?}\n{}",
        containerd.log_lines_mentioning(&id)
    );
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines.first().copied(),
        Some("arg[0]=/args_env.wasm"),
        "{out:?}"
    );
    assert!(lines.contains(&"arg[1]=one"), "{out:?}");
    assert!(lines.contains(&"arg[2]=two words"), "{out:?}");
    assert!(lines.contains(&"env IMAGE_VAR=from-image"), "{out:?}");
    assert!(lines.contains(&"env FOO=bar"), "{out:?}");
    assert!(
        containerd.log().contains(&format!(
            "container {id}: wasm entrypoint from image {reference}"
        )),
        "the shim did not read the layer from the content store"
    );
    assert_clean(&containerd, &id);
}

#[test]
fn wasm_layer_component_runs() {
    require_integration!();
    let version = version();
    if !version.stores_wasm_layers() {
        wasmbox_integration::settings::skip(&format!("containerd {version} cannot store wasm layers ({OLD_CONTAINERD_REFUSAL})"));
        return;
    }
    let containerd = start();
    let reference = ids::image_ref("component-wasm");
    let app = app_file(
        &containerd,
        "hello-component.wasm",
        &guests::component_hello().unwrap(),
    );
    let tar = build(&containerd, "wasm", &reference, &app, &[]);
    containerd
        .import_with(&tar, &["--platform", "wasip2/wasm"])
        .unwrap();
    let id = ids::container_id("component-wasm");

    let out = containerd
        .run(&RunSpec::new(&reference, &id).flag("--platform=wasip2/wasm"))
        .unwrap();

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "hello from component\n");
    assert_clean(&containerd, &id);
}

#[test]
fn wasm_layer_image_for_linux_amd64_needs_no_platform_flags() {
    require_integration!();
    let version = version();
    if !version.stores_wasm_layers() {
        wasmbox_integration::settings::skip(&format!("containerd {version} cannot store wasm layers ({OLD_CONTAINERD_REFUSAL})"));
        return;
    }
    let containerd = start();
    let reference = ids::image_ref("wasm-amd64");
    let app = app_file(&containerd, "hello.wasm", &guests::hello().unwrap());
    // For clients that only pull and run the host's platform (ctr without --platform, CRI).
    // `#_start` names the export to call, as `path#func` does for files.
    let tar = build(
        &containerd,
        "wasm",
        &reference,
        &app,
        &[
            "--platform",
            "linux/amd64",
            "--entrypoint",
            "/greeter.wasm#_start",
        ],
    );
    containerd.import(&tar).unwrap();
    let id = ids::container_id("wasm-amd64");

    let out = containerd.run_rm(&reference, &id, &[]).unwrap();

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "hello from wasm\n");
    assert_clean(&containerd, &id);
}

#[test]
fn cncf_artifact_round_trips_with_oras() {
    require_integration!();
    let containerd = start();
    let registry = Registry::start().unwrap();
    let hello = guests::hello().unwrap();
    let reference = registry.reference("wasmbox/hello-artifact:v1");
    let tar = build(
        &containerd,
        "artifact",
        &reference,
        &app_file(&containerd, "hello.wasm", &hello),
        &[],
    );

    // Push from the OCI layout tarball itself; the tag comes from its index.
    let oras = tools::oras();
    let source = format!("{}:v1", tar.display());
    let pushed = tools::run_ok(&oras, &["cp", "--from-oci-layout", &source, "--to-plain-http", &reference])
        .unwrap_or_else(|e| panic!("{e:#}\n(oras comes from test/scripts/fetch-debian-package.sh sid oras; set WASMBOX_ORAS)"));
    let manifest =
        tools::run_ok(&oras, &["manifest", "fetch", "--plain-http", &reference]).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"], "application/vnd.wasm.config.v0+json",
        "{pushed}"
    );
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    assert_eq!(manifest["layers"][0]["digest"], sha256(&hello));
    let pulled = tempfile::tempdir().unwrap();
    let out_dir = pulled.path().to_string_lossy().into_owned();
    tools::run_ok(&oras, &["pull", "--plain-http", "-o", &out_dir, &reference]).unwrap();
    assert_eq!(
        std::fs::read(pulled.path().join("hello.wasm")).unwrap(),
        *hello
    );

    // containerd: pull it, then try to run it.
    let pull = containerd
        .ctr([
            "image",
            "pull",
            "--plain-http",
            "--platform",
            "wasip1/wasm",
            &reference,
        ])
        .unwrap();
    let version = version();
    if !version.stores_wasm_layers() {
        assert!(!pull.status.success());
        assert!(
            pull.stderr_text().contains(OLD_CONTAINERD_REFUSAL),
            "{}",
            pull.stderr_text()
        );
        wasmbox_integration::settings::skip(&format!("the rest: containerd {version} cannot store wasm layers ({OLD_CONTAINERD_REFUSAL})"));
        return;
    }
    assert!(pull.status.success(), "{}", pull.stderr_text());
    let id = ids::container_id("artifact");
    let out = containerd
        .run(&RunSpec::new(&reference, &id).flag("--platform=wasip1/wasm"))
        .unwrap();
    // containerd refuses the CNCF config itself, before any shim is started: the runnable
    // form (`--format wasm`) is what containerd runs.
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains(ARTIFACT_CONFIG_REFUSAL), "{out:?}");
    eprintln!("note: containerd {version} stores the CNCF artifact but refuses to run it: {ARTIFACT_CONFIG_REFUSAL}");
    assert_clean(&containerd, &id);
}

/// A runnable-form image whose wasm layer holds `layer` as is (the tool refuses such input, so
/// the layout is assembled here).
fn raw_wasm_layer_image(reference: &str, layer: &[u8]) -> wasmbox_image::LayoutWriter {
    use oci_spec::image::MediaType;
    use wasmbox_image::{to_canonical_vec, Blob, LayoutWriter};
    let mut layout = LayoutWriter::new();
    let layer = layout
        .add_blob(Blob::new(
            MediaType::Other("application/wasm".into()),
            layer.to_vec(),
        ))
        .unwrap();
    let config = serde_json::json!({
        "architecture": "wasm", "os": "wasip1",
        "config": {"Entrypoint": ["/app.wasm"]},
        "rootfs": {"type": "layers", "diff_ids": []},
    });
    let config = layout
        .add_blob(Blob::new(
            MediaType::ImageConfig,
            to_canonical_vec(&config).unwrap(),
        ))
        .unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config,
        "layers": [layer],
    });
    let mut descriptor = layout
        .add_blob(Blob::new(
            MediaType::ImageManifest,
            to_canonical_vec(&manifest).unwrap(),
        ))
        .unwrap();
    descriptor.set_platform(Some(
        wasmbox_image::Platform::parse("wasip1/wasm")
            .unwrap()
            .to_oci()
            .unwrap(),
    ));
    descriptor.set_annotations(Some(
        [
            (
                "io.containerd.image.name".to_string(),
                reference.to_string(),
            ),
            (
                "org.opencontainers.image.ref.name".to_string(),
                "latest".to_string(),
            ),
        ]
        .into(),
    ));
    layout.add_manifest(descriptor);
    layout
}

#[test]
fn wasm_layers_holding_machine_code_or_other_content_are_refused() {
    require_integration!();
    let version = version();
    if !version.stores_wasm_layers() {
        wasmbox_integration::settings::skip(&format!("containerd {version} cannot store wasm layers ({OLD_CONTAINERD_REFUSAL})"));
        return;
    }
    let containerd = start();
    let cases: [(&str, &[u8], &str); 2] = [
        (
            "cwasm",
            b"\x7fELF\x02\x01\x01\0precompiled machine code",
            "ELF machine code",
        ),
        (
            "text",
            b"just some text, not WAT",
            "is not a wasm module, component or WAT text",
        ),
    ];
    for (name, layer, expected) in cases {
        let reference = ids::image_ref(&format!("bad-layer-{name}"));
        let tar = containerd.paths().work.join(format!("bad-{name}.tar"));
        raw_wasm_layer_image(&reference, layer)
            .write_tar(std::fs::File::create(&tar).unwrap())
            .unwrap();
        containerd
            .import_with(&tar, &["--platform", "wasip1/wasm"])
            .unwrap();
        let id = ids::container_id(&format!("bad-layer-{name}"));

        let out = containerd
            .run(&RunSpec::new(&reference, &id).flag("--platform=wasip1/wasm"))
            .unwrap();

        assert_ne!(out.code, 0, "{out:?}");
        assert!(out.stderr.contains(expected), "{name}: {out:?}");
        assert_clean(&containerd, &id);
    }
}
