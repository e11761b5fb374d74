//! The subcommands of the `ipvnet` binary, one file each; `main.rs` only
//! parses the command line and calls them.

pub mod gc;
pub mod hook;
pub mod lease;
pub mod network;
pub mod nri;
