//! Compiles `proto/model/v1/model.proto` with protox (a Rust protobuf compiler, so no `protoc`
//! is needed) and generates the tonic server and client.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = "../proto";
    let proto = "../proto/model/v1/model.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], [proto_dir])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
