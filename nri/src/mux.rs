//! The NRI connection multiplexer.
//!
//! NRI runs two ttrpc connections over one socket (the "trunk"). Every chunk
//! of bytes on the trunk is a frame:
//!
//! ```text
//! +----------------------+----------------------+-----------------------+
//! | connection id (u32)  | payload length (u32) | payload (length bytes)|
//! | big endian           | big endian           |                       |
//! +----------------------+----------------------+-----------------------+
//! ```
//!
//! The payloads of one connection id, concatenated, form that connection's
//! byte stream (a ttrpc stream here); frame boundaries carry no meaning.
//! Connection ids are opened locally, without any signalling; id 0 is
//! reserved. Frames for an id that is not open are dropped. There is no
//! per-connection close: the logical connections end with the trunk.
//!
//! [`Mux::new`] takes the trunk and spawns a reader and a writer task on the
//! current tokio runtime; [`Mux::open`] returns a [`MuxConn`], which is a
//! tokio `AsyncRead + AsyncWrite` byte stream usable by the `ttrpc` crate (or
//! anything else).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;

/// Connection id 0 is reserved and cannot be opened.
pub const RESERVED_CONN_ID: u32 = 0;
/// Connection carrying the Plugin service (the plugin is the ttrpc server).
pub const PLUGIN_SERVICE_CONN: u32 = 1;
/// Connection carrying the Runtime service (the plugin is the ttrpc client).
pub const RUNTIME_SERVICE_CONN: u32 = 2;
/// Length of a frame header: connection id and payload length.
pub const FRAME_HEADER_LEN: usize = 8;
/// Largest frame payload accepted: a ttrpc header plus the ttrpc maximum
/// message size (4 MiB). Larger frames are a protocol error that closes the
/// trunk.
pub const MAX_FRAME_PAYLOAD: usize = 10 + (4 << 20);
/// Largest payload this side puts into one frame. The Go multiplexer hands a
/// whole frame to a single `Read` of the ttrpc reader, whose buffer is 4 KiB
/// (bufio's default): larger frames can fail there, so writes are cut into
/// frames of at most this size.
pub const MAX_WRITE_FRAME: usize = 4096;
/// Bytes a connection may queue for reading before the trunk is closed as
/// overrun (the reading side is not keeping up at all).
const MAX_READ_QUEUE: usize = 64 << 20;
/// Bytes queued for the trunk beyond which writers wait.
const MAX_WRITE_QUEUE: usize = 1 << 20;
/// Bytes one `poll_write` call accepts at most.
const MAX_WRITE_CALL: usize = 64 << 10;

/// Encodes one frame: header plus payload.
pub fn encode_frame(conn_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    frame.extend_from_slice(&conn_id.to_be_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Decodes a frame header into (connection id, payload length).
pub fn decode_header(header: [u8; FRAME_HEADER_LEN]) -> (u32, u32) {
    let id = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    (id, len)
}

/// Why the trunk closed (shared with every connection).
#[derive(Clone, Debug)]
enum Closed {
    /// Clean end of stream from the peer, or a local close.
    Eof,
    /// An I/O or protocol error.
    Error(io::ErrorKind, String),
}

impl Closed {
    fn to_io_error(&self) -> io::Error {
        match self {
            Closed::Eof => io::Error::new(io::ErrorKind::BrokenPipe, "multiplexed trunk closed"),
            Closed::Error(kind, msg) => io::Error::new(*kind, msg.clone()),
        }
    }
}

#[derive(Default)]
struct ConnState {
    /// Received payloads not yet read; the first one is consumed from `offset`.
    frames: VecDeque<Vec<u8>>,
    offset: usize,
    queued: usize,
    read_waker: Option<Waker>,
    /// Sequence number of the last frame this connection queued for the trunk.
    last_seq: u64,
    flush_wakers: Vec<Waker>,
}

#[derive(Default)]
struct State {
    conns: HashMap<u32, ConnState>,
    /// Encoded frames waiting for the writer task, each with its sequence number.
    out: VecDeque<(u64, Vec<u8>)>,
    out_bytes: usize,
    next_seq: u64,
    /// Sequence number of the last frame fully written to the trunk.
    written_seq: u64,
    writer_waker: Option<Waker>,
    space_wakers: Vec<Waker>,
    closed: Option<Closed>,
    /// Set by a local close: the writer drains what is queued, then stops.
    closing: bool,
}

struct Shared {
    state: Mutex<State>,
    closed_tx: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state inconsistent
        // in a way that matters more than losing the connection.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the trunk closed (first reason wins) and wakes everybody.
    fn close(&self, why: Closed) {
        let mut wakers = Vec::new();
        {
            let mut st = self.lock();
            if st.closed.is_none() {
                match &why {
                    Closed::Eof => log::debug!("nri mux: trunk closed"),
                    Closed::Error(_, msg) => log::warn!("nri mux: trunk closed: {msg}"),
                }
                st.closed = Some(why);
            }
            take_all_wakers(&mut st, &mut wakers);
        }
        for w in wakers {
            w.wake();
        }
        self.closed_tx.send_replace(true);
    }
}

fn take_all_wakers(st: &mut State, wakers: &mut Vec<Waker>) {
    wakers.extend(st.writer_waker.take());
    wakers.append(&mut st.space_wakers);
    for c in st.conns.values_mut() {
        wakers.extend(c.read_waker.take());
        wakers.append(&mut c.flush_wakers);
    }
}

/// A multiplexer over one trunk connection. Cloning yields another handle to
/// the same multiplexer; dropping the last handle closes it like
/// [`Mux::close`] (open [`MuxConn`]s do not keep it alive).
#[derive(Clone)]
pub struct Mux {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

/// Closes the multiplexer when the last [`Mux`] handle goes.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        close_locally(&self.0);
    }
}

fn close_locally(shared: &Shared) {
    let waker = {
        let mut st = shared.lock();
        st.closing = true;
        st.writer_waker.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
}

impl Mux {
    /// Starts multiplexing `trunk`: spawns the reader and writer tasks on the
    /// current tokio runtime (panics outside one, like `tokio::spawn`).
    ///
    /// Open the connections you expect data on right after this call: frames
    /// that arrive for a connection that is not open are dropped.
    pub fn new<T>(trunk: T) -> Mux
    where
        T: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (closed_tx, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            closed_tx,
        });
        let (rd, wr) = tokio::io::split(trunk);
        tokio::spawn(reader_task(rd, shared.clone()));
        tokio::spawn(writer_task(wr, shared.clone()));
        Mux {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        }
    }

    /// Opens the logical connection `id`. Fails for the reserved id 0 and for
    /// an id that is already open.
    pub fn open(&self, id: u32) -> io::Result<MuxConn> {
        if id == RESERVED_CONN_ID {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "connection id 0 is reserved",
            ));
        }
        let mut st = self.shared.lock();
        if st.conns.contains_key(&id) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("connection {id} is already open"),
            ));
        }
        st.conns.insert(id, ConnState::default());
        Ok(MuxConn {
            id,
            shared: self.shared.clone(),
        })
    }

    /// Closes the multiplexer: frames already queued are still written, then
    /// the trunk is shut down; every connection then reads end-of-stream and
    /// fails to write.
    pub fn close(&self) {
        close_locally(&self.shared);
    }

    /// Whether the trunk is closed.
    pub fn is_closed(&self) -> bool {
        *self.shared.closed_tx.borrow()
    }

    /// Waits until the trunk is closed (by the peer, an error or [`Mux::close`]).
    pub async fn closed(&self) {
        let mut rx = self.shared.closed_tx.subscribe();
        // The sender lives in `self.shared`, so this cannot fail.
        let _ = rx.wait_for(|closed| *closed).await;
    }
}

async fn reader_task<R: AsyncRead + Unpin>(mut rd: R, shared: Arc<Shared>) {
    let mut closed_rx = shared.closed_tx.subscribe();
    let why = tokio::select! {
        why = read_frames(&mut rd, &shared) => why,
        _ = closed_rx.wait_for(|c| *c) => return,
    };
    shared.close(why);
}

async fn read_frames<R: AsyncRead + Unpin>(rd: &mut R, shared: &Shared) -> Closed {
    loop {
        let mut header = [0u8; FRAME_HEADER_LEN];
        // A clean EOF is only clean on a frame boundary.
        let mut got = 0;
        while got < FRAME_HEADER_LEN {
            match rd.read(&mut header[got..]).await {
                Ok(0) if got == 0 => return Closed::Eof,
                Ok(0) => {
                    return Closed::Error(
                        io::ErrorKind::UnexpectedEof,
                        "trunk ended inside a frame header".into(),
                    )
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Closed::Error(e.kind(), format!("reading trunk: {e}")),
            }
        }
        let (id, len) = decode_header(header);
        let len = len as usize;
        if len > MAX_FRAME_PAYLOAD {
            return Closed::Error(
                io::ErrorKind::InvalidData,
                format!("oversized frame for connection {id}: {len} bytes"),
            );
        }
        let mut payload = vec![0u8; len];
        if let Err(e) = rd.read_exact(&mut payload).await {
            return Closed::Error(e.kind(), format!("reading frame payload: {e}"));
        }
        if len == 0 {
            continue;
        }
        let waker = {
            let mut st = shared.lock();
            match st.conns.get_mut(&id) {
                Some(conn) if id != RESERVED_CONN_ID => {
                    if conn.queued + len > MAX_READ_QUEUE {
                        drop(st);
                        return Closed::Error(
                            io::ErrorKind::OutOfMemory,
                            format!("read queue of connection {id} overrun"),
                        );
                    }
                    conn.queued += len;
                    conn.frames.push_back(payload);
                    conn.read_waker.take()
                }
                _ => {
                    log::debug!("nri mux: dropping {len} bytes for unopened connection {id}");
                    None
                }
            }
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

async fn writer_task<W: AsyncWrite + Unpin>(mut wr: W, shared: Arc<Shared>) {
    loop {
        // Take everything queued, or learn that we are done.
        let batch = std::future::poll_fn(|cx| {
            let mut st = shared.lock();
            if st.closed.is_some() {
                return Poll::Ready(None);
            }
            if !st.out.is_empty() {
                let batch: Vec<(u64, Vec<u8>)> = st.out.drain(..).collect();
                return Poll::Ready(Some(batch));
            }
            if st.closing {
                return Poll::Ready(None);
            }
            st.writer_waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let Some(batch) = batch else { break };
        let mut last = 0;
        let mut bytes = 0;
        let mut buf = Vec::with_capacity(batch.iter().map(|(_, f)| f.len()).sum());
        for (seq, frame) in &batch {
            buf.extend_from_slice(frame);
            last = *seq;
            bytes += frame.len();
        }
        let res = async {
            wr.write_all(&buf).await?;
            wr.flush().await
        }
        .await;
        if let Err(e) = res {
            shared.close(Closed::Error(e.kind(), format!("writing trunk: {e}")));
            return;
        }
        let mut wakers = Vec::new();
        {
            let mut st = shared.lock();
            st.written_seq = last;
            st.out_bytes -= bytes;
            wakers.append(&mut st.space_wakers);
            for c in st.conns.values_mut() {
                if c.last_seq <= last {
                    wakers.append(&mut c.flush_wakers);
                }
            }
        }
        for w in wakers {
            w.wake();
        }
    }
    let _ = wr.shutdown().await;
    shared.close(Closed::Eof);
}

/// One logical connection of a [`Mux`]: a byte stream in both directions.
/// Dropping it closes the connection locally (later frames for its id are
/// dropped); the trunk stays open.
pub struct MuxConn {
    id: u32,
    shared: Arc<Shared>,
}

impl MuxConn {
    /// The connection id.
    pub fn id(&self) -> u32 {
        self.id
    }
}

impl std::fmt::Debug for MuxConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MuxConn").field("id", &self.id).finish()
    }
}

impl Drop for MuxConn {
    fn drop(&mut self) {
        self.shared.lock().conns.remove(&self.id);
    }
}

fn not_open(id: u32) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        format!("connection {id} is not open"),
    )
}

impl AsyncRead for MuxConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut st = self.shared.lock();
        let closed = st.closed.clone();
        let Some(conn) = st.conns.get_mut(&self.id) else {
            return Poll::Ready(Err(not_open(self.id)));
        };
        if conn.frames.is_empty() {
            return match closed {
                // Both a clean close and an error end the stream for readers;
                // the error itself is reported to writers and by the Mux.
                Some(_) => Poll::Ready(Ok(())),
                None => {
                    conn.read_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            };
        }
        while buf.remaining() > 0 {
            let Some(front) = conn.frames.front() else {
                break;
            };
            let avail = &front[conn.offset..];
            let n = avail.len().min(buf.remaining());
            buf.put_slice(&avail[..n]);
            conn.offset += n;
            conn.queued -= n;
            if conn.offset == front.len() {
                conn.frames.pop_front();
                conn.offset = 0;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for MuxConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut st = self.shared.lock();
        if let Some(why) = &st.closed {
            return Poll::Ready(Err(why.to_io_error()));
        }
        if st.closing {
            return Poll::Ready(Err(Closed::Eof.to_io_error()));
        }
        if !st.conns.contains_key(&self.id) {
            return Poll::Ready(Err(not_open(self.id)));
        }
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if st.out_bytes >= MAX_WRITE_QUEUE {
            st.space_wakers.push(cx.waker().clone());
            return Poll::Pending;
        }
        let take = buf.len().min(MAX_WRITE_CALL);
        for chunk in buf[..take].chunks(MAX_WRITE_FRAME) {
            st.next_seq += 1;
            let seq = st.next_seq;
            let frame = encode_frame(self.id, chunk);
            st.out_bytes += frame.len();
            st.out.push_back((seq, frame));
        }
        let seq = st.next_seq;
        if let Some(conn) = st.conns.get_mut(&self.id) {
            conn.last_seq = seq;
        }
        let waker = st.writer_waker.take();
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
        Poll::Ready(Ok(take))
    }

    /// Completes when everything this connection wrote is on the trunk.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.shared.lock();
        let written = st.written_seq;
        let closed = st.closed.clone();
        let Some(conn) = st.conns.get_mut(&self.id) else {
            return Poll::Ready(Err(not_open(self.id)));
        };
        if conn.last_seq <= written {
            return Poll::Ready(Ok(()));
        }
        if let Some(why) = closed {
            return Poll::Ready(Err(why.to_io_error()));
        }
        conn.flush_wakers.push(cx.waker().clone());
        Poll::Pending
    }

    /// The protocol has no per-connection close: this only flushes.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_encoding() {
        assert_eq!(
            encode_frame(2, b"abc"),
            vec![0, 0, 0, 2, 0, 0, 0, 3, b'a', b'b', b'c']
        );
        assert_eq!(decode_header([0, 0, 0, 1, 0, 0, 1, 0]), (1, 256));
    }
}
