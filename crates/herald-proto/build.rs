//! Generates the `herald.v1` messages, client and server from `proto/` with protox (a pure-Rust
//! protobuf compiler, so no `protoc` is needed), and saves the encoded descriptor set for gRPC
//! server reflection.

use std::path::PathBuf;

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = manifest_dir.join("../../proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    println!("cargo:rerun-if-changed={}", proto_dir.display());
    let file_descriptor_set = protox::compile(
        ["herald/v1/subscriptions.proto", "herald/v1/events.proto"],
        [&proto_dir],
    )?;
    for file in &file_descriptor_set.file {
        if let Some(name) = &file.name
            && !name.starts_with("google/")
        {
            println!("cargo:rerun-if-changed={}", proto_dir.join(name).display());
        }
    }

    std::fs::write(
        out_dir.join("herald_v1_descriptor.bin"),
        file_descriptor_set.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Ordered maps keep attribute filters in a stable order, in answers and in CLI output.
        .btree_map(".")
        .compile_fds(file_descriptor_set)?;
    Ok(())
}
