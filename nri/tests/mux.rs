//! The multiplexer against hand-written frames.

mod common;

use std::time::Duration;

use common::*;
use nri::mux::{decode_header, encode_frame, Mux, MAX_WRITE_FRAME};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

async fn read_n(conn: &mut nri::mux::MuxConn, n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    tokio::time::timeout(STEP_TIMEOUT, conn.read_exact(&mut buf))
        .await
        .expect("timed out reading a mux connection")
        .unwrap();
    buf
}

/// Nothing more arrives on `conn` for a short while.
async fn assert_quiet(conn: &mut nri::mux::MuxConn) {
    let mut b = [0u8; 1];
    let r = tokio::time::timeout(Duration::from_millis(100), conn.read(&mut b)).await;
    assert!(r.is_err(), "unexpected data: {r:?}");
}

#[test]
fn frame_bytes_by_hand() {
    // Connection 1, payload "hi": id 00000001, length 00000002, 68 69.
    assert_eq!(encode_frame(1, b"hi"), [0, 0, 0, 1, 0, 0, 0, 2, 0x68, 0x69]);
    // Connection 0x01020304, length 0x00010000.
    assert_eq!(
        decode_header([1, 2, 3, 4, 0, 1, 0, 0]),
        (0x0102_0304, 0x1_0000)
    );
}

#[tokio::test]
async fn coalesced_frames_are_demultiplexed_and_strays_dropped() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let mux = Mux::new(a);
    let mut c1 = mux.open(1).unwrap();
    let mut c2 = mux.open(2).unwrap();
    // One write holding frames for 1, 0 (reserved), 2, 7 (not open), 1.
    let mut bytes = Vec::new();
    bytes.extend(mux_frame(1, b"one-"));
    bytes.extend(mux_frame(0, b"reserved"));
    bytes.extend(mux_frame(2, b"two"));
    bytes.extend(mux_frame(7, b"stray"));
    bytes.extend(mux_frame(1, b"more"));
    bytes.extend(mux_frame(2, b""));
    b.write_all(&bytes).await.unwrap();
    assert_eq!(read_n(&mut c1, 8).await, b"one-more");
    assert_eq!(read_n(&mut c2, 3).await, b"two");
    assert_quiet(&mut c1).await;
    assert_quiet(&mut c2).await;
    // Opening 7 later does not resurrect the dropped frame.
    let mut c7 = mux.open(7).unwrap();
    assert_quiet(&mut c7).await;
}

#[tokio::test]
async fn frames_split_across_writes_are_reassembled() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let mux = Mux::new(a);
    let mut c1 = mux.open(1).unwrap();
    let payload: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let frame = mux_frame(1, &payload);
    // Dribble the frame out in pieces, cutting the header too.
    for piece in frame
        .chunks(777)
        .flat_map(|c| c.chunks(if c.len() > 5 { 5 } else { 1 }))
    {
        b.write_all(piece).await.unwrap();
        b.flush().await.unwrap();
        tokio::task::yield_now().await;
    }
    assert_eq!(read_n(&mut c1, payload.len()).await, payload);
}

#[tokio::test]
async fn writes_become_frames_of_at_most_4k() {
    let (a, b) = UnixStream::pair().unwrap();
    let mux = Mux::new(a);
    let mut c2 = mux.open(2).unwrap();
    let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    c2.write_all(&data).await.unwrap();
    c2.flush().await.unwrap();
    let mut rt = FakeRuntime::new(b);
    let mut got = Vec::new();
    let mut sizes = Vec::new();
    while got.len() < data.len() {
        let (id, payload) = rt.read_frame().await.unwrap();
        assert_eq!(id, 2);
        sizes.push(payload.len());
        got.extend(payload);
    }
    assert_eq!(got, data);
    assert!(
        sizes.iter().all(|s| *s <= MAX_WRITE_FRAME),
        "frame sizes {sizes:?}"
    );
    assert_eq!(sizes, vec![4096, 4096, 1808]);
}

#[tokio::test]
async fn reserved_and_duplicate_ids_cannot_be_opened() {
    let (a, _b) = UnixStream::pair().unwrap();
    let mux = Mux::new(a);
    assert!(mux.open(0).is_err());
    let c = mux.open(3).unwrap();
    assert!(mux.open(3).is_err());
    drop(c);
    assert!(mux.open(3).is_ok(), "a dropped connection can be reopened");
}

#[tokio::test]
async fn peer_close_ends_every_connection() {
    let (a, mut b) = UnixStream::pair().unwrap();
    let mux = Mux::new(a);
    let mut c1 = mux.open(1).unwrap();
    let mut c2 = mux.open(2).unwrap();
    b.write_all(&mux_frame(1, b"last words")).await.unwrap();
    drop(b);
    tokio::time::timeout(STEP_TIMEOUT, mux.closed())
        .await
        .unwrap();
    assert!(mux.is_closed());
    // Data queued before the close is still delivered, then EOF.
    let mut all = Vec::new();
    c1.read_to_end(&mut all).await.unwrap();
    assert_eq!(all, b"last words");
    assert_eq!(c2.read(&mut [0u8; 4]).await.unwrap(), 0);
    assert!(c2.write_all(b"x").await.is_err());
}

#[tokio::test]
async fn truncated_and_oversized_frames_close_the_trunk() {
    // Oversized: length 0x7fffffff.
    let (a, mut b) = UnixStream::pair().unwrap();
    let mux = Mux::new(a);
    let mut c1 = mux.open(1).unwrap();
    b.write_all(&[0, 0, 0, 1, 0x7f, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    tokio::time::timeout(STEP_TIMEOUT, mux.closed())
        .await
        .unwrap();
    assert_eq!(c1.read(&mut [0u8; 4]).await.unwrap(), 0);

    // Truncated: the peer ends inside a frame.
    let (a, mut b) = UnixStream::pair().unwrap();
    let mux = Mux::new(a);
    let _c1 = mux.open(1).unwrap();
    b.write_all(&[0, 0, 0, 1, 0, 0, 0, 9, 1, 2]).await.unwrap();
    drop(b);
    tokio::time::timeout(STEP_TIMEOUT, mux.closed())
        .await
        .unwrap();
}

#[tokio::test]
async fn local_close_flushes_then_shuts_down() {
    let (a, b) = UnixStream::pair().unwrap();
    let mux = Mux::new(a);
    let mut c1 = mux.open(1).unwrap();
    c1.write_all(b"bye").await.unwrap();
    mux.close();
    let mut rt = FakeRuntime::new(b);
    assert_eq!(rt.read_frame().await, Some((1, b"bye".to_vec())));
    assert_eq!(
        rt.read_frame().await,
        None,
        "trunk shut down after the queued frame"
    );
    tokio::time::timeout(STEP_TIMEOUT, mux.closed())
        .await
        .unwrap();
    assert!(c1.write_all(b"x").await.is_err());
}

#[tokio::test]
async fn interleaved_connections_keep_their_own_streams() {
    let (a, b) = UnixStream::pair().unwrap();
    let mux = Mux::new(a);
    let mut c1 = mux.open(1).unwrap();
    let mut c2 = mux.open(2).unwrap();
    let (mut rd, mut wr) = b.into_split();
    // Echo every frame back on the same connection id.
    tokio::spawn(async move {
        let mut hdr = [0u8; 8];
        while rd.read_exact(&mut hdr).await.is_ok() {
            let (id, len) = decode_header(hdr);
            let mut p = vec![0u8; len as usize];
            rd.read_exact(&mut p).await.unwrap();
            wr.write_all(&encode_frame(id, &p)).await.unwrap();
        }
    });
    let w1 = async {
        for i in 0..200u32 {
            c1.write_all(format!("a{i:04};").as_bytes()).await.unwrap();
        }
        c1.flush().await.unwrap();
        read_n(&mut c1, 200 * 6).await
    };
    let w2 = async {
        for i in 0..200u32 {
            c2.write_all(format!("b{i:04};").as_bytes()).await.unwrap();
        }
        c2.flush().await.unwrap();
        read_n(&mut c2, 200 * 6).await
    };
    let (r1, r2) = tokio::join!(w1, w2);
    let e1: String = (0..200).map(|i| format!("a{i:04};")).collect();
    let e2: String = (0..200).map(|i| format!("b{i:04};")).collect();
    assert_eq!(String::from_utf8(r1).unwrap(), e1);
    assert_eq!(String::from_utf8(r2).unwrap(), e2);
}

#[tokio::test]
async fn dropping_the_last_handle_closes_the_trunk() {
    let (a, b) = UnixStream::pair().unwrap();
    let mux = Mux::new(a);
    let mut c1 = mux.open(1).unwrap();
    let other = mux.clone();
    drop(mux);
    assert!(!other.is_closed());
    drop(other);
    let mut rt = FakeRuntime::new(b);
    assert_eq!(rt.read_frame().await, None);
    assert_eq!(c1.read(&mut [0u8; 1]).await.unwrap(), 0);
}
