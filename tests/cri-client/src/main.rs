//! cri-client: a small CRI client for the in-guest tests (no cri-tools in
//! Debian 12). It speaks CRI v1 (RuntimeService) over containerd's socket:
//!
//!   cri-client [--socket PATH] [--timeout S] COMMAND
//!     version
//!     run-pod --name N --namespace NS --uid U [--annotation K=V]... [--label K=V]...
//!             [--hostname H] [--runtime-handler H]        prints the pod id
//!     pod-status POD                                      prints `ID STATE IP`
//!     list-pods                                           `ID NAMESPACE/NAME STATE` lines
//!     stop-pod POD | remove-pod POD
//!     create-container POD --name N --image I [--cap-add CAP]... [--env K=V]...
//!             [--annotation K=V]... -- CMD...             prints the container id
//!     start ID | stop-container ID [--grace S] | remove-container ID
//!     list-containers [--pod POD]                         `ID POD NAME STATE` lines
//!     exec-sync [--exec-timeout S] ID CMD...              the command's stdout and
//!                                                         stderr; exits with its code
//!
//! The socket defaults to $CRI_SOCKET, else /run/containerd/containerd.sock.
//! A failed call prints `cri-client: METHOD: CODE: MESSAGE` on stderr and exits
//! 1 (exec-sync: 125).

mod cri;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use hyper_util::rt::TokioIo;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint, Uri};

#[derive(Parser)]
#[command(name = "cri-client", about = "A small CRI v1 client (tests)")]
struct Cli {
    /// containerd's (CRI) socket [default: $CRI_SOCKET, else /run/containerd/containerd.sock]
    #[arg(long)]
    socket: Option<PathBuf>,
    /// deadline of each call, in seconds
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// runtime name and version
    Version,
    /// RunPodSandbox; prints the pod id
    RunPod {
        #[arg(long)]
        name: String,
        #[arg(long)]
        namespace: String,
        #[arg(long)]
        uid: String,
        #[arg(long = "annotation", value_parser = key_value)]
        annotations: Vec<(String, String)>,
        #[arg(long = "label", value_parser = key_value)]
        labels: Vec<(String, String)>,
        #[arg(long)]
        hostname: Option<String>,
        #[arg(long, default_value = "")]
        runtime_handler: String,
    },
    /// PodSandboxStatus: `ID STATE IP`
    PodStatus { pod: String },
    /// ListPodSandbox: `ID NAMESPACE/NAME STATE` per pod
    ListPods,
    /// StopPodSandbox
    StopPod { pod: String },
    /// RemovePodSandbox
    RemovePod { pod: String },
    /// CreateContainer in a pod; prints the container id
    CreateContainer {
        pod: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        image: String,
        #[arg(long = "cap-add")]
        caps: Vec<String>,
        #[arg(long = "env", value_parser = key_value)]
        envs: Vec<(String, String)>,
        #[arg(long = "annotation", value_parser = key_value)]
        annotations: Vec<(String, String)>,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// StartContainer
    Start { id: String },
    /// StopContainer
    StopContainer {
        id: String,
        #[arg(long, default_value_t = 0)]
        grace: i64,
    },
    /// RemoveContainer
    RemoveContainer { id: String },
    /// ListContainers: `ID POD NAME STATE` per container
    ListContainers {
        #[arg(long)]
        pod: Option<String>,
    },
    /// ExecSync: prints the command's stdout/stderr, exits with its status
    ExecSync {
        #[arg(long, default_value_t = 60)]
        exec_timeout: i64,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        cmd: Vec<String>,
    },
}

fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

struct Client {
    channel: Channel,
    timeout: Duration,
}

#[derive(Debug)]
struct Failure {
    method: &'static str,
    status: tonic::Status,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {:?}: {}", self.method, self.status.code(), self.status.message())
    }
}

impl Client {
    async fn connect(socket: PathBuf, timeout: Duration) -> Result<Client, String> {
        let path = socket.clone();
        // The URI is a placeholder: the connector below dials the Unix socket.
        let channel = Endpoint::from_static("http://localhost")
            .connect_timeout(timeout)
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let path = path.clone();
                async move { Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?)) }
            }))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", socket.display()))?;
        Ok(Client { channel, timeout })
    }

    async fn call<Q, R>(&self, method: &'static str, req: Q) -> Result<R, Failure>
    where
        Q: prost::Message + Send + Sync + 'static,
        R: prost::Message + Default + Send + Sync + 'static,
    {
        let fail = |status| Failure { method, status };
        let mut grpc = tonic::client::Grpc::new(self.channel.clone());
        grpc.ready()
            .await
            .map_err(|e| fail(tonic::Status::unavailable(e.to_string())))?;
        let path = PathAndQuery::try_from(format!("{}{method}", cri::SERVICE))
            .map_err(|e| fail(tonic::Status::internal(e.to_string())))?;
        let mut request = tonic::Request::new(req);
        request.set_timeout(self.timeout);
        let codec = tonic_prost::ProstCodec::<Q, R>::default();
        grpc.unary(request, path, codec).await.map(|r| r.into_inner()).map_err(fail)
    }

    async fn pod_status(&self, pod: &str) -> Result<cri::PodSandboxStatus, Failure> {
        let r: cri::PodSandboxStatusResponse = self
            .call(
                "PodSandboxStatus",
                cri::PodSandboxStatusRequest { pod_sandbox_id: pod.to_string(), verbose: false },
            )
            .await?;
        Ok(r.status.unwrap_or_default())
    }
}

fn map(kv: Vec<(String, String)>) -> HashMap<String, String> {
    kv.into_iter().collect()
}

async fn run(cli: Cli) -> Result<u8, String> {
    let socket = cli
        .socket
        .or_else(|| std::env::var_os("CRI_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/run/containerd/containerd.sock"));
    let c = Client::connect(socket, Duration::from_secs(cli.timeout)).await?;
    let e = |f: Failure| f.to_string();
    match cli.cmd {
        Cmd::Version => {
            let r: cri::VersionResponse =
                c.call("Version", cri::VersionRequest { version: "v1".into() }).await.map_err(e)?;
            println!("{} {} (CRI {})", r.runtime_name, r.runtime_version, r.runtime_api_version);
        }
        Cmd::RunPod { name, namespace, uid, annotations, labels, hostname, runtime_handler } => {
            let config = cri::PodSandboxConfig {
                hostname: hostname.unwrap_or_else(|| name.clone()),
                metadata: Some(cri::PodSandboxMetadata { name, uid, namespace, attempt: 0 }),
                log_directory: String::new(),
                labels: map(labels),
                annotations: map(annotations),
            };
            let r: cri::RunPodSandboxResponse = c
                .call("RunPodSandbox", cri::RunPodSandboxRequest { config: Some(config), runtime_handler })
                .await
                .map_err(e)?;
            println!("{}", r.pod_sandbox_id);
        }
        Cmd::PodStatus { pod } => {
            let s = c.pod_status(&pod).await.map_err(e)?;
            let ip = s.network.map(|n| n.ip).filter(|ip| !ip.is_empty()).unwrap_or_else(|| "-".into());
            println!("{} {} {}", s.id, cri::sandbox_state_name(s.state), ip);
        }
        Cmd::ListPods => {
            let r: cri::ListPodSandboxResponse =
                c.call("ListPodSandbox", cri::ListPodSandboxRequest {}).await.map_err(e)?;
            for p in r.items {
                let m = p.metadata.unwrap_or_default();
                println!("{} {}/{} {}", p.id, m.namespace, m.name, cri::sandbox_state_name(p.state));
            }
        }
        Cmd::StopPod { pod } => {
            let _: cri::Empty =
                c.call("StopPodSandbox", cri::PodSandboxIdRequest { pod_sandbox_id: pod }).await.map_err(e)?;
        }
        Cmd::RemovePod { pod } => {
            let _: cri::Empty = c
                .call("RemovePodSandbox", cri::PodSandboxIdRequest { pod_sandbox_id: pod })
                .await
                .map_err(e)?;
        }
        Cmd::CreateContainer { pod, name, image, caps, envs, annotations, command } => {
            // The kubelet sends the pod's own config along; rebuild it from the status.
            let s = c.pod_status(&pod).await.map_err(e)?;
            let sandbox_config = cri::PodSandboxConfig {
                hostname: String::new(),
                log_directory: String::new(),
                metadata: s.metadata,
                labels: s.labels,
                annotations: s.annotations,
            };
            let config = cri::ContainerConfig {
                metadata: Some(cri::ContainerMetadata { name, attempt: 0 }),
                image: Some(cri::ImageSpec { image }),
                command,
                args: vec![],
                envs: envs.into_iter().map(|(key, value)| cri::KeyValue { key, value }).collect(),
                labels: HashMap::new(),
                annotations: map(annotations),
                linux: Some(cri::LinuxContainerConfig {
                    security_context: Some(cri::LinuxContainerSecurityContext {
                        capabilities: Some(cri::Capability { add_capabilities: caps, drop_capabilities: vec![] }),
                        privileged: false,
                    }),
                }),
            };
            let r: cri::CreateContainerResponse = c
                .call(
                    "CreateContainer",
                    cri::CreateContainerRequest {
                        pod_sandbox_id: pod,
                        config: Some(config),
                        sandbox_config: Some(sandbox_config),
                    },
                )
                .await
                .map_err(e)?;
            println!("{}", r.container_id);
        }
        Cmd::Start { id } => {
            let _: cri::Empty =
                c.call("StartContainer", cri::ContainerIdRequest { container_id: id }).await.map_err(e)?;
        }
        Cmd::StopContainer { id, grace } => {
            let _: cri::Empty = c
                .call("StopContainer", cri::StopContainerRequest { container_id: id, timeout: grace })
                .await
                .map_err(e)?;
        }
        Cmd::RemoveContainer { id } => {
            let _: cri::Empty =
                c.call("RemoveContainer", cri::ContainerIdRequest { container_id: id }).await.map_err(e)?;
        }
        Cmd::ListContainers { pod } => {
            let filter = pod.map(|p| cri::ContainerFilter { id: String::new(), pod_sandbox_id: p });
            let r: cri::ListContainersResponse =
                c.call("ListContainers", cri::ListContainersRequest { filter }).await.map_err(e)?;
            for k in r.containers {
                let name = k.metadata.map(|m| m.name).unwrap_or_default();
                println!("{} {} {} {}", k.id, k.pod_sandbox_id, name, cri::container_state_name(k.state));
            }
        }
        Cmd::ExecSync { exec_timeout, id, cmd } => {
            let r: cri::ExecSyncResponse = match c
                .call("ExecSync", cri::ExecSyncRequest { container_id: id, cmd, timeout: exec_timeout })
                .await
            {
                Ok(r) => r,
                Err(f) => {
                    eprintln!("cri-client: {f}");
                    return Ok(125);
                }
            };
            use std::io::Write;
            std::io::stdout().write_all(&r.stdout).map_err(|e| e.to_string())?;
            std::io::stderr().write_all(&r.stderr).map_err(|e| e.to_string())?;
            return Ok(r.exit_code.clamp(0, 255) as u8);
        }
    }
    Ok(0)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("cri-client: tokio runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(msg) => {
            eprintln!("cri-client: {msg}");
            ExitCode::from(1)
        }
    }
}
