//! A small WebSocket client for the notification tests (tokio-tungstenite, the version
//! axum's `ws` feature uses): connect to a `connectUri`, read the next frame as JSON, a
//! close or a cut, send a ping.
//!
//! Include it with `#[path = "support/websocket.rs"] mod websocket;`.

#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A connected notification socket.
pub type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Longest wait for a frame before a test fails (only reached when something is broken).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// What the server did next.
#[derive(Debug)]
pub enum Frame {
    /// A text frame, parsed.
    Json(Value),
    /// A close frame with its code.
    Closed(Option<u16>),
    /// The connection ended without a close frame.
    Cut,
}

/// Connects to `uri` (panics when refused).
pub async fn connect(uri: &str) -> Socket {
    tokio_tungstenite::connect_async(uri)
        .await
        .unwrap_or_else(|e| panic!("connect to {uri}: {e}"))
        .0
}

/// The HTTP status of a refused connection (panics when it is accepted).
pub async fn refused_status(uri: &str) -> u16 {
    match tokio_tungstenite::connect_async(uri).await {
        Ok(_) => panic!("{uri} accepted a socket"),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("{uri}: {other}"),
    }
}

/// The next frame (pings and pongs of the protocol itself are skipped).
pub async fn next(socket: &mut Socket) -> Frame {
    loop {
        let message = tokio::time::timeout(PATIENCE, socket.next())
            .await
            .expect("a frame within the patience");
        return match message {
            Some(Ok(Message::Text(text))) => Frame::Json(
                serde_json::from_str(text.as_str())
                    .unwrap_or_else(|e| panic!("frame is not JSON ({e}): {text}")),
            ),
            Some(Ok(Message::Close(frame))) => Frame::Closed(frame.map(|f| u16::from(f.code))),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(other)) => panic!("unexpected frame {other:?}"),
            Some(Err(_)) | None => Frame::Cut,
        };
    }
}

/// The next text frame, parsed (panics on a close or a cut).
pub async fn next_json(socket: &mut Socket) -> Value {
    match next(socket).await {
        Frame::Json(value) => value,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// The next message whose `topicName` satisfies `wanted`, skipping others.
pub async fn next_on(socket: &mut Socket, wanted: impl Fn(&str) -> bool) -> Value {
    loop {
        let message = next_json(socket).await;
        if wanted(message["topicName"].as_str().unwrap_or_default()) {
            return message;
        }
    }
}

/// Sends Genesys' client ping, `{"message":"ping"}`.
pub async fn ping(socket: &mut Socket) {
    socket
        .send(Message::Text(r#"{"message":"ping"}"#.into()))
        .await
        .expect("ping sent");
}
