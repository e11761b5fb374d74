//! A fake NRI runtime for tests: speaks the multiplexed framing and ttrpc by
//! hand over one end of a socket pair.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use protobuf::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

pub const PLUGIN_SERVICE: &str = "nri.pkg.api.v1alpha1.Plugin";
pub const RUNTIME_SERVICE: &str = "nri.pkg.api.v1alpha1.Runtime";
pub const TTRPC_REQUEST: u8 = 1;
pub const TTRPC_RESPONSE: u8 = 2;

/// Fails a test that hangs instead of blocking the suite.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

pub fn mux_frame(conn: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = conn.to_be_bytes().to_vec();
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v
}

pub fn ttrpc_message(stream_id: u32, msg_type: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&stream_id.to_be_bytes());
    v.push(msg_type);
    v.push(0);
    v.extend_from_slice(payload);
    v
}

/// A received ttrpc message.
#[derive(Debug)]
pub struct TtrpcMsg {
    pub stream_id: u32,
    pub msg_type: u8,
    pub flags: u8,
    pub payload: Vec<u8>,
}

pub struct FakeRuntime {
    pub sock: UnixStream,
    /// Reassembled, not yet consumed bytes per connection id.
    streams: HashMap<u32, Vec<u8>>,
    /// Every frame received, in order: (connection id, payload).
    pub frames: Vec<(u32, Vec<u8>)>,
}

impl FakeRuntime {
    pub fn new(sock: UnixStream) -> Self {
        FakeRuntime {
            sock,
            streams: HashMap::new(),
            frames: Vec::new(),
        }
    }

    /// Reads one mux frame; None on EOF.
    pub async fn read_frame(&mut self) -> Option<(u32, Vec<u8>)> {
        let mut hdr = [0u8; 8];
        match tokio::time::timeout(STEP_TIMEOUT, self.sock.read_exact(&mut hdr)).await {
            Err(_) => panic!("fake runtime: timed out waiting for a frame"),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
            Ok(Err(e)) => panic!("fake runtime: read error {e}"),
            Ok(Ok(_)) => {}
        }
        let id = u32::from_be_bytes(hdr[0..4].try_into().unwrap());
        let len = u32::from_be_bytes(hdr[4..8].try_into().unwrap()) as usize;
        let mut payload = vec![0u8; len];
        self.sock.read_exact(&mut payload).await.unwrap();
        self.frames.push((id, payload.clone()));
        Some((id, payload))
    }

    /// Reads frames until connection `conn` holds one complete ttrpc message.
    pub async fn read_msg(&mut self, conn: u32) -> TtrpcMsg {
        loop {
            if let Some(buf) = self.streams.get_mut(&conn) {
                if buf.len() >= 10 {
                    let len = u32::from_be_bytes(buf[0..4].try_into().unwrap()) as usize;
                    if buf.len() >= 10 + len {
                        let msg = TtrpcMsg {
                            stream_id: u32::from_be_bytes(buf[4..8].try_into().unwrap()),
                            msg_type: buf[8],
                            flags: buf[9],
                            payload: buf[10..10 + len].to_vec(),
                        };
                        buf.drain(..10 + len);
                        return msg;
                    }
                }
            }
            let (id, payload) = self
                .read_frame()
                .await
                .expect("plugin closed the connection");
            self.streams
                .entry(id)
                .or_default()
                .extend_from_slice(&payload);
        }
    }

    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.sock.write_all(bytes).await.unwrap();
    }

    /// Sends a ttrpc request on connection 1 (the Plugin service) as one
    /// frame.
    pub async fn send_request(&mut self, stream_id: u32, method: &str, payload: Vec<u8>) {
        let msg = ttrpc_message(stream_id, TTRPC_REQUEST, &request_bytes(method, payload));
        self.write_raw(&mux_frame(1, &msg)).await;
    }

    /// Calls a Plugin service method and returns the ttrpc response.
    pub async fn call(
        &mut self,
        stream_id: u32,
        method: &str,
        req: &dyn protobuf::MessageDyn,
    ) -> ttrpc::Response {
        let payload = req.write_to_bytes_dyn().unwrap();
        self.send_request(stream_id, method, payload).await;
        self.response(stream_id).await
    }

    /// Reads the response to `stream_id` on connection 1.
    pub async fn response(&mut self, stream_id: u32) -> ttrpc::Response {
        let msg = self.read_msg(1).await;
        assert_eq!(msg.msg_type, TTRPC_RESPONSE, "expected a response");
        assert_eq!(msg.stream_id, stream_id, "response for another stream");
        ttrpc::Response::parse_from_bytes(&msg.payload).unwrap()
    }

    /// Answers a request received on connection 2 (Runtime service) with
    /// an OK response carrying `payload`.
    pub async fn reply_ok(&mut self, stream_id: u32, payload: Vec<u8>) {
        let mut resp = ttrpc::Response::new();
        resp.payload = payload;
        let msg = ttrpc_message(stream_id, TTRPC_RESPONSE, &resp.write_to_bytes().unwrap());
        self.write_raw(&mux_frame(2, &msg)).await;
    }

    /// Waits for the plugin to close its side.
    pub async fn expect_eof(&mut self) {
        while let Some((id, payload)) = self.read_frame().await {
            self.streams
                .entry(id)
                .or_default()
                .extend_from_slice(&payload);
        }
    }
}

pub fn request_bytes(method: &str, payload: Vec<u8>) -> Vec<u8> {
    let mut req = ttrpc::Request::new();
    req.service = PLUGIN_SERVICE.to_string();
    req.method = method.to_string();
    req.payload = payload;
    req.timeout_nano = 2_000_000_000;
    req.write_to_bytes().unwrap()
}

/// The status code of a response (0 = OK when no status is set).
pub fn code(resp: &ttrpc::Response) -> i32 {
    resp.status.as_ref().map(|s| s.code.value()).unwrap_or(0)
}
