//! Generates the Kubernetes CRI v1 client (`runtime.v1`) from the vendored `proto/`, with the
//! same tonic/prost line and generator settings `containerd-client` uses, so the workspace
//! builds tonic once.

fn main() {
    println!("cargo:rerun-if-changed=proto/runtime/v1/api.proto");
    tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&["proto/runtime/v1/api.proto"], &["proto"])
        .expect("generating the CRI client from proto/runtime/v1/api.proto");
}
