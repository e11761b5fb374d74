//! External plugins: connecting to the runtime's socket path, with the
//! library and with the example logger binary.

mod common;

use std::path::PathBuf;

use common::*;
use nri::{api, Options};
use protobuf::Message;
use tokio::net::UnixListener;

fn scratch_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nri-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Accepts the plugin, checks its registration, configures it with
/// `config`, sends a RunPodSandbox event, then Shutdown. Returns the event
/// mask the plugin asked for.
async fn drive(listener: UnixListener, name: &str, idx: &str, config: &str) -> Vec<u8> {
    let (sock, _) = tokio::time::timeout(STEP_TIMEOUT, listener.accept())
        .await
        .expect("plugin connected")
        .unwrap();
    let mut rt = FakeRuntime::new(sock);
    let msg = rt.read_msg(2).await;
    let req = ttrpc::Request::parse_from_bytes(&msg.payload).unwrap();
    assert_eq!(req.service, RUNTIME_SERVICE);
    assert_eq!(req.method, "RegisterPlugin");
    let reg = api::RegisterPluginRequest::parse_from_bytes(&req.payload).unwrap();
    assert_eq!(
        (reg.plugin_name.as_str(), reg.plugin_idx.as_str()),
        (name, idx)
    );
    rt.reply_ok(msg.stream_id, Vec::new()).await;

    let mut cfg = api::ConfigureRequest::new();
    cfg.config = config.into();
    cfg.runtime_name = "fake".into();
    let resp = rt.call(1, "Configure", &cfg).await;
    assert_eq!(code(&resp), 0);

    let mut pod = api::PodSandbox::new();
    pod.id = "0123abcd".into();
    pod.name = "web".into();
    pod.namespace = "default".into();
    let mut ns = api::LinuxNamespace::new();
    ns.type_ = "network".into();
    ns.path = "/var/run/netns/cni-5678".into();
    pod.linux.mut_or_insert_default().namespaces.push(ns);
    let mut ev = api::StateChangeEvent::new();
    ev.event = api::Event::RUN_POD_SANDBOX.into();
    ev.pod = Some(pod).into();
    assert_eq!(code(&rt.call(3, "StateChange", &ev).await), 0);

    assert_eq!(code(&rt.call(5, "Shutdown", &api::Empty::new()).await), 0);
    rt.expect_eof().await;
    resp.payload
}

struct Quiet;
impl nri::Plugin for Quiet {
    fn configure(&self, _: &nri::Config) -> Result<nri::EventMask, nri::BoxError> {
        Ok(nri::EventMask::POD_EVENTS)
    }
}

#[tokio::test]
async fn external_plugin_connects_to_the_socket_path() {
    let dir = scratch_dir("ext");
    let path = dir.join("nri.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let opts = Options::new("quiet", "05").with_socket_path(&path);
    let plugin = tokio::spawn(nri::run_async(Quiet, opts));
    let mask = drive(listener, "quiet", "05", "").await;
    assert_eq!(mask, vec![0x10, 0x07]);
    let result = tokio::time::timeout(STEP_TIMEOUT, plugin)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn missing_socket_is_an_io_error() {
    let opts = Options::new("quiet", "05").with_socket_path("/nonexistent/nri.sock");
    let result = nri::run_async(Quiet, opts).await;
    assert!(matches!(result, Err(nri::Error::Io(_))), "{result:?}");
}

/// The example plugin, when `cargo test` built it (it builds examples).
fn logger_example() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("examples").join("logger");
    p.exists().then_some(p)
}

#[tokio::test]
async fn example_logger_writes_pod_events() {
    let Some(logger) = logger_example() else {
        eprintln!("examples/logger not built; skipping");
        return;
    };
    let dir = scratch_dir("logger");
    let path = dir.join("nri.sock");
    let log = dir.join("events.log");
    let listener = UnixListener::bind(&path).unwrap();
    let child = tokio::process::Command::new(logger)
        .args(["--socket", path.to_str().unwrap(), "--idx", "91"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mask = drive(listener, "logger", "91", &format!("file={}", log.display())).await;
    assert_eq!(mask, vec![0x10, 0x0f]);
    let out = tokio::time::timeout(STEP_TIMEOUT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "logger exited with {:?}", out.status);
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("configured by fake"), "{text}");
    assert!(
        text.contains("RunPodSandbox pod=default/web id=0123abcd netns=/var/run/netns/cni-5678"),
        "{text}"
    );
    assert!(text.contains("shutdown"), "{text}");
    let _ = std::fs::remove_dir_all(&dir);
}
