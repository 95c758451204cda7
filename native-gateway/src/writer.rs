//! The WebSocket writer shared by the gateway's server, its AMQP relay and the native
//! `gateway+ws://` client: one task per socket sends its queue's messages, and binary messages
//! that queued up while the socket was busy go out together ([`kombu::proto::gateway::gather_batch`]).

use std::future::Future;

use bytes::Bytes;
use futures::{Sink, SinkExt};
use tokio::sync::mpsc;

/// A WebSocket message: axum's on the server side, tungstenite's in the client.
pub(crate) trait WsMessage: Sized {
    /// The payload of a binary message.
    fn binary(&self) -> Option<&Bytes>;
    /// A binary message.
    fn from_binary(bytes: Bytes) -> Self;
    /// A close message (the last one sent).
    fn is_close(&self) -> bool;
}

impl WsMessage for axum::extract::ws::Message {
    fn binary(&self) -> Option<&Bytes> {
        match self {
            Self::Binary(b) => Some(b),
            _ => None,
        }
    }
    fn from_binary(bytes: Bytes) -> Self {
        Self::Binary(bytes)
    }
    fn is_close(&self) -> bool {
        matches!(self, Self::Close(_))
    }
}

impl WsMessage for tokio_tungstenite::tungstenite::Message {
    fn binary(&self) -> Option<&Bytes> {
        match self {
            Self::Binary(b) => Some(b),
            _ => None,
        }
    }
    fn from_binary(bytes: Bytes) -> Self {
        Self::Binary(bytes)
    }
    fn is_close(&self) -> bool {
        matches!(self, Self::Close(_))
    }
}

/// A socket's queue of outgoing messages: bounded (the server, whose producers wait) or not
/// (the client, whose carrier sends without waiting).
pub(crate) trait Outgoing<M> {
    fn recv(&mut self) -> impl Future<Output = Option<M>> + Send;
    fn try_recv(&mut self) -> Option<M>;
}

impl<M: Send> Outgoing<M> for mpsc::Receiver<M> {
    fn recv(&mut self) -> impl Future<Output = Option<M>> + Send {
        mpsc::Receiver::recv(self)
    }
    fn try_recv(&mut self) -> Option<M> {
        mpsc::Receiver::try_recv(self).ok()
    }
}

impl<M: Send> Outgoing<M> for mpsc::UnboundedReceiver<M> {
    fn recv(&mut self) -> impl Future<Output = Option<M>> + Send {
        mpsc::UnboundedReceiver::recv(self)
    }
    fn try_recv(&mut self) -> Option<M> {
        mpsc::UnboundedReceiver::try_recv(self).ok()
    }
}

/// Send `rx`'s messages on `sink` until a close (sent last) or the end of the queue. A binary
/// message takes the binary messages queued behind it along, up to `max()` bytes (0: each goes
/// alone), joined by `join`: [`kombu::proto::gateway::encode_batch`] for gateway frames, or
/// [`kombu::proto::gateway::concat`] where the messages are a byte stream (the AMQP relay).
pub(crate) async fn write_socket<M: WsMessage, S: Sink<M> + Unpin>(mut sink: S, mut rx: impl Outgoing<M>, max: impl Fn() -> usize, join: fn(&[Bytes]) -> Bytes) {
    let mut held: Option<M> = None;
    loop {
        let m = match held.take() {
            Some(m) => m,
            None => match rx.recv().await {
                Some(m) => m,
                None => break,
            },
        };
        let limit = max();
        let m = match m.binary().filter(|_| limit > 0).cloned() {
            Some(first) => {
                let (batch, next) = kombu::proto::gateway::gather_batch(first, limit, || rx.try_recv(), M::binary, join);
                held = next;
                M::from_binary(batch)
            }
            None => m,
        };
        let closing = m.is_close();
        if sink.send(m).await.is_err() || closing {
            break;
        }
    }
    let _ = sink.close().await;
}
