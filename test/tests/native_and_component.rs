//! The wasmbox runtime also runs native static ELFs (exec in the container), WASI preview2
//! components and WASI 0.3 components.

use wasmbox_integration::suite::{assert_clean, import_compat, start};
use wasmbox_integration::{guests, ids, image, require_integration};

#[test]
fn native_static_elf_runs() {
    require_integration!();
    let containerd = start();
    let elf = guests::native_hello().unwrap();
    let image = containerd
        .import_image(image::native_image(&ids::image_ref("native"), &elf))
        .unwrap();
    let id = ids::container_id("native");

    let out = containerd.run_rm(&image, &id, &[]).unwrap();

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "hello from native\n");
    assert_clean(&containerd, &id);
}

#[test]
fn component_prints_its_output() {
    require_integration!();
    let containerd = start();
    let image = import_compat(
        &containerd,
        "component",
        &guests::component_hello().unwrap(),
    );
    let id = ids::container_id("component");

    let out = containerd.run_rm(&image, &id, &[]).unwrap();

    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "hello from component\n");
    assert_clean(&containerd, &id);
}

#[test]
fn wasi_0_3_command_gets_its_args_prints_and_exits_with_its_code() {
    require_integration!();
    let containerd = start();
    let image = import_compat(&containerd, "p3-args", &guests::p3_args().unwrap());
    let id = ids::container_id("p3-args");

    let out = containerd.run_rm(&image, &id, &["/app.wasm", "one", "two words"]).unwrap();

    // The exit status is the argument count: what `exit-with-code` says reaches containerd.
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout, "hello from wasi 0.3\n/app.wasm\none\ntwo words\n");
    assert_clean(&containerd, &id);
}
