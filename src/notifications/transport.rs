//! The socket under a session, abstract: a [`Connector`] opens a [`Socket`] that yields
//! text frames and sends them. [`WebSocketConnector`] is the real one; the tests use
//! in-memory sockets.
//!
//! The WebSocket handshake is an HTTP/1.1 request, so the real connector makes it with
//! the same HTTP client rules as every Genesys call ([`crate::egress`]): `HTTPS_PROXY`
//! (a `CONNECT` tunnel for `wss://`) and the other proxy variables, `NO_PROXY`, loopback
//! always direct, the platform's CAs, errors that name the egress proxy when it failed.
//! The handshake's answer is checked (`101`, `Sec-WebSocket-Accept`), and the upgraded
//! connection carries the WebSocket frames (tokio-tungstenite).

use std::time::Duration;

use async_trait::async_trait;
use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::header::{CONNECTION, HeaderValue, UPGRADE};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use url::Url;

use crate::egress::Egress;

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

/// How long the handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// The real WebSocket transport, through the egress proxies.
#[derive(Debug, Clone)]
pub struct WebSocketConnector {
    http: reqwest::Client,
    egress: Egress,
}

impl WebSocketConnector {
    /// A connector following `egress` (the Genesys client's: [`crate::upstream::GenesysClient::egress`]).
    ///
    /// # Errors
    /// A proxy variable whose URL cannot be used, or no HTTP client.
    pub fn new(egress: &Egress) -> Result<Self, String> {
        let builder = egress.configure(Self::builder())?;
        Self::with_builder(builder, egress.clone())
    }

    /// The HTTP client's settings: HTTP/1.1 (a WebSocket handshake is an HTTP/1.1
    /// upgrade), the proxy's user agent, bounded connection and handshake times.
    fn builder() -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .http1_only()
            .user_agent(concat!("genesys-proxy/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(5))
    }

    fn with_builder(builder: reqwest::ClientBuilder, egress: Egress) -> Result<Self, String> {
        let http = builder
            .build()
            .map_err(|e| format!("cannot build the notification socket's HTTP client: {e}"))?;
        Ok(Self { http, egress })
    }
}

struct WebSocket(WebSocketStream<reqwest::Upgraded>);

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

/// The handshake's URL: `wss://` is `https://`, `ws://` is `http://`.
fn handshake_url(uri: &str) -> Result<Url, String> {
    let mut url = Url::parse(uri).map_err(|e| format!("the connectUri is not a URL: {e}"))?;
    let scheme = match url.scheme() {
        "wss" => "https",
        "ws" => "http",
        other => {
            return Err(format!(
                "the connectUri's scheme {other:?} is not ws or wss"
            ));
        }
    };
    url.set_scheme(scheme)
        .map_err(|()| "the connectUri cannot be used".to_owned())?;
    Ok(url)
}

#[async_trait]
impl Connector for WebSocketConnector {
    async fn connect(&self, uri: &str) -> Result<Box<dyn Socket>, String> {
        let url = handshake_url(uri)?;
        let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
        let answer = self
            .http
            .get(url.clone())
            .header(CONNECTION, HeaderValue::from_static("Upgrade"))
            .header(UPGRADE, HeaderValue::from_static("websocket"))
            .header("sec-websocket-version", HeaderValue::from_static("13"))
            .header("sec-websocket-key", &key)
            .timeout(HANDSHAKE_TIMEOUT)
            .send()
            .await
            .map_err(|e| self.egress.describe(&e, &url))?;
        if answer.status() != reqwest::StatusCode::SWITCHING_PROTOCOLS {
            return Err(format!(
                "the WebSocket handshake was answered {} (not 101)",
                answer.status()
            ));
        }
        let expected = derive_accept_key(key.as_bytes());
        if answer
            .headers()
            .get("sec-websocket-accept")
            .is_none_or(|accept| accept.as_bytes() != expected.as_bytes())
        {
            return Err("the WebSocket handshake's Sec-WebSocket-Accept is wrong".into());
        }
        let upgraded = answer
            .upgrade()
            .await
            .map_err(|e| format!("the WebSocket upgrade failed: {e}"))?;
        let stream = WebSocketStream::from_raw_socket(upgraded, Role::Client, None).await;
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
        let connector = WebSocketConnector::new(&Egress::default()).expect("connector");
        let mut socket = connector
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
            connector
                .connect(&format!("ws://{address}/channels/x"))
                .await
                .is_err(),
            "nobody listens any more"
        );
    }

    /// The socket to a Genesys host takes `HTTPS_PROXY` as the REST calls do: a `CONNECT`
    /// to the streaming host's port 443 (no name resolved here), and a refusal named.
    #[tokio::test]
    async fn a_wss_socket_tunnels_through_https_proxy_and_a_refusal_names_the_proxy() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let proxy = format!("http://{}", listener.local_addr().expect("address"));
        let seen = tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.expect("accept");
            let mut head = Vec::new();
            let mut byte = [0_u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                tcp.read_exact(&mut byte).await.expect("head");
                head.push(byte[0]);
            }
            tcp.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                .await
                .expect("answer");
            String::from_utf8(head).expect("text")
        });
        let egress = Egress::from_lookup(|name| (name == "HTTPS_PROXY").then(|| proxy.clone()));
        let connector = WebSocketConnector::new(&egress).expect("connector");
        let Err(error) = connector
            .connect("wss://streaming.example.test/channels/streaming-1")
            .await
        else {
            panic!("the proxy refused");
        };
        let head = seen.await.expect("proxy");
        assert!(
            head.starts_with("CONNECT streaming.example.test:443 HTTP/1.1"),
            "{head}"
        );
        assert!(error.contains(&proxy), "names the proxy: {error}");
    }

    #[test]
    fn only_websocket_uris_are_connected() {
        assert_eq!(
            handshake_url("wss://h/channels/x").expect("wss").as_str(),
            "https://h/channels/x"
        );
        assert_eq!(
            handshake_url("ws://h:81/c").expect("ws").as_str(),
            "http://h:81/c"
        );
        for bad in ["https://h/c", "h/c", ""] {
            assert!(handshake_url(bad).is_err(), "{bad}");
        }
    }
}
