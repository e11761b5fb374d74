//! Generates the protobuf messages and ttrpc services of `proto/nri.proto`
//! into OUT_DIR with pure-Rust code generation (no protoc binary needed).

fn main() {
    let out_dir = std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo");
    println!("cargo:rerun-if-changed=proto/nri.proto");
    println!("cargo:rerun-if-changed=build.rs");
    ttrpc_codegen::Codegen::new()
        .out_dir(&out_dir)
        .inputs(["proto/nri.proto"])
        .include("proto")
        .rust_protobuf()
        .customize(ttrpc_codegen::Customize {
            async_all: true,
            ..Default::default()
        })
        .run()
        .expect("generating Rust code from proto/nri.proto failed");

    // The generated files start with inner attributes and `//!` docs, which
    // `include!` does not accept: strip them (lib.rs puts the lint allowances
    // on the enclosing modules instead).
    for name in ["nri", "nri_ttrpc"] {
        let src = std::path::Path::new(&out_dir).join(format!("{name}.rs"));
        let text = std::fs::read_to_string(&src).expect("generated file is readable");
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with("#!") && !l.starts_with("//!"))
            .collect();
        let dst = std::path::Path::new(&out_dir).join(format!("gen_{name}.rs"));
        std::fs::write(dst, kept.join("\n")).expect("OUT_DIR is writable");
    }
}
