//! The whole plugin lifecycle against a fake runtime over a socket pair:
//! RegisterPlugin, Configure, Synchronize (in two parts), pod events through
//! StateChange, CreateContainer, an unknown method, Shutdown.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use nri::api;
use nri::{BoxError, Config, EventMask, Options, Plugin};
use protobuf::Message;
use tokio::net::UnixStream;

#[derive(Default)]
struct Seen {
    config: Option<(String, String, String)>,
    synced: Option<(Vec<String>, Vec<String>)>,
    run_netns: Vec<(String, String)>,
    stopped: Vec<String>,
    removed: Vec<String>,
    created: Vec<String>,
    shutdown: bool,
}

struct TestPlugin(Arc<Mutex<Seen>>);

impl Plugin for TestPlugin {
    fn configure(&self, config: &Config) -> Result<EventMask, BoxError> {
        self.0.lock().unwrap().config = Some((
            config.config.clone(),
            config.runtime_name.clone(),
            config.runtime_version.clone(),
        ));
        Ok(EventMask::POD_EVENTS.with(api::Event::CREATE_CONTAINER))
    }

    fn synchronize(
        &self,
        pods: &[api::PodSandbox],
        containers: &[api::Container],
    ) -> Result<Vec<api::ContainerUpdate>, BoxError> {
        self.0.lock().unwrap().synced = Some((
            pods.iter().map(|p| p.id.clone()).collect(),
            containers.iter().map(|c| c.id.clone()).collect(),
        ));
        Ok(Vec::new())
    }

    fn run_pod_sandbox(&self, pod: &api::PodSandbox) -> Result<(), BoxError> {
        if pod.id == "bad-pod" {
            return Err("no addresses left".into());
        }
        let netns = nri::pod_namespace(pod, "network")
            .unwrap_or_default()
            .to_string();
        self.0
            .lock()
            .unwrap()
            .run_netns
            .push((pod.id.clone(), netns));
        Ok(())
    }

    fn stop_pod_sandbox(&self, pod: &api::PodSandbox) -> Result<(), BoxError> {
        self.0.lock().unwrap().stopped.push(pod.id.clone());
        Ok(())
    }

    fn remove_pod_sandbox(&self, pod: &api::PodSandbox) -> Result<(), BoxError> {
        self.0.lock().unwrap().removed.push(pod.id.clone());
        Ok(())
    }

    fn create_container(
        &self,
        pod: &api::PodSandbox,
        container: &api::Container,
    ) -> Result<api::ContainerAdjustment, BoxError> {
        self.0
            .lock()
            .unwrap()
            .created
            .push(format!("{}/{}", pod.id, container.name));
        let mut hook = api::Hook::new();
        hook.path = "/usr/bin/ipvnet".into();
        hook.args = vec!["ipvnet".into(), "hook".into()];
        let mut adjust = api::ContainerAdjustment::new();
        adjust
            .hooks
            .mut_or_insert_default()
            .create_runtime
            .push(hook);
        Ok(adjust)
    }

    fn shutdown(&self) {
        self.0.lock().unwrap().shutdown = true;
    }
}

fn pod(id: &str, netns: Option<&str>) -> api::PodSandbox {
    let mut p = api::PodSandbox::new();
    p.id = id.into();
    p.name = format!("{id}-name");
    p.namespace = "default".into();
    if let Some(path) = netns {
        let linux = p.linux.mut_or_insert_default();
        for (t, path) in [("ipc", "/proc/1/ns/ipc"), ("network", path)] {
            let mut ns = api::LinuxNamespace::new();
            ns.type_ = t.into();
            ns.path = path.into();
            linux.namespaces.push(ns);
        }
    }
    p
}

fn state_change(event: api::Event, pod: api::PodSandbox) -> api::StateChangeEvent {
    let mut ev = api::StateChangeEvent::new();
    ev.event = event.into();
    ev.pod = Some(pod).into();
    ev
}

/// The RegisterPlugin request the plugin must send first, derived by hand:
///
/// mux frame header: connection 2, payload length 76 (0x4c)
///   00000002 0000004c
/// ttrpc header: length 66 (0x42), stream id 1, type 1 (request), flags 0
///   00000042 00000001 01 00
/// ttrpc Request:
///   0a 1c "nri.pkg.api.v1alpha1.Runtime"   service = 1 (28 bytes)
///   12 0e "RegisterPlugin"                 method = 2 (14 bytes)
///   1a 0c <RegisterPluginRequest>          payload = 3 (12 bytes)
///   20 80e497d012                          timeout_nano = 4: 5e9 (5 s) as varint
/// RegisterPluginRequest:
///   0a 06 "ipvnet"                         plugin_name = 1
///   12 02 "10"                             plugin_idx = 2
#[rustfmt::skip]
const REGISTER_FRAME_HEX: &str = concat!(
    "00000002", "0000004c",
    "00000042", "00000001", "01", "00",
    "0a1c", "6e72692e706b672e6170692e7631616c706861312e52756e74696d65",
    "120e", "5265676973746572506c7567696e",
    "1a0c", "0a06", "6970766e6574", "1202", "3130",
    "20", "80e497d012",
);

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[tokio::test]
async fn full_handshake_and_events() {
    let (plugin_end, runtime_end) = UnixStream::pair().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let opts = Options::new("ipvnet", "10");
    let plugin = TestPlugin(seen.clone());
    let served = tokio::spawn(async move { nri::serve(plugin, &opts, plugin_end).await });

    let mut rt = FakeRuntime::new(runtime_end);

    // 1. RegisterPlugin on connection 2, byte for byte.
    let (conn, payload) = rt.read_frame().await.expect("a RegisterPlugin frame");
    let frame = common::mux_frame(conn, &payload);
    assert_eq!(frame, unhex(REGISTER_FRAME_HEX), "RegisterPlugin frame");
    let req = ttrpc::Request::parse_from_bytes(&payload[10..]).unwrap();
    let reg = api::RegisterPluginRequest::parse_from_bytes(&req.payload).unwrap();
    assert_eq!(
        (reg.plugin_name.as_str(), reg.plugin_idx.as_str()),
        ("ipvnet", "10")
    );
    rt.reply_ok(1, api::Empty::new().write_to_bytes().unwrap())
        .await;

    // 2. Configure: the reply carries the event mask, field 2.
    let mut cfg = api::ConfigureRequest::new();
    cfg.config = "mode=l2".into();
    cfg.runtime_name = "fake-runtime".into();
    cfg.runtime_version = "v0.0".into();
    cfg.request_timeout = 2000;
    // Send it split over three frames to exercise reassembly.
    let msg = ttrpc_message(
        1,
        TTRPC_REQUEST,
        &request_bytes("Configure", cfg.write_to_bytes().unwrap()),
    );
    let mut bytes = mux_frame(1, &msg[..3]);
    bytes.extend(mux_frame(1, &msg[3..17]));
    bytes.extend(mux_frame(1, &msg[17..]));
    rt.write_raw(&bytes).await;
    let resp = rt.response(1).await;
    assert_eq!(code(&resp), 0);
    // events = 2, varint 0xf: pod events (0x7) plus CreateContainer (0x8).
    assert_eq!(resp.payload, vec![0x10, 0x0f]);
    assert_eq!(
        seen.lock().unwrap().config,
        Some(("mode=l2".into(), "fake-runtime".into(), "v0.0".into()))
    );

    // 3. Synchronize in two parts; `more` is echoed.
    let mut sync = api::SynchronizeRequest::new();
    sync.pods.push(pod("pod-a", Some("/var/run/netns/cni-a")));
    sync.more = true;
    let resp = rt.call(3, "Synchronize", &sync).await;
    assert_eq!(code(&resp), 0);
    assert_eq!(resp.payload, vec![0x10, 0x01], "more = true echoed");
    assert!(
        seen.lock().unwrap().synced.is_none(),
        "synchronize waits for the last part"
    );
    let mut sync = api::SynchronizeRequest::new();
    let mut ctr = api::Container::new();
    ctr.id = "ctr-a".into();
    ctr.pod_sandbox_id = "pod-a".into();
    sync.containers.push(ctr);
    let resp = rt.call(5, "Synchronize", &sync).await;
    assert_eq!(code(&resp), 0);
    let sresp = api::SynchronizeResponse::parse_from_bytes(&resp.payload).unwrap();
    assert!(!sresp.more);
    assert_eq!(
        seen.lock().unwrap().synced,
        Some((vec!["pod-a".into()], vec!["ctr-a".into()]))
    );

    // 4. RunPodSandbox through StateChange: the callback gets the netns.
    let ev = state_change(
        api::Event::RUN_POD_SANDBOX,
        pod("pod-b", Some("/var/run/netns/cni-1234")),
    );
    let resp = rt.call(7, "StateChange", &ev).await;
    assert_eq!(code(&resp), 0);
    assert_eq!(
        seen.lock().unwrap().run_netns,
        vec![("pod-b".to_string(), "/var/run/netns/cni-1234".to_string())]
    );

    // A failing callback is reported with its message (code 2, UNKNOWN).
    let ev = state_change(api::Event::RUN_POD_SANDBOX, pod("bad-pod", Some("/x")));
    let resp = rt.call(9, "StateChange", &ev).await;
    assert_eq!(code(&resp), 2);
    let msg = &resp.status.as_ref().unwrap().message;
    assert!(msg.contains("no addresses left"), "status message: {msg}");

    // 5. CreateContainer returns the adjustment.
    let mut cc = api::CreateContainerRequest::new();
    cc.pod = Some(pod("pod-b", None)).into();
    let mut ctr = api::Container::new();
    ctr.id = "ctr-b".into();
    ctr.name = "app".into();
    cc.container = Some(ctr).into();
    let resp = rt.call(11, "CreateContainer", &cc).await;
    assert_eq!(code(&resp), 0);
    let cresp = api::CreateContainerResponse::parse_from_bytes(&resp.payload).unwrap();
    let hooks = &cresp.adjust.hooks.create_runtime;
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].path, "/usr/bin/ipvnet");
    assert_eq!(hooks[0].args, vec!["ipvnet", "hook"]);

    // 6. Stop and remove (no namespaces sent, as containerd does).
    let ev = state_change(api::Event::STOP_POD_SANDBOX, pod("pod-b", None));
    assert_eq!(code(&rt.call(13, "StateChange", &ev).await), 0);
    let ev = state_change(api::Event::REMOVE_POD_SANDBOX, pod("pod-b", None));
    assert_eq!(code(&rt.call(15, "StateChange", &ev).await), 0);
    {
        let s = seen.lock().unwrap();
        assert_eq!(s.stopped, vec!["pod-b"]);
        assert_eq!(s.removed, vec!["pod-b"]);
        assert_eq!(s.created, vec!["pod-b/app"]);
    }

    // 7. A method the plugin does not serve (a newer runtime's dedicated
    // RunPodSandbox): UNIMPLEMENTED, code 12.
    let mut run = api::CreateContainerRequest::new();
    run.pod = Some(pod("pod-c", Some("/var/run/netns/c"))).into();
    let resp = rt.call(17, "RunPodSandbox", &run).await;
    assert_eq!(code(&resp), 12, "unknown method answers UNIMPLEMENTED");

    // Unknown fields in a request are skipped: a PodSandbox with an extra
    // field 99 (string) still decodes.
    let mut ev_bytes = state_change(
        api::Event::RUN_POD_SANDBOX,
        pod("pod-c", Some("/var/run/netns/c")),
    )
    .write_to_bytes()
    .unwrap();
    ev_bytes.extend_from_slice(&[0x9a, 0x06, 0x03, b'x', b'y', b'z']); // field 99, wire type 2
    rt.send_request(19, "StateChange", ev_bytes).await;
    assert_eq!(code(&rt.response(19).await), 0);
    assert_eq!(seen.lock().unwrap().run_netns.len(), 2);

    // 8. Shutdown: answered, then the plugin's run ends with Ok.
    let resp = rt.call(21, "Shutdown", &api::Empty::new()).await;
    assert_eq!(code(&resp), 0);
    assert!(seen.lock().unwrap().shutdown);
    drop(rt);
    let result = tokio::time::timeout(STEP_TIMEOUT, served)
        .await
        .unwrap()
        .unwrap();
    assert!(result.is_ok(), "serve returned {result:?}");
}

#[tokio::test]
async fn disconnect_without_shutdown_is_an_error() {
    let (plugin_end, runtime_end) = UnixStream::pair().unwrap();
    let opts = Options::new("ipvnet", "10");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let served = tokio::spawn(async move { nri::serve(TestPlugin(seen), &opts, plugin_end).await });
    let mut rt = FakeRuntime::new(runtime_end);
    let msg = rt.read_msg(2).await;
    rt.reply_ok(msg.stream_id, Vec::new()).await;
    let resp = rt.call(1, "Configure", &api::ConfigureRequest::new()).await;
    assert_eq!(code(&resp), 0);
    drop(rt);
    let result = tokio::time::timeout(STEP_TIMEOUT, served)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(result, Err(nri::Error::Disconnected)),
        "got {result:?}"
    );
}

#[tokio::test]
async fn registration_rejected() {
    let (plugin_end, runtime_end) = UnixStream::pair().unwrap();
    let opts = Options::new("ipvnet", "10");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let served = tokio::spawn(async move { nri::serve(TestPlugin(seen), &opts, plugin_end).await });
    let mut rt = FakeRuntime::new(runtime_end);
    let msg = rt.read_msg(2).await;
    // Answer with status {code 9 FAILED_PRECONDITION, message}.
    let mut resp = ttrpc::Response::new();
    let mut status = ttrpc::Status::new();
    status.code = ttrpc::Code::FAILED_PRECONDITION.into();
    status.message = "plugin already registered".into();
    resp.status = Some(status).into();
    let bytes = ttrpc_message(
        msg.stream_id,
        TTRPC_RESPONSE,
        &resp.write_to_bytes().unwrap(),
    );
    rt.write_raw(&mux_frame(2, &bytes)).await;
    let result = tokio::time::timeout(STEP_TIMEOUT, served)
        .await
        .unwrap()
        .unwrap();
    match result {
        Err(nri::Error::Registration(m)) => assert!(m.contains("already registered"), "{m}"),
        other => panic!("expected a registration error, got {other:?}"),
    }
}

#[tokio::test]
async fn invalid_index_is_refused_before_connecting() {
    let (plugin_end, _runtime_end) = UnixStream::pair().unwrap();
    let opts = Options::new("ipvnet", "7");
    let seen = Arc::new(Mutex::new(Seen::default()));
    let result = nri::serve(TestPlugin(seen), &opts, plugin_end).await;
    assert!(matches!(result, Err(nri::Error::InvalidOptions(_))));
}

/// A plugin that asks for an unsolicited update from a callback, through
/// the RuntimeHandle it got in configure (blocking form).
struct Updater(Mutex<Option<nri::RuntimeHandle>>);

impl Plugin for Updater {
    fn configure(&self, config: &Config) -> Result<EventMask, BoxError> {
        *self.0.lock().unwrap() = Some(config.runtime.clone());
        Ok(EventMask::from_events(&[api::Event::START_CONTAINER]))
    }

    fn start_container(
        &self,
        _pod: &api::PodSandbox,
        ctr: &api::Container,
    ) -> Result<(), BoxError> {
        let rt = self.0.lock().unwrap().clone().expect("configured");
        let mut upd = api::ContainerUpdate::new();
        upd.container_id = ctr.id.clone();
        upd.ignore_failure = true;
        let mut ev = api::ContainerEviction::new();
        ev.container_id = "victim".into();
        ev.reason = "test".into();
        let failed = rt.update_containers_blocking(vec![upd], vec![ev])?;
        if failed.len() != 1 {
            return Err(format!("expected one failed update, got {failed:?}").into());
        }
        Ok(())
    }
}

#[tokio::test]
async fn unsolicited_update_from_a_callback() {
    let (plugin_end, runtime_end) = UnixStream::pair().unwrap();
    let opts = Options::new("updater", "20");
    let served =
        tokio::spawn(async move { nri::serve(Updater(Mutex::new(None)), &opts, plugin_end).await });
    let mut rt = FakeRuntime::new(runtime_end);
    let msg = rt.read_msg(2).await;
    rt.reply_ok(msg.stream_id, Vec::new()).await;
    let resp = rt.call(1, "Configure", &api::ConfigureRequest::new()).await;
    assert_eq!(resp.payload, vec![0x10, 0x20], "START_CONTAINER is bit 5");

    let mut ev = api::StateChangeEvent::new();
    ev.event = api::Event::START_CONTAINER.into();
    ev.pod = Some(pod("pod-u", None)).into();
    let mut ctr = api::Container::new();
    ctr.id = "ctr-u".into();
    ev.container = Some(ctr).into();
    rt.send_request(3, "StateChange", ev.write_to_bytes().unwrap())
        .await;

    // While the event is pending, the plugin calls UpdateContainers (stream 3
    // on connection 2, after RegisterPlugin's 1).
    let msg = rt.read_msg(2).await;
    assert_eq!(msg.stream_id, 3);
    let req = ttrpc::Request::parse_from_bytes(&msg.payload).unwrap();
    assert_eq!(
        (req.service.as_str(), req.method.as_str()),
        (RUNTIME_SERVICE, "UpdateContainers")
    );
    let upd = api::UpdateContainersRequest::parse_from_bytes(&req.payload).unwrap();
    assert_eq!(upd.update.len(), 1);
    assert_eq!(upd.update[0].container_id, "ctr-u");
    assert!(upd.update[0].ignore_failure);
    assert_eq!(upd.evict[0].container_id, "victim");
    let mut answer = api::UpdateContainersResponse::new();
    answer.failed.push(upd.update[0].clone());
    rt.reply_ok(msg.stream_id, answer.write_to_bytes().unwrap())
        .await;

    let resp = rt.response(3).await;
    assert_eq!(code(&resp), 0, "{:?}", resp.status);
    drop(rt);
    let result = tokio::time::timeout(STEP_TIMEOUT, served)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(result, Err(nri::Error::Disconnected)));
}
