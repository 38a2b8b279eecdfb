//! One notification WebSocket, attached to its channel: it writes what the registry and
//! the pump send it, a heartbeat every heartbeat interval (unless the heartbeat fault is
//! on), a pong for each client ping, and it ends when the channel expires (close frame,
//! the channel and its subscriptions gone), when told to close (another socket took the
//! channel, maintenance) or to cut (a dropped connection), or when the client goes.

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use tokio::time::{Instant, sleep_until};

use super::channels::{Attachment, Outbound};
use super::events;
use crate::state::SimState;

/// Serves one socket until it ends, then detaches it from its channel.
pub(crate) async fn serve(
    mut socket: WebSocket,
    sim: Arc<SimState>,
    channel: String,
    attachment: Attachment,
) {
    let Attachment {
        generation,
        mut receiver,
        expires_at,
        ..
    } = attachment;
    let mut next_beat = Instant::now() + sim.notifications.settings().heartbeat_interval;
    loop {
        tokio::select! {
            () = sleep_until(expires_at) => {
                let _ = close(&mut socket, 1000, "channel expired").await;
                if sim.notifications.channels().remove(&channel) {
                    sim.notifications.count(|c| c.channels_expired += 1);
                }
                return;
            }
            () = sleep_until(next_beat) => {
                next_beat = Instant::now() + sim.notifications.settings().heartbeat_interval;
                if sim.faults().sends_heartbeats() {
                    if send(&mut socket, events::heartbeat()).await.is_err() {
                        break;
                    }
                    sim.notifications.count(|c| c.heartbeats_sent += 1);
                }
            }
            outbound = receiver.recv() => match outbound {
                Some(Outbound::Text(text)) => {
                    if send(&mut socket, text).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close(code, reason)) => {
                    let _ = close(&mut socket, code, reason).await;
                    break;
                }
                Some(Outbound::Cut) | None => break,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if events::is_ping(text.as_str()) && sim.faults().answers_pings() {
                        if send(&mut socket, events::pong()).await.is_err() {
                            break;
                        }
                        sim.notifications.count(|c| c.pongs_sent += 1);
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    sim.notifications.channels().detach(&channel, generation);
}

async fn send(socket: &mut WebSocket, text: String) -> Result<(), axum::Error> {
    socket.send(Message::Text(Utf8Bytes::from(text))).await
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) -> Result<(), axum::Error> {
    socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await
}
