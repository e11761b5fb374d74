//! Plugin lifecycle: the [`Plugin`] trait, launch [`Options`] and the
//! [`run`] entry points.

use std::os::unix::io::{FromRawFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use protobuf::Enum as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::api::{
    ConfigureRequest, ConfigureResponse, Container, ContainerAdjustment, ContainerEviction,
    ContainerUpdate, CreateContainerRequest, CreateContainerResponse, Empty, Event, LinuxResources,
    PodSandbox, RegisterPluginRequest, StateChangeEvent, StopContainerRequest,
    StopContainerResponse, SynchronizeRequest, SynchronizeResponse, UpdateContainerRequest,
    UpdateContainerResponse, UpdateContainersRequest,
};
use crate::generated::nri_ttrpc;
use crate::mux::{Mux, PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN};
use crate::Error;

/// Error type returned by plugin callbacks. Its message is sent to the
/// runtime (gRPC code UNKNOWN).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Default NRI socket of containerd and CRI-O.
pub const DEFAULT_SOCKET_PATH: &str = "/var/run/nri/nri.sock";
/// Environment variable holding the socket fd of a pre-registered plugin.
pub const ENV_PLUGIN_SOCKET: &str = "NRI_PLUGIN_SOCKET";
/// Environment variable holding the name of a pre-registered plugin.
pub const ENV_PLUGIN_NAME: &str = "NRI_PLUGIN_NAME";
/// Environment variable holding the index of a pre-registered plugin.
pub const ENV_PLUGIN_IDX: &str = "NRI_PLUGIN_IDX";

/// Time allowed for the RegisterPlugin call (the runtime's own registration
/// timeout is 5 s by default).
pub const DEFAULT_REGISTRATION_TIMEOUT: Duration = Duration::from_secs(5);

/// After a Shutdown request, how long to wait for the runtime to close the
/// connection before closing it from this side.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// A set of NRI events, as sent in the ConfigureResponse: bit
/// `1 << (event - 1)` per event. The runtime reads an empty mask (0) as
/// "all events".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EventMask(i32);

impl EventMask {
    /// No event. Note that the runtime treats an empty mask as all events.
    pub const EMPTY: EventMask = EventMask(0);
    /// RunPodSandbox, StopPodSandbox and RemovePodSandbox (0x7).
    pub const POD_EVENTS: EventMask = EventMask(0x7);
    /// Every event understood by all runtime versions (1 to 11).
    pub const ALL: EventMask = EventMask(0x7ff);

    /// The mask with the given events set.
    pub fn from_events(events: &[Event]) -> EventMask {
        let mut m = EventMask::EMPTY;
        for e in events {
            m = m.with(*e);
        }
        m
    }

    /// This mask plus `event`.
    pub fn with(self, event: Event) -> EventMask {
        match Self::bit(event) {
            Some(b) => EventMask(self.0 | b),
            None => self,
        }
    }

    /// Whether `event` is in the mask.
    pub fn contains(self, event: Event) -> bool {
        Self::bit(event).is_some_and(|b| self.0 & b != 0)
    }

    /// The raw mask as sent on the wire.
    pub fn bits(self) -> i32 {
        self.0
    }

    /// A mask from raw bits.
    pub fn from_bits(bits: i32) -> EventMask {
        EventMask(bits)
    }

    fn bit(event: Event) -> Option<i32> {
        let v = event.value();
        (1..=31).contains(&v).then(|| 1i32 << (v - 1))
    }
}

impl std::ops::BitOr for EventMask {
    type Output = EventMask;
    fn bitor(self, rhs: EventMask) -> EventMask {
        EventMask(self.0 | rhs.0)
    }
}

/// What the runtime tells the plugin in the Configure request.
#[derive(Clone, Debug)]
pub struct Config {
    /// Plugin configuration from the runtime (for a pre-registered plugin,
    /// the contents of /etc/nri/conf.d/NN-name.conf); often empty.
    pub config: String,
    /// Runtime name, e.g. "containerd".
    pub runtime_name: String,
    /// Runtime version.
    pub runtime_version: String,
    /// The runtime's request timeout, when it says (newer runtimes). Every
    /// callback must return well within it, or the plugin is disconnected.
    pub request_timeout: Option<Duration>,
    /// The runtime's registration timeout, when it says (newer runtimes).
    pub registration_timeout: Option<Duration>,
    /// Handle to the Runtime service, for unsolicited container updates.
    pub runtime: RuntimeHandle,
}

/// An NRI plugin. Every method has a default that accepts the event and
/// changes nothing, so a plugin implements only what it needs.
///
/// Callbacks are plain blocking functions: the library runs each one on a
/// blocking thread (`tokio::task::spawn_blocking`), so they may do
/// synchronous I/O (netlink, files). They can be called concurrently, hence
/// `Sync`. Each must return within the runtime's request timeout (2 s by
/// default), or the runtime drops the plugin.
///
/// Pod events (RunPodSandbox, StopPodSandbox, RemovePodSandbox) and the
/// container events without a dedicated RPC arrive through the runtime's
/// StateChange call and are dispatched to the matching method here.
pub trait Plugin: Send + Sync + 'static {
    /// Called once after registration; returns the events to subscribe to.
    /// The default subscribes to [`EventMask::ALL`].
    fn configure(&self, config: &Config) -> Result<EventMask, BoxError> {
        let _ = config;
        Ok(EventMask::ALL)
    }

    /// Called once after configuration with every pod and container the
    /// runtime knows; may return updates for existing containers. (Runtimes
    /// that send the state in several messages are handled by the library:
    /// this is called once, with everything.)
    fn synchronize(
        &self,
        pods: &[PodSandbox],
        containers: &[Container],
    ) -> Result<Vec<ContainerUpdate>, BoxError> {
        let _ = (pods, containers);
        Ok(Vec::new())
    }

    /// The runtime is shutting down (Shutdown request). [`run`] returns
    /// `Ok(())` afterwards.
    fn shutdown(&self) {}

    /// A pod sandbox is being started. For containerd this comes after CNI
    /// setup and before the sandbox starts; `pod.linux.namespaces` holds the
    /// network namespace path. An error fails the pod.
    fn run_pod_sandbox(&self, pod: &PodSandbox) -> Result<(), BoxError> {
        let _ = pod;
        Ok(())
    }

    /// A pod sandbox is being stopped. (containerd sends no namespaces here:
    /// remember what you need by pod id.) Errors are only logged by the
    /// runtime.
    fn stop_pod_sandbox(&self, pod: &PodSandbox) -> Result<(), BoxError> {
        let _ = pod;
        Ok(())
    }

    /// A pod sandbox has been removed.
    fn remove_pod_sandbox(&self, pod: &PodSandbox) -> Result<(), BoxError> {
        let _ = pod;
        Ok(())
    }

    /// A container is being created (never called for the sandbox/pause
    /// container); returns adjustments to it (annotations, mounts, env, OCI
    /// hooks, ...). An error fails the container.
    fn create_container(
        &self,
        pod: &PodSandbox,
        container: &Container,
    ) -> Result<ContainerAdjustment, BoxError> {
        let _ = (pod, container);
        Ok(ContainerAdjustment::new())
    }

    /// The container has been created.
    fn post_create_container(
        &self,
        pod: &PodSandbox,
        container: &Container,
    ) -> Result<(), BoxError> {
        let _ = (pod, container);
        Ok(())
    }

    /// The container is being started.
    fn start_container(&self, pod: &PodSandbox, container: &Container) -> Result<(), BoxError> {
        let _ = (pod, container);
        Ok(())
    }

    /// The container has been started.
    fn post_start_container(
        &self,
        pod: &PodSandbox,
        container: &Container,
    ) -> Result<(), BoxError> {
        let _ = (pod, container);
        Ok(())
    }

    /// The container's resources are being updated; may return updates.
    fn update_container(
        &self,
        pod: &PodSandbox,
        container: &Container,
        resources: &LinuxResources,
    ) -> Result<Vec<ContainerUpdate>, BoxError> {
        let _ = (pod, container, resources);
        Ok(Vec::new())
    }

    /// The container's resources have been updated.
    fn post_update_container(
        &self,
        pod: &PodSandbox,
        container: &Container,
    ) -> Result<(), BoxError> {
        let _ = (pod, container);
        Ok(())
    }

    /// The container is being stopped; may return updates for other
    /// containers.
    fn stop_container(
        &self,
        pod: &PodSandbox,
        container: &Container,
    ) -> Result<Vec<ContainerUpdate>, BoxError> {
        let _ = (pod, container);
        Ok(Vec::new())
    }

    /// The container has been removed.
    fn remove_container(&self, pod: &PodSandbox, container: &Container) -> Result<(), BoxError> {
        let _ = (pod, container);
        Ok(())
    }
}

/// How to reach the runtime, and who we are.
#[derive(Clone, Debug)]
pub struct Options {
    /// Plugin name, registered with the runtime.
    pub name: String,
    /// Plugin index: exactly two digits, "00" to "99"; plugins are called in
    /// ascending index order.
    pub idx: String,
    /// Socket path for an external plugin.
    pub socket_path: PathBuf,
    /// Socket fd inherited from the runtime (pre-registered plugin). When
    /// set, [`run`] takes ownership of it and `socket_path` is not used.
    pub socket_fd: Option<RawFd>,
    /// Time allowed for the RegisterPlugin call.
    pub registration_timeout: Duration,
}

impl Options {
    /// Options for an external plugin connecting to [`DEFAULT_SOCKET_PATH`].
    pub fn new(name: impl Into<String>, idx: impl Into<String>) -> Options {
        Options {
            name: name.into(),
            idx: idx.into(),
            socket_path: PathBuf::from(DEFAULT_SOCKET_PATH),
            socket_fd: None,
            registration_timeout: DEFAULT_REGISTRATION_TIMEOUT,
        }
    }

    /// Uses another socket path.
    pub fn with_socket_path(mut self, path: impl Into<PathBuf>) -> Options {
        self.socket_path = path.into();
        self
    }

    /// Detects a pre-registered launch: the runtime started this executable
    /// (/opt/nri/plugins/NN-name) with the socket on the fd named by
    /// `NRI_PLUGIN_SOCKET` and `NRI_PLUGIN_NAME` / `NRI_PLUGIN_IDX` set.
    /// Returns `None` when `NRI_PLUGIN_SOCKET` is absent or not an fd
    /// number. A missing name or index is taken from the executable's file
    /// name "NN-name".
    pub fn from_env() -> Option<Options> {
        let fd: RawFd = std::env::var(ENV_PLUGIN_SOCKET).ok()?.trim().parse().ok()?;
        if fd < 0 {
            return None;
        }
        let (exe_idx, exe_name) = std::env::args_os()
            .next()
            .and_then(|a| {
                let base = std::path::Path::new(&a).file_name()?.to_str()?.to_string();
                split_idx_name(&base)
            })
            .unzip();
        let name = std::env::var(ENV_PLUGIN_NAME)
            .ok()
            .filter(|s| !s.is_empty())
            .or(exe_name)?;
        let idx = std::env::var(ENV_PLUGIN_IDX)
            .ok()
            .filter(|s| !s.is_empty())
            .or(exe_idx)?;
        let mut opts = Options::new(name, idx);
        opts.socket_fd = Some(fd);
        Some(opts)
    }

    /// Checks name and index.
    pub fn validate(&self) -> Result<(), Error> {
        if self.name.is_empty() {
            return Err(Error::InvalidOptions("empty plugin name".into()));
        }
        if !valid_idx(&self.idx) {
            return Err(Error::InvalidOptions(format!(
                "plugin index {:?} is not two digits",
                self.idx
            )));
        }
        Ok(())
    }
}

fn valid_idx(idx: &str) -> bool {
    idx.len() == 2 && idx.bytes().all(|b| b.is_ascii_digit())
}

/// Splits "NN-name" into ("NN", "name").
fn split_idx_name(base: &str) -> Option<(String, String)> {
    let (idx, name) = base.split_once('-')?;
    (valid_idx(idx) && !name.is_empty()).then(|| (idx.to_string(), name.to_string()))
}

/// Handle to the runtime's Runtime service (the plugin is the client).
#[derive(Clone)]
pub struct RuntimeHandle {
    client: nri_ttrpc::RuntimeClient,
    rt: tokio::runtime::Handle,
    timeout: Duration,
}

impl std::fmt::Debug for RuntimeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeHandle").finish_non_exhaustive()
    }
}

impl RuntimeHandle {
    /// Asks the runtime to update and evict containers (UpdateContainers);
    /// returns the updates that failed. Do not wait for this inside a
    /// callback of the runtime's own requests (e.g. create_container): the
    /// runtime may be busy with that request.
    pub async fn update_containers(
        &self,
        update: Vec<ContainerUpdate>,
        evict: Vec<ContainerEviction>,
    ) -> Result<Vec<ContainerUpdate>, Error> {
        let mut req = UpdateContainersRequest::new();
        req.update = update;
        req.evict = evict;
        let ctx = ttrpc::context::with_timeout(self.timeout.as_nanos() as i64);
        let resp = self.client.update_containers(ctx, &req).await?;
        Ok(resp.failed)
    }

    /// Blocking form of [`update_containers`](Self::update_containers), for
    /// threads outside the async runtime (such as plugin callbacks).
    pub fn update_containers_blocking(
        &self,
        update: Vec<ContainerUpdate>,
        evict: Vec<ContainerEviction>,
    ) -> Result<Vec<ContainerUpdate>, Error> {
        self.rt.block_on(self.update_containers(update, evict))
    }
}

/// Runs `plugin` until the runtime shuts it down or disconnects, on a
/// current-thread tokio runtime of its own. Blocks the calling thread; call
/// it from `main` (not from inside a tokio runtime: use [`run_async`] there).
///
/// Returns `Ok(())` after a Shutdown request, [`Error::Disconnected`] when
/// the runtime went away without one.
pub fn run<P: Plugin>(plugin: P, opts: Options) -> Result<(), Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_async(plugin, opts))
}

/// Async form of [`run`], on the caller's tokio runtime.
pub async fn run_async<P: Plugin>(plugin: P, opts: Options) -> Result<(), Error> {
    opts.validate()?;
    let trunk = match opts.socket_fd {
        Some(fd) => {
            log::info!(
                "nri: pre-registered plugin {}-{}, socket fd {fd}",
                opts.idx,
                opts.name
            );
            adopt_socket_fd(fd)?
        }
        None => {
            log::info!(
                "nri: plugin {}-{} connecting to {}",
                opts.idx,
                opts.name,
                opts.socket_path.display()
            );
            tokio::net::UnixStream::connect(&opts.socket_path)
                .await
                .map_err(|e| {
                    Error::Io(std::io::Error::new(
                        e.kind(),
                        format!("connecting to {}: {e}", opts.socket_path.display()),
                    ))
                })?
        }
    };
    serve(plugin, &opts, trunk).await
}

/// Wraps an inherited socket fd: makes it close-on-exec and non-blocking.
fn adopt_socket_fd(fd: RawFd) -> Result<tokio::net::UnixStream, Error> {
    // SAFETY: fcntl on an arbitrary int is harmless; it only tells whether
    // the fd is open and sets its flags.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(Error::InvalidOptions(format!(
            "socket fd {fd} is not open: {}",
            std::io::Error::last_os_error()
        )));
    }
    unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) };
    // SAFETY: the runtime handed this fd to us for the plugin connection and
    // Options::socket_fd documents that run() takes ownership of it.
    let std_stream = unsafe { std::os::unix::net::UnixStream::from_raw_fd(fd) };
    std_stream.set_nonblocking(true)?;
    Ok(tokio::net::UnixStream::from_std(std_stream)?)
}

/// Runs `plugin` over an already connected trunk (any byte stream, e.g. one
/// end of a socketpair in tests). Registers with `opts.name`/`opts.idx`
/// (`opts.socket_*` are not used) and serves until Shutdown or disconnect.
pub async fn serve<P, T>(plugin: P, opts: &Options, trunk: T) -> Result<(), Error>
where
    P: Plugin,
    T: AsyncRead + AsyncWrite + Send + 'static,
{
    opts.validate()?;
    let mux = Mux::new(trunk);
    let result = serve_mux(plugin, opts, &mux).await;
    mux.close();
    result
}

async fn serve_mux<P: Plugin>(plugin: P, opts: &Options, mux: &Mux) -> Result<(), Error> {
    let plugin_conn = mux.open(PLUGIN_SERVICE_CONN)?;
    let runtime_conn = mux.open(RUNTIME_SERVICE_CONN)?;

    let runtime = RuntimeHandle {
        client: nri_ttrpc::RuntimeClient::new(ttrpc::asynchronous::Client::new(
            ttrpc::asynchronous::transport::Socket::new(runtime_conn),
        )),
        rt: tokio::runtime::Handle::current(),
        timeout: opts.registration_timeout,
    };
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let adapter = Adapter {
        plugin: Arc::new(plugin),
        runtime: runtime.clone(),
        pending_sync: Mutex::new((Vec::new(), Vec::new())),
        stop: stop_tx,
    };
    let listener = ttrpc::asynchronous::transport::Listener::new(OneConnection(Some(plugin_conn)));
    let mut server = ttrpc::asynchronous::Server::new()
        .add_listener(listener)
        .register_service(nri_ttrpc::create_plugin(Arc::new(adapter)));
    server.start().await?;

    let mut req = RegisterPluginRequest::new();
    req.plugin_name = opts.name.clone();
    req.plugin_idx = opts.idx.clone();
    let ctx = ttrpc::context::with_timeout(opts.registration_timeout.as_nanos() as i64);
    let registered = tokio::select! {
        r = runtime.client.register_plugin(ctx, &req) => r.map_err(|e| Error::Registration(e.to_string())),
        _ = mux.closed() => Err(Error::Disconnected),
    };
    if let Err(e) = registered {
        let _ = server.shutdown().await;
        return Err(e);
    }
    log::info!("nri: registered as {}-{}", opts.idx, opts.name);

    let stopped = tokio::select! {
        _ = mux.closed() => false,
        _ = stop_rx.wait_for(|s| *s) => true,
    };
    if stopped {
        // Let the Shutdown reply reach the runtime, which then closes.
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, mux.closed()).await;
    }
    let shut_down = stopped || *stop_rx.borrow();
    mux.close();
    let _ = server.shutdown().await;
    if shut_down {
        log::info!("nri: shut down by the runtime");
        Ok(())
    } else {
        log::warn!("nri: runtime closed the connection");
        Err(Error::Disconnected)
    }
}

/// A listener that yields one connection, then never ends (an ending
/// listener would make the ttrpc server's stop_listen panic).
struct OneConnection<S>(Option<S>);

impl<S: Unpin> futures_core::Stream for OneConnection<S> {
    type Item = std::io::Result<S>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        match self.0.take() {
            Some(s) => std::task::Poll::Ready(Some(Ok(s))),
            None => std::task::Poll::Pending,
        }
    }
}

/// Serves the generated Plugin service by calling the user's [`Plugin`].
struct Adapter<P> {
    plugin: Arc<P>,
    runtime: RuntimeHandle,
    /// Pods and containers of Synchronize requests with `more` set.
    pending_sync: Mutex<(Vec<PodSandbox>, Vec<Container>)>,
    stop: watch::Sender<bool>,
}

fn status(code: ttrpc::Code, msg: impl Into<String>) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg.into()))
}

/// Runs a callback on a blocking thread and turns its error into a status.
async fn call<P, T, F>(plugin: &Arc<P>, what: &'static str, f: F) -> ttrpc::Result<T>
where
    P: Plugin,
    T: Send + 'static,
    F: FnOnce(&P) -> Result<T, BoxError> + Send + 'static,
{
    let p = plugin.clone();
    match tokio::task::spawn_blocking(move || f(&p)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            log::warn!("nri: {what} failed: {e}");
            Err(status(ttrpc::Code::UNKNOWN, format!("{what}: {e}")))
        }
        Err(e) => {
            log::error!("nri: {what} panicked: {e}");
            Err(status(
                ttrpc::Code::INTERNAL,
                format!("{what}: plugin panicked"),
            ))
        }
    }
}

#[async_trait]
impl<P: Plugin> nri_ttrpc::Plugin for Adapter<P> {
    async fn configure(
        &self,
        _ctx: &ttrpc::asynchronous::TtrpcContext,
        req: ConfigureRequest,
    ) -> ttrpc::Result<ConfigureResponse> {
        let ms = |v: i64| (v > 0).then(|| Duration::from_millis(v as u64));
        let config = Config {
            config: req.config,
            runtime_name: req.runtime_name,
            runtime_version: req.runtime_version,
            request_timeout: ms(req.request_timeout),
            registration_timeout: ms(req.registration_timeout),
            runtime: self.runtime.clone(),
        };
        log::info!(
            "nri: configured by {} {}",
            config.runtime_name,
            config.runtime_version
        );
        let mask = call(&self.plugin, "configure", move |p| p.configure(&config)).await?;
        let mut resp = ConfigureResponse::new();
        resp.events = mask.bits();
        Ok(resp)
    }

    async fn synchronize(
        &self,
        _ctx: &ttrpc::asynchronous::TtrpcContext,
        req: SynchronizeRequest,
    ) -> ttrpc::Result<SynchronizeResponse> {
        let mut resp = SynchronizeResponse::new();
        let (pods, containers) = {
            let mut pending = self.pending_sync.lock().unwrap_or_else(|e| e.into_inner());
            pending.0.extend(req.pods);
            pending.1.extend(req.containers);
            if req.more {
                resp.more = true;
                return Ok(resp);
            }
            std::mem::take(&mut *pending)
        };
        log::debug!(
            "nri: synchronize: {} pods, {} containers",
            pods.len(),
            containers.len()
        );
        resp.update = call(&self.plugin, "synchronize", move |p| {
            p.synchronize(&pods, &containers)
        })
        .await?;
        Ok(resp)
    }

    async fn shutdown(
        &self,
        _ctx: &ttrpc::asynchronous::TtrpcContext,
        _req: Empty,
    ) -> ttrpc::Result<Empty> {
        let _ = call(&self.plugin, "shutdown", |p| {
            p.shutdown();
            Ok(())
        })
        .await;
        self.stop.send_replace(true);
        Ok(Empty::new())
    }

    async fn create_container(
        &self,
        _ctx: &ttrpc::asynchronous::TtrpcContext,
        req: CreateContainerRequest,
    ) -> ttrpc::Result<CreateContainerResponse> {
        let adjust = call(&self.plugin, "create_container", move |p| {
            p.create_container(&req.pod, &req.container)
        })
        .await?;
        let mut resp = CreateContainerResponse::new();
        resp.adjust = protobuf::MessageField::some(adjust);
        Ok(resp)
    }

    async fn update_container(
        &self,
        _ctx: &ttrpc::asynchronous::TtrpcContext,
        req: UpdateContainerRequest,
    ) -> ttrpc::Result<UpdateContainerResponse> {
        let update = call(&self.plugin, "update_container", move |p| {
            p.update_container(&req.pod, &req.container, &req.linux_resources)
        })
        .await?;
        let mut resp = UpdateContainerResponse::new();
        resp.update = update;
        Ok(resp)
    }

    async fn stop_container(
        &self,
        _ctx: &ttrpc::asynchronous::TtrpcContext,
        req: StopContainerRequest,
    ) -> ttrpc::Result<StopContainerResponse> {
        let update = call(&self.plugin, "stop_container", move |p| {
            p.stop_container(&req.pod, &req.container)
        })
        .await?;
        let mut resp = StopContainerResponse::new();
        resp.update = update;
        Ok(resp)
    }

    async fn state_change(
        &self,
        _ctx: &ttrpc::asynchronous::TtrpcContext,
        req: StateChangeEvent,
    ) -> ttrpc::Result<Empty> {
        let event = req.event.enum_value();
        log::debug!("nri: state change {:?} pod {}", req.event, req.pod.id);
        let pod = req.pod.unwrap_or_default();
        let ctr = req.container.unwrap_or_default();
        type Handler<P> = fn(&P, &PodSandbox, &Container) -> Result<(), BoxError>;
        let handler: Option<(&'static str, Handler<P>)> = match event {
            Ok(Event::RUN_POD_SANDBOX) => {
                Some(("run_pod_sandbox", |p, pod, _| p.run_pod_sandbox(pod)))
            }
            Ok(Event::STOP_POD_SANDBOX) => {
                Some(("stop_pod_sandbox", |p, pod, _| p.stop_pod_sandbox(pod)))
            }
            Ok(Event::REMOVE_POD_SANDBOX) => {
                Some(("remove_pod_sandbox", |p, pod, _| p.remove_pod_sandbox(pod)))
            }
            Ok(Event::POST_CREATE_CONTAINER) => Some(("post_create_container", |p, pod, c| {
                p.post_create_container(pod, c)
            })),
            Ok(Event::START_CONTAINER) => {
                Some(("start_container", |p, pod, c| p.start_container(pod, c)))
            }
            Ok(Event::POST_START_CONTAINER) => Some(("post_start_container", |p, pod, c| {
                p.post_start_container(pod, c)
            })),
            Ok(Event::POST_UPDATE_CONTAINER) => Some(("post_update_container", |p, pod, c| {
                p.post_update_container(pod, c)
            })),
            Ok(Event::REMOVE_CONTAINER) => {
                Some(("remove_container", |p, pod, c| p.remove_container(pod, c)))
            }
            _ => None,
        };
        match handler {
            Some((what, h)) => call(&self.plugin, what, move |p| h(p, &pod, &ctr)).await?,
            None => log::debug!("nri: ignoring state change event {:?}", req.event),
        }
        Ok(Empty::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_mask_bits() {
        assert_eq!(
            EventMask::from_events(&[
                Event::RUN_POD_SANDBOX,
                Event::STOP_POD_SANDBOX,
                Event::REMOVE_POD_SANDBOX
            ]),
            EventMask::POD_EVENTS
        );
        assert_eq!(EventMask::EMPTY.with(Event::CREATE_CONTAINER).bits(), 0x8);
        assert_eq!(EventMask::EMPTY.with(Event::REMOVE_CONTAINER).bits(), 0x400);
        assert_eq!(EventMask::EMPTY.with(Event::UNKNOWN), EventMask::EMPTY);
        assert!(EventMask::ALL.contains(Event::REMOVE_CONTAINER));
        assert!(!EventMask::POD_EVENTS.contains(Event::CREATE_CONTAINER));
        assert_eq!(
            (EventMask::POD_EVENTS | EventMask::from_bits(0x8)).bits(),
            0xf
        );
    }

    #[test]
    fn index_validation() {
        assert!(Options::new("x", "05").validate().is_ok());
        assert!(Options::new("x", "5").validate().is_err());
        assert!(Options::new("x", "100").validate().is_err());
        assert!(Options::new("x", "a1").validate().is_err());
        assert!(Options::new("", "10").validate().is_err());
        assert_eq!(
            split_idx_name("10-ipvnet"),
            Some(("10".to_string(), "ipvnet".to_string()))
        );
        assert_eq!(split_idx_name("ipvnet"), None);
        assert_eq!(split_idx_name("1-x"), None);
    }
}
