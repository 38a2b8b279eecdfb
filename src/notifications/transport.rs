//! The socket under a session, abstract: a [`Connector`] opens a [`Socket`] that yields
//! text frames and sends them. [`WebSocketConnector`] is the real one (tokio-tungstenite,
//! `wss://` with the platform's roots); the tests use in-memory sockets.

use async_trait::async_trait;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio_tungstenite::tungstenite::Message as Frame;

/// An open notification socket.
#[async_trait]
pub trait Socket: Send {
    /// The next text frame; `None` once the socket is closed (by either side or an error).
    async fn next_text(&mut self) -> Option<String>;
    /// Sends a text frame.
    ///
    /// # Errors
    /// When the socket is gone.
    async fn send_text(&mut self, text: &str) -> Result<(), String>;
}

/// Opens sockets to channels' `connectUri`s.
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// A socket to `uri`.
    ///
    /// # Errors
    /// Why it could not be opened (refused, unreachable).
    async fn connect(&self, uri: &str) -> Result<Box<dyn Socket>, String>;
}

/// The real WebSocket transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct WebSocketConnector;

type Stream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct WebSocket(Stream);

#[async_trait]
impl Socket for WebSocket {
    async fn next_text(&mut self) -> Option<String> {
        loop {
            // Pings are answered by tungstenite itself while the stream is read.
            match self.0.next().await? {
                Ok(Frame::Text(text)) => return Some(text.as_str().to_owned()),
                Ok(Frame::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.0
            .send(Frame::text(text))
            .await
            .map_err(|e| e.to_string())
    }
}

#[async_trait]
impl Connector for WebSocketConnector {
    async fn connect(&self, uri: &str) -> Result<Box<dyn Socket>, String> {
        let (stream, _) = tokio_tungstenite::connect_async(uri)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Box::new(WebSocket(stream)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real transport against a local WebSocket server: text frames both ways, a
    /// server ping answered underneath, and a close read as the end.
    #[tokio::test]
    async fn the_websocket_transport_reads_and_sends_text_frames() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut ws = tokio_tungstenite::accept_async(tcp)
                .await
                .expect("handshake");
            ws.send(Frame::Ping(b"p".to_vec().into()))
                .await
                .expect("ping");
            ws.send(Frame::text(r#"{"topicName":"channel.metadata"}"#))
                .await
                .expect("send");
            let from_client = loop {
                match ws.next().await.expect("a frame").expect("ok") {
                    Frame::Text(text) => break text.as_str().to_owned(),
                    Frame::Pong(_) => {}
                    other => panic!("unexpected {other:?}"),
                }
            };
            ws.close(None).await.expect("close");
            from_client
        });
        let mut socket = WebSocketConnector
            .connect(&format!("ws://{address}/channels/x"))
            .await
            .expect("connects");
        assert_eq!(
            socket.next_text().await.as_deref(),
            Some(r#"{"topicName":"channel.metadata"}"#)
        );
        socket
            .send_text(r#"{"message":"ping"}"#)
            .await
            .expect("sent");
        assert_eq!(socket.next_text().await, None, "closed by the server");
        assert_eq!(server.await.expect("server"), r#"{"message":"ping"}"#);
        assert!(
            WebSocketConnector
                .connect(&format!("ws://{address}/channels/x"))
                .await
                .is_err(),
            "nobody listens any more"
        );
    }
}
