// The hook runs on every container start, and most of a start of the binary
// is the dynamic loader applying ~20,000 relative relocations of a
// position-independent executable. Linked without PIE there are none: under
// QEMU's emulation this cuts the start of `ipvnet hook` by about a third and
// its peak RSS by ~1 MiB (BENCHMARKS.md). The objects stay position
// independent; only the executables are linked at a fixed address (so the
// executable's own text is not randomised by ASLR, as with Go's default
// builds such as the CNI plugins; libraries, heap and stack still are).
fn main() {
    println!("cargo:rustc-link-arg-bins=-no-pie");
}
