//! ipvnet: ipvlan networking for OCI containers.
//!
//! One library owns the logic; the `ipvnet` binary (CLI, OCI hook, NRI plugin)
//! and `ipvnet-runc` are thin frontends over it.

pub mod annotations;
pub mod attach;
pub mod commands;
pub mod error;
pub mod ipam;
pub mod netlink;
pub mod netns;
pub mod network;
pub mod oci;
pub mod runtime_wrapper;
pub mod store;
pub mod timing;

pub use error::{Context, Error, Result};
