//! A library for writing NRI (Node Resource Interface) plugins for containerd
//! and CRI-O in Rust.
//!
//! It provides:
//! - [`mux`]: the NRI socket multiplexer (several ttrpc connections over one
//!   socket), each logical connection a tokio `AsyncRead + AsyncWrite`;
//! - [`api`]: the NRI protobuf messages (generated at build time from
//!   `proto/nri.proto` by pure-Rust code generation) and [`generated`] for the
//!   ttrpc service bindings;
//! - the plugin lifecycle: implement [`Plugin`], then call [`run`], which
//!   connects, registers (RegisterPlugin with name and two-digit index),
//!   answers Configure with the plugin's [`EventMask`], Synchronize, and the
//!   events until Shutdown or disconnection.
//!
//! Both launch modes are supported: an external plugin connects to the
//! runtime's socket ([`Options::new`], default [`DEFAULT_SOCKET_PATH`]); a
//! pre-registered plugin (an executable `/opt/nri/plugins/NN-name` started
//! by the runtime with the socket on an inherited fd) is detected by
//! [`Options::from_env`].
//!
//! Callbacks are blocking functions run on a blocking thread, so a plugin
//! needs no async code. The library logs through the `log` crate and never
//! writes to stdout.
//!
//! Methods of the runtime's Plugin service that this library does not know
//! (newer runtimes' dedicated RunPodSandbox, StopPodSandbox, ... calls)
//! are answered UNIMPLEMENTED (gRPC code 12), on which the runtime falls
//! back to the StateChange call that this library dispatches to
//! [`Plugin::run_pod_sandbox`] and friends.
//!
//! # Example
//!
//! ```no_run
//! use nri::api::PodSandbox;
//! use nri::{BoxError, Config, EventMask, Options, Plugin};
//!
//! struct PodWatcher;
//!
//! impl Plugin for PodWatcher {
//!     fn configure(&self, _config: &Config) -> Result<EventMask, BoxError> {
//!         Ok(EventMask::POD_EVENTS)
//!     }
//!
//!     fn run_pod_sandbox(&self, pod: &PodSandbox) -> Result<(), BoxError> {
//!         let netns = nri::pod_namespace(pod, "network").unwrap_or("none");
//!         log::info!("pod {}/{} starts, netns {netns}", pod.namespace, pod.name);
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> Result<(), nri::Error> {
//!     // Pre-registered (started by containerd) or external.
//!     let opts = Options::from_env().unwrap_or_else(|| Options::new("podwatcher", "50"));
//!     nri::run(PodWatcher, opts)
//! }
//! ```

pub mod mux;
mod plugin;

/// Code generated from `proto/nri.proto` at build time: `nri` holds the
/// messages (also re-exported as [`api`]), `nri_ttrpc` the ttrpc clients and
/// service traits (`RuntimeClient`, `PluginClient`, `create_plugin`,
/// `create_runtime`).
#[allow(
    clippy::all,
    dead_code,
    missing_docs,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    trivial_casts,
    unused_attributes,
    unused_imports,
    unused_mut,
    unused_results,
    unsafe_code,
    unknown_lints
)]
pub mod generated {
    pub mod nri {
        include!(concat!(env!("OUT_DIR"), "/gen_nri.rs"));
    }
    pub mod nri_ttrpc {
        include!(concat!(env!("OUT_DIR"), "/gen_nri_ttrpc.rs"));
    }
}

/// The NRI API messages (package `nri.pkg.api.v1alpha1`), e.g.
/// [`api::PodSandbox`], [`api::Container`], [`api::ContainerAdjustment`].
pub use generated::nri as api;

pub use plugin::{
    run, run_async, serve, BoxError, Config, EventMask, Options, Plugin, RuntimeHandle,
    DEFAULT_REGISTRATION_TIMEOUT, DEFAULT_SOCKET_PATH, ENV_PLUGIN_IDX, ENV_PLUGIN_NAME,
    ENV_PLUGIN_SOCKET,
};

/// Errors of the plugin lifecycle.
#[derive(Debug)]
pub enum Error {
    /// Name or index invalid, or the inherited socket fd is unusable.
    InvalidOptions(String),
    /// Socket or runtime setup failure.
    Io(std::io::Error),
    /// RegisterPlugin failed (rejected, or no answer in time).
    Registration(String),
    /// A ttrpc call failed.
    Ttrpc(ttrpc::Error),
    /// The runtime closed the connection without a Shutdown request.
    Disconnected,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::InvalidOptions(m) => write!(f, "invalid NRI plugin options: {m}"),
            Error::Io(e) => write!(f, "NRI I/O error: {e}"),
            Error::Registration(m) => write!(f, "NRI plugin registration failed: {m}"),
            Error::Ttrpc(e) => write!(f, "NRI ttrpc error: {e}"),
            Error::Disconnected => write!(f, "NRI runtime closed the connection"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io(e) => Some(e),
            Error::Ttrpc(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<ttrpc::Error> for Error {
    fn from(e: ttrpc::Error) -> Self {
        Error::Ttrpc(e)
    }
}

/// The path of the pod's namespace of type `ns_type` ("network", "ipc",
/// "uts", ...) from `pod.linux.namespaces`, if the runtime sent one (it does
/// for RunPodSandbox, not for Stop/RemovePodSandbox).
pub fn pod_namespace<'a>(pod: &'a api::PodSandbox, ns_type: &str) -> Option<&'a str> {
    pod.linux
        .as_ref()?
        .namespaces
        .iter()
        .find(|ns| ns.type_ == ns_type && !ns.path.is_empty())
        .map(|ns| ns.path.as_str())
}
