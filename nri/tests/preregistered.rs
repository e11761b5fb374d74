//! A pre-registered launch: the runtime starts the plugin with the socket on
//! an inherited fd and NRI_PLUGIN_SOCKET / NRI_PLUGIN_NAME / NRI_PLUGIN_IDX
//! in the environment. One test in this binary, since it sets the process
//! environment.

mod common;

use std::os::unix::io::IntoRawFd;

use common::*;
use nri::{api, Options};
use protobuf::Message;

struct Quiet;
impl nri::Plugin for Quiet {}

#[test]
fn options_from_env_and_blocking_run() {
    assert!(Options::from_env().is_none(), "no NRI_PLUGIN_SOCKET yet");

    let (plugin_end, runtime_end) = std::os::unix::net::UnixStream::pair().unwrap();
    let fd = plugin_end.into_raw_fd();
    // Inherited fds come without close-on-exec (Rust's socketpair sets it).
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) }, 0);
    std::env::set_var("NRI_PLUGIN_SOCKET", fd.to_string());
    std::env::set_var("NRI_PLUGIN_NAME", "logger");
    std::env::set_var("NRI_PLUGIN_IDX", "42");
    let opts = Options::from_env().expect("pre-registered launch detected");
    assert_eq!(opts.socket_fd, Some(fd));
    assert_eq!((opts.name.as_str(), opts.idx.as_str()), ("logger", "42"));

    // The blocking entry point, on its own thread and runtime.
    let plugin = std::thread::spawn(move || nri::run(Quiet, opts));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        runtime_end.set_nonblocking(true).unwrap();
        let mut rt = FakeRuntime::new(tokio::net::UnixStream::from_std(runtime_end).unwrap());
        let msg = rt.read_msg(2).await;
        let req = ttrpc::Request::parse_from_bytes(&msg.payload).unwrap();
        assert_eq!(req.method, "RegisterPlugin");
        let reg = api::RegisterPluginRequest::parse_from_bytes(&req.payload).unwrap();
        assert_eq!(
            (reg.plugin_name.as_str(), reg.plugin_idx.as_str()),
            ("logger", "42")
        );
        // The inherited fd was made close-on-exec (hooks and helpers the
        // plugin starts must not inherit the runtime connection).
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        assert!(
            flags >= 0 && flags & libc::FD_CLOEXEC != 0,
            "fd flags {flags}"
        );
        rt.reply_ok(msg.stream_id, Vec::new()).await;

        // The default configure subscribes to every event (0x7ff).
        let resp = rt.call(1, "Configure", &api::ConfigureRequest::new()).await;
        assert_eq!(resp.payload, vec![0x10, 0xff, 0x0f]);
        let resp = rt.call(3, "Shutdown", &api::Empty::new()).await;
        assert_eq!(code(&resp), 0);
    });
    let result = plugin.join().unwrap();
    assert!(result.is_ok(), "run returned {result:?}");
}
