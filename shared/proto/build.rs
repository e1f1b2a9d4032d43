//! Compiles proto/ once for every service. protoc comes from a crate so a fresh machine needs
//! nothing installed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: a build script is single-threaded, so nothing reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    // Read at run time, not with env!(): cargo may reuse this script's binary for a checkout
    // of the same workspace at another path (the metadata hash ignores the path), and a path
    // baked in at compile time would point at that other checkout's protos.
    let root = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "flowplane/common/v1/common.proto",
        "flowplane/resources/v1/resources.proto",
        "flowplane/identity/v1/identity.proto",
        "flowplane/state/v1/state.proto",
        "flowplane/learning/v1/learning.proto",
        "flowplane/reports/v1/reports.proto",
    ];
    let paths: Vec<_> = files.iter().map(|f| root.join(f)).collect();
    tonic_prost_build::configure().compile_protos(&paths, std::slice::from_ref(&root))?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
