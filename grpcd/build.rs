// Generates the tonic service from proto/hftlab/v1/hftlab.proto. protoc comes from the
// protoc-bin-vendored crate, so nothing has to be installed on the build machine.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_client(false)
        // decode errors -> INVALID_ARGUMENT (tonic_prost's codec says INTERNAL), see src/codec.rs
        .codec_path("crate::codec::StrictCodec")
        // Array payloads as `bytes::Bytes`: decoded as slices of the received buffer (prost's
        // default Vec<u8> copies each array once more on every call), see convert.rs
        .bytes(".hftlab.v1.Vector.data")
        .bytes(".hftlab.v1.Matrix.data")
        .file_descriptor_set_path(out.join("hftlab_descriptor.bin"))
        .compile_protos(&["../proto/hftlab/v1/hftlab.proto"], &["../proto"])?;
    println!("cargo:rerun-if-changed=../proto/hftlab/v1/hftlab.proto");
    Ok(())
}
