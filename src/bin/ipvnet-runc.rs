//! ipvnet-runc: runc-compatible wrapper that adds the ipvnet OCI hooks to
//! bundles annotated with `ipvnet.network`, then execs the real runtime.
//! See src/runtime_wrapper.rs.

fn main() {
    let code = ipvnet::runtime_wrapper::main(std::env::args_os().collect());
    std::process::exit(code);
}
