//! The wasmbox runtime also runs native static ELFs (exec in the container) and WASI preview2
//! components (WASI 0.3 ones: wasi_p3.rs).

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
