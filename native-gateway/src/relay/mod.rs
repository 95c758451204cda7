//! The `/amqp` endpoint: AMQP 0-9-1 over WebSocket, relayed to the RabbitMQ the gateway
//! fronts (`--broker amqp://...`). Binary WebSocket messages carry the raw AMQP byte stream
//! both ways, so any AMQP-over-WebSocket client works through it (e.g. the npm package
//! `@cloudamqp/amqp-client`).
//!
//! Without a token file the relay is transparent: the client logs in to RabbitMQ with its own
//! credentials. With one, the client logs in with its gateway token as the PLAIN password
//! (any user name); the relay checks it, logs in upstream with the broker URL's credentials
//! (the browser never sees them), checks the virtual host in `connection.open` against the
//! identity's, and checks every method that names an exchange or a queue against the
//! identity's configure/write/read patterns. A refused method closes its channel with
//! `403 ACCESS_REFUSED` toward the client, as RabbitMQ would, and the relay closes the same
//! channel upstream; the frames of both sides on that channel are dropped until each side
//! has confirmed the close.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::extract::ws::{Message, WebSocket};
use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use kombu::proto::amqp::{self, Method};
use kombu::transport::carrier::outbox::Outbox;
use kombu::transport::ConnectInfo;
use kombu::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::auth::{Admitted, Auth, Identity};
use crate::writer::{self, write_socket, Out};

/// What the relay needs from the server.
pub struct RelayConfig {
    /// The upstream broker (an `amqp://` or `amqps://` URL's parts).
    pub upstream: ConnectInfo,
    /// Identities, when the gateway has a token file.
    pub auth: Option<Arc<Auth>>,
    /// Largest AMQP frame accepted from either side.
    pub frame_max: u32,
}

/// Channels being closed by the relay after a refusal.
#[derive(Default)]
struct Closing {
    /// Waiting for the client's `channel.close-ok` (its frames on the channel are dropped).
    client: HashSet<u16>,
    /// Waiting for the broker's `channel.close-ok` (its frames on the channel are dropped).
    broker: HashSet<u16>,
}

fn method_frame(channel: u16, m: &Method) -> Result<Bytes, Error> {
    let mut out = BytesMut::new();
    amqp::write_method(channel, m, &mut out)?;
    Ok(out.freeze())
}

/// Relay one WebSocket connection until either side ends it.
/// Ends (closing both sides) when `stopping` turns true.
pub async fn relay(socket: WebSocket, cfg: Arc<RelayConfig>, mut stopping: tokio::sync::watch::Receiver<bool>) -> Result<(), Error> {
    let (ws_tx, mut ws_rx) = socket.split();
    let (to_client, to_client_rx) = mpsc::channel::<Out>(64);
    // A byte stream: what queues up while the socket is busy goes out as one message (a
    // browser pays per message received).
    let writer = tokio::spawn(write_socket(writer::WebSocket::new(ws_tx), to_client_rx, Outbox::new(0, true), || kombu::proto::gateway::BATCH_BYTES));
    let info = &cfg.upstream;
    let port = info.port.unwrap_or(if info.ssl { 5671 } else { 5672 });
    let upstream = match crate::tls::connect(info, port, info.ssl).await {
        Ok(s) => s,
        Err(e) => {
            let _ = to_client.send(Out::close(1011, &format!("cannot reach the broker: {e}"))).await;
            drop(to_client);
            let _ = writer.await;
            return Err(e);
        }
    };
    let (mut up_rd, mut up_wr) = tokio::io::split(upstream);
    let closing = Arc::new(Mutex::new(Closing::default()));
    // Signalled when the broker confirms closing a channel the relay closed.
    let broker_closed = Arc::new(tokio::sync::Notify::new());

    // Broker -> client: forward whole frames, dropping those on channels the relay closed.
    let from_broker = {
        let to_client = to_client.clone();
        let closing = closing.clone();
        let broker_closed = broker_closed.clone();
        let frame_max = cfg.frame_max;
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let reason = loop {
                match up_rd.read_buf(&mut buf).await {
                    Ok(0) => break "the broker closed the connection".to_owned(),
                    Ok(_) => {}
                    Err(e) => break format!("broker connection failed: {e}"),
                }
                let mut out = BytesMut::new();
                loop {
                    let frame = match amqp::split_frame(&buf, frame_max) {
                        Ok(Some(f)) => f,
                        Ok(None) => break,
                        Err(e) => {
                            let _ = to_client.send(Out::close(1011, &format!("malformed frame from the broker: {e}"))).await;
                            return;
                        }
                    };
                    let n = frame.len;
                    let drop_it = {
                        let mut c = closing.lock().unwrap_or_else(|p| p.into_inner());
                        if c.broker.contains(&frame.channel) {
                            if frame.method_ids() == Some((20, 41)) {
                                c.broker.remove(&frame.channel);
                                broker_closed.notify_waiters();
                            }
                            true
                        } else {
                            false
                        }
                    };
                    if !drop_it {
                        out.extend_from_slice(&buf[..n]);
                    }
                    buf.advance(n);
                }
                if !out.is_empty() && to_client.send(Out::Frame(out.freeze())).await.is_err() {
                    return;
                }
            };
            let _ = to_client.send(Out::close(1000, &reason)).await;
        })
    };

    // Client -> broker.
    let mut buf = BytesMut::new();
    let mut header_seen = false;
    let mut identity: Option<Arc<Identity>> = None;
    let mut token: Option<String> = None;
    let mut admitted: Option<Admitted> = None;
    let result: Result<(), Error> = 'conn: loop {
        let next = tokio::select! {
            biased;
            m = ws_rx.next() => m,
            _ = async { let _ = stopping.wait_for(|s| *s).await; } => {
                let _ = to_client.send(Out::close(1001, "kombu-gateway is shutting down")).await;
                break Ok(());
            }
        };
        let Some(msg) = next else { break Ok(()) };
        match msg {
            Ok(Message::Binary(b)) => buf.extend_from_slice(&b),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) | Err(_) => break Ok(()),
            Ok(Message::Text(_)) => {
                let _ = to_client.send(Out::close(1003, "AMQP over WebSocket uses binary messages")).await;
                break Err(Error::Decode("text message on /amqp".into()));
            }
        }
        let mut out = BytesMut::new();
        if !header_seen {
            if buf.len() < 8 {
                continue;
            }
            if &buf[..8] != amqp::PROTOCOL_HEADER {
                let _ = to_client.send(Out::Frame(Bytes::from_static(amqp::PROTOCOL_HEADER))).await;
                let _ = to_client.send(Out::close(1002, "expected the AMQP 0-9-1 protocol header")).await;
                break Err(Error::Decode("not AMQP 0-9-1".into()));
            }
            out.extend_from_slice(&buf[..8]);
            buf.advance(8);
            header_seen = true;
        }
        loop {
            let frame = match amqp::split_frame(&buf, cfg.frame_max) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    let _ = to_client.send(Out::close(1002, &format!("malformed AMQP frame: {e}"))).await;
                    break 'conn Err(e);
                }
            };
            let n = frame.len;
            let channel = frame.channel;
            // The client may reuse a channel the relay closed as soon as it has confirmed the
            // close, but RabbitMQ refuses a channel.open on a channel it is still closing
            // ("second 'channel.open' seen"): what came before goes out, then the client's
            // frames wait for the broker's close-ok.
            let held = {
                let c = closing.lock().unwrap_or_else(|p| p.into_inner());
                c.broker.contains(&channel) && !c.client.contains(&channel)
            };
            if held {
                if !out.is_empty() {
                    if let Err(e) = up_wr.write_all(&out).await {
                        let _ = to_client.send(Out::close(1011, &format!("broker connection failed: {e}"))).await;
                        break 'conn Err(Error::RecoverableConnection(e.to_string()));
                    }
                    out.clear();
                }
                let confirmed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
                    loop {
                        let notified = broker_closed.notified();
                        if !closing.lock().unwrap_or_else(|p| p.into_inner()).broker.contains(&channel) {
                            break;
                        }
                        notified.await;
                    }
                })
                .await;
                if confirmed.is_err() {
                    let text = format!("the broker did not confirm closing channel {channel}");
                    let _ = to_client.send(Out::close(1011, &text)).await;
                    break 'conn Err(Error::RecoverableConnection(text));
                }
            }
            // Frames on a channel the relay is closing toward the client are dropped until
            // the client's close-ok (which the broker must not see).
            {
                let mut c = closing.lock().unwrap_or_else(|p| p.into_inner());
                if c.client.contains(&channel) {
                    if frame.method_ids() == Some((20, 41)) {
                        c.client.remove(&channel);
                    }
                    buf.advance(n);
                    continue;
                }
            }
            let Some(auth) = cfg.auth.as_ref() else {
                out.extend_from_slice(&buf[..n]);
                buf.advance(n);
                continue;
            };
            let ids = frame.method_ids();
            let inspected = match ids {
                Some((10, 11) | (10, 40) | (40, _) | (50, _) | (60, 40) | (60, 20) | (60, 70)) => Some(frame.method()),
                _ => None,
            };
            match inspected {
                None => out.extend_from_slice(&buf[..n]),
                Some(Err(e)) => {
                    let _ = to_client.send(Out::close(1002, &format!("malformed AMQP method: {e}"))).await;
                    break 'conn Err(e);
                }
                Some(Ok(Method::ConnectionStartOk { client_properties, mechanism, response, locale })) => {
                    let password = match mechanism.as_str() {
                        "PLAIN" => response.split(|b| *b == 0).nth(2).map(|p| String::from_utf8_lossy(p).into_owned()),
                        _ => None,
                    };
                    match auth.identify(password.as_deref()) {
                        Ok(id) => {
                            identity = Some(id);
                            token = password;
                        }
                        Err((_, text)) => {
                            let m = Method::ConnectionClose {
                                reply_code: 403,
                                reply_text: format!("ACCESS_REFUSED - log in with mechanism PLAIN and the gateway token as the password: {text}"),
                                class_id: 10,
                                method_id: 11,
                            };
                            if let Ok(f) = method_frame(0, &m) {
                                let _ = to_client.send(Out::Frame(f)).await;
                            }
                            let _ = to_client.send(Out::close(1008, &text)).await;
                            break 'conn Err(Error::Value("refused".into()));
                        }
                    }
                    let user = info.userid.clone().unwrap_or_else(|| "guest".into());
                    let pass = info.password.clone().unwrap_or_else(|| "guest".into());
                    let m = Method::ConnectionStartOk { client_properties, mechanism: "PLAIN".into(), response: format!("\0{user}\0{pass}").into_bytes(), locale };
                    amqp::write_method(0, &m, &mut out)?;
                }
                Some(Ok(Method::ConnectionOpen { virtual_host })) => match auth.admit(token.as_deref(), &virtual_host) {
                    Ok(a) => {
                        admitted = Some(a);
                        out.extend_from_slice(&buf[..n]);
                    }
                    Err((_, text)) => {
                        let m = Method::ConnectionClose { reply_code: 530, reply_text: format!("NOT_ALLOWED - {text}"), class_id: 10, method_id: 40 };
                        if let Ok(f) = method_frame(0, &m) {
                            let _ = to_client.send(Out::Frame(f)).await;
                        }
                        let _ = to_client.send(Out::close(1008, &text)).await;
                        break 'conn Err(Error::Value("refused".into()));
                    }
                },
                Some(Ok(m)) => {
                    let verdict = match &identity {
                        Some(id) => id.authorize_amqp(&m),
                        None => Err(Error::Value("ACCESS_REFUSED - method before login".into())),
                    };
                    match verdict {
                        Ok(()) => out.extend_from_slice(&buf[..n]),
                        Err(e) => {
                            tracing::warn!(channel, "refused on /amqp: {e}");
                            let (class_id, method_id) = ids.unwrap_or((0, 0));
                            let text = match &e {
                                Error::Channel { text, .. } => text.clone(),
                                other => other.to_string(),
                            };
                            {
                                let mut c = closing.lock().unwrap_or_else(|p| p.into_inner());
                                c.client.insert(channel);
                                c.broker.insert(channel);
                            }
                            let to_c = Method::ChannelClose { reply_code: 403, reply_text: text, class_id, method_id };
                            let _ = to_client.send(Out::Frame(method_frame(channel, &to_c)?)).await;
                            let to_b = Method::ChannelClose { reply_code: 200, reply_text: "closed by kombu-gateway".into(), class_id: 0, method_id: 0 };
                            amqp::write_method(channel, &to_b, &mut out)?;
                        }
                    }
                }
            }
            buf.advance(n);
        }
        if !out.is_empty() {
            if let Err(e) = up_wr.write_all(&out).await {
                let _ = to_client.send(Out::close(1011, &format!("broker connection failed: {e}"))).await;
                break Err(Error::RecoverableConnection(e.to_string()));
            }
        }
    };
    let _ = up_wr.shutdown().await;
    drop(admitted);
    let _ = from_broker.await;
    drop(to_client);
    let _ = writer.await;
    result
}
