//! The `/amqp` relay's filter, without a socket: AMQP frames from the client in, verdicts out
//! ([`Verdict`]: forward to the broker, answer the client, wait, close); frames from the broker
//! in, what reaches the client out ([`Filter::handle_broker`]).
//!
//! Without a token file it forwards every frame as it is. With one, it logs the client in with
//! its token (the PLAIN password) and the broker with the URL's credentials, admits the virtual
//! host of `connection.open`, and checks each method naming an exchange or a queue against the
//! identity's permissions ([`crate::auth::Identity::authorize_amqp`]). A refused method closes
//! its channel with `403 ACCESS_REFUSED` toward the client, as RabbitMQ would, and the same
//! channel toward the broker; the frames of both sides on that channel are dropped until each
//! side has confirmed the close.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kombu::proto::amqp::{self, Method};
use kombu::{Error, ReplyCode};

use super::RelayConfig;
use crate::auth::{Admitted, Auth, Identity};
use crate::ClientError;

/// `channel.close-ok`.
const CLOSE_OK: (u16, u16) = (20, 41);
/// `channel.close`.
const CHANNEL_CLOSE: (u16, u16) = (20, 40);
/// `channel.open`.
const CHANNEL_OPEN: (u16, u16) = (20, 10);
/// `connection.start`.
const START: (u16, u16) = (10, 10);
/// `connection.start-ok`.
const START_OK: (u16, u16) = (10, 11);
/// AMQP's reply code of a normal close (`reply-success`).
const REPLY_SUCCESS: u16 = 200;

/// Close the client's socket with `code` and `reason`: the connection ends with `error`.
#[derive(Debug)]
pub(crate) struct Close {
    pub(crate) code: u16,
    pub(crate) reason: String,
    pub(crate) error: ClientError,
}

/// What to do, in order, with the client's frames.
#[derive(Debug)]
#[must_use]
pub(crate) enum Verdict {
    /// Write these frames to the broker (as the client sent them, or rewritten).
    ToBroker(Bytes),
    /// Send this to the client (the relay's answer: a refusal).
    ToClient(Bytes),
    /// The client reuses `channel` before the broker confirmed closing it (RabbitMQ would
    /// refuse a second `channel.open`): its frames wait. Hand the rest in again
    /// ([`Filter::handle_client`]) once [`Filter::broker_closing`] says the broker confirmed.
    Hold(u16),
    /// Close the client's socket; nothing more is relayed.
    Close(Close),
}

/// What the broker's frames give the client.
#[derive(Debug, Default)]
#[must_use]
pub(crate) struct Forward {
    /// The frames for the client (those on channels the relay closed are dropped).
    pub(crate) frames: Option<Bytes>,
    /// The broker confirmed closing a channel the relay closed: wake a [`Verdict::Hold`].
    pub(crate) confirmed: bool,
}

/// One `/amqp` connection's filter. See the module documentation.
pub(crate) struct Filter {
    /// Identities, when the gateway has a token file.
    auth: Option<Arc<Auth>>,
    /// The broker URL's user and password, which the relay logs in with for the client.
    login: (String, String),
    frame_max: u32,
    header_seen: bool,
    identity: Option<Arc<Identity>>,
    token: Option<String>,
    /// The admitted identity's connection slot, held while the connection lasts.
    admitted: Option<Admitted>,
    /// Channels the relay closed, waiting for the client's `close-ok` (its frames dropped).
    closing_client: HashSet<u16>,
    /// Channels the relay closed, waiting for the broker's `close-ok` (its frames dropped).
    closing_broker: HashSet<u16>,
    /// What goes to the broker, gathered while a client message is handled.
    to_broker: BytesMut,
    /// With a token file: the broker's `connection.start` was seen (and dropped: the client
    /// got the relay's own before it logged in).
    broker_started: bool,
}

fn close(code: u16, reason: String, error: ClientError) -> Close {
    Close { code, reason, error }
}

/// A method frame the relay writes (its reply texts cut to a short string's 255 bytes).
fn write(channel: u16, m: &Method, out: &mut BytesMut) -> Result<(), Close> {
    amqp::write_method(channel, m, out).map_err(|e| close(1011, format!("cannot encode {:?}: {e}", m.ids()), ClientError::Malformed(e)))
}

impl Filter {
    pub(crate) fn new(cfg: &RelayConfig) -> Filter {
        let user = cfg.upstream.userid.clone().unwrap_or_else(|| "guest".into());
        let pass = cfg.upstream.password.clone().unwrap_or_else(|| "guest".into());
        Filter {
            auth: cfg.auth.clone(),
            login: (user, pass),
            frame_max: cfg.frame_max,
            header_seen: false,
            identity: None,
            token: None,
            admitted: None,
            closing_client: HashSet::new(),
            closing_broker: HashSet::new(),
            to_broker: BytesMut::new(),
            broker_started: false,
        }
    }

    /// True while the broker has not confirmed closing `channel`, which the relay closed.
    pub(crate) fn broker_closing(&self, channel: u16) -> bool {
        self.closing_broker.contains(&channel)
    }

    /// Take the client's bytes from `buf` (what its messages carried, in order): whole frames
    /// are consumed and a partial one stays; the verdicts go to `out`, in order. After a
    /// [`Verdict::Hold`] the rest stays in `buf`.
    pub(crate) fn handle_client(&mut self, buf: &mut BytesMut, out: &mut Vec<Verdict>) {
        match self.client_frames(buf, out) {
            Ok(held) => {
                if !self.to_broker.is_empty() {
                    out.push(Verdict::ToBroker(self.to_broker.split().freeze()));
                }
                out.extend(held.map(Verdict::Hold));
            }
            Err(c) => {
                self.to_broker.clear();
                out.push(Verdict::Close(c));
            }
        }
    }

    /// The client's frames, until a channel must wait (its number) or `buf` has no whole frame.
    fn client_frames(&mut self, buf: &mut BytesMut, out: &mut Vec<Verdict>) -> Result<Option<u16>, Close> {
        if !self.header_seen {
            if buf.len() < 8 {
                return Ok(None);
            }
            if buf[..8] != amqp::PROTOCOL_HEADER[..] {
                out.push(Verdict::ToClient(Bytes::from_static(amqp::PROTOCOL_HEADER)));
                return Err(close(1002, "expected the AMQP 0-9-1 protocol header".into(), ClientError::NotAmqp));
            }
            buf.advance(8);
            self.header_seen = true;
            if self.auth.is_some() {
                // The relay answers the header itself: the client logs in before the broker is
                // connected, and sees nothing of it (product, version, cluster name) before.
                out.push(Verdict::ToClient(relay_start()));
            } else {
                self.to_broker.extend_from_slice(amqp::PROTOCOL_HEADER);
            }
        }
        loop {
            let frame = match amqp::split_frame(buf, self.frame_max) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(None),
                Err(e) => return Err(close(1002, format!("malformed AMQP frame: {e}"), ClientError::Malformed(e))),
            };
            let (n, channel, ids) = (frame.len, frame.channel, frame.method_ids());
            // The client may reuse a channel the relay closed as soon as it has confirmed the
            // close, but RabbitMQ refuses a channel.open on a channel it is still closing
            // ("second 'channel.open' seen"): what came before goes out, then the client's
            // frames wait for the broker's close-ok.
            if self.closing_broker.contains(&channel) && !self.closing_client.contains(&channel) {
                return Ok(Some(channel));
            }
            // Frames on a channel the relay is closing toward the client are dropped until the
            // client's close-ok (which the broker must not see).
            if self.closing_client.contains(&channel) {
                match ids {
                    Some(CLOSE_OK) => {
                        self.closing_client.remove(&channel);
                    }
                    // The client closed the channel too (its close crossed the relay's):
                    // answered, as AMQP asks of a peer that is closing.
                    Some(CHANNEL_CLOSE) => {
                        let mut ok = BytesMut::new();
                        write(channel, &Method::ChannelCloseOk, &mut ok)?;
                        out.push(Verdict::ToClient(ok.freeze()));
                    }
                    // A client that took that close-ok as the end reopens the channel.
                    Some(CHANNEL_OPEN) => {
                        self.closing_client.remove(&channel);
                        if self.closing_broker.contains(&channel) {
                            return Ok(Some(channel));
                        }
                        self.to_broker.extend_from_slice(&buf[..n]);
                    }
                    _ => {}
                }
                buf.advance(n);
                continue;
            }
            if self.auth.is_some() && self.identity.is_none() && ids != Some(START_OK) {
                let text = "log in (connection.start-ok with the gateway token) before anything else".to_owned();
                return Err(refuse_connection(ReplyCode::AccessRefused, format!("ACCESS_REFUSED - {text}"), ids.unwrap_or((0, 0)), text, out));
            }
            let inspected = match (&self.auth, ids) {
                (Some(_), Some((10, 11) | (10, 40) | (40, _) | (50, _) | (60, 40) | (60, 20) | (60, 70))) => {
                    Some(frame.method().map_err(|e| close(1002, format!("malformed AMQP method: {e}"), ClientError::Malformed(e)))?)
                }
                _ => None,
            };
            match inspected {
                None => self.to_broker.extend_from_slice(&buf[..n]),
                Some(m) => self.inspect(m, &buf[..n], channel, ids.unwrap_or((0, 0)), out)?,
            }
            buf.advance(n);
        }
    }

    /// A method the token file has a say in (the relay has one).
    fn inspect(&mut self, m: Method, raw: &[u8], channel: u16, (class_id, method_id): (u16, u16), out: &mut Vec<Verdict>) -> Result<(), Close> {
        let Some(auth) = self.auth.clone() else { return Ok(()) };
        match m {
            Method::ConnectionStartOk { client_properties, mechanism, response, locale } => {
                let password = match mechanism.as_str() {
                    "PLAIN" => response.split(|b| *b == 0).nth(2).map(|p| String::from_utf8_lossy(p).into_owned()),
                    _ => None,
                };
                match auth.identify(password.as_deref()) {
                    Ok(id) => {
                        self.identity = Some(id);
                        self.token = password;
                    }
                    Err((_, text)) => {
                        let reply = format!("ACCESS_REFUSED - log in with mechanism PLAIN and the gateway token as the password: {text}");
                        return Err(refuse_connection(ReplyCode::AccessRefused, reply, (10, 11), text, out));
                    }
                }
                // Now the broker is connected: the protocol header, then the login.
                self.to_broker.extend_from_slice(amqp::PROTOCOL_HEADER);
                let (user, pass) = &self.login;
                let m = Method::ConnectionStartOk { client_properties, mechanism: "PLAIN".into(), response: format!("\0{user}\0{pass}").into_bytes(), locale };
                write(0, &m, &mut self.to_broker)
            }
            Method::ConnectionOpen { virtual_host } => match auth.admit(self.token.as_deref(), &virtual_host) {
                Ok(a) => {
                    self.admitted = Some(a);
                    self.to_broker.extend_from_slice(raw);
                    Ok(())
                }
                Err((_, text)) => Err(refuse_connection(ReplyCode::NotAllowed, format!("NOT_ALLOWED - {text}"), (10, 40), text, out)),
            },
            m => {
                let verdict = match &self.admitted {
                    Some(a) => a.authorize_amqp(&m),
                    None => Err(Error::channel(ReplyCode::AccessRefused, "ACCESS_REFUSED - method before connection.open")),
                };
                let text = match verdict {
                    Ok(()) => {
                        self.to_broker.extend_from_slice(raw);
                        return Ok(());
                    }
                    Err(Error::Channel { text, .. }) => text,
                    Err(other) => other.to_string(),
                };
                tracing::warn!(channel, "refused on /amqp: {text}");
                self.closing_client.insert(channel);
                self.closing_broker.insert(channel);
                let reply_text = crate::cut(&text, 255).to_owned();
                let mut to_client = BytesMut::new();
                write(channel, &Method::ChannelClose { reply_code: ReplyCode::AccessRefused.code(), reply_text, class_id, method_id }, &mut to_client)?;
                out.push(Verdict::ToClient(to_client.freeze()));
                let to_broker = Method::ChannelClose { reply_code: REPLY_SUCCESS, reply_text: "closed by kombu-gateway".into(), class_id: 0, method_id: 0 };
                write(channel, &to_broker, &mut self.to_broker)
            }
        }
    }

    /// Take the broker's bytes from `buf`: whole frames are consumed (a partial one stays), and
    /// those on channels the relay closed are dropped until the broker's close-ok.
    pub(crate) fn handle_broker(&mut self, buf: &mut BytesMut) -> Result<Forward, Close> {
        let mut frames = BytesMut::new();
        let mut confirmed = false;
        loop {
            let frame = match amqp::split_frame(buf, self.frame_max) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => return Err(close(1011, format!("malformed frame from the broker: {e}"), ClientError::Broker(e))),
            };
            let n = frame.len;
            if self.auth.is_some() && !self.broker_started && frame.channel == 0 && frame.method_ids() == Some(START) {
                // The client already has the relay's connection.start.
                self.broker_started = true;
            } else if self.closing_broker.contains(&frame.channel) {
                if frame.method_ids() == Some(CLOSE_OK) {
                    self.closing_broker.remove(&frame.channel);
                    confirmed = true;
                }
            } else {
                frames.extend_from_slice(&buf[..n]);
            }
            buf.advance(n);
        }
        Ok(Forward { frames: (!frames.is_empty()).then(|| frames.freeze()), confirmed })
    }
}

/// The relay's own `connection.start` (AMQP 0-9-1, mechanism PLAIN): product `kombu-gateway`
/// and the capabilities RabbitMQ announces, nothing of the broker behind it.
fn relay_start() -> Bytes {
    /// A field-table entry: short string name, type, value.
    fn entry(t: &mut BytesMut, name: &str, kind: u8, value: &[u8]) {
        t.put_u8(name.len() as u8);
        t.put_slice(name.as_bytes());
        t.put_u8(kind);
        t.put_slice(value);
    }
    fn longstr(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(s.as_bytes());
        v
    }
    fn table(t: BytesMut) -> Vec<u8> {
        let mut v = (t.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(&t);
        v
    }
    let mut caps = BytesMut::new();
    for cap in ["publisher_confirms", "exchange_exchange_bindings", "basic.nack", "consumer_cancel_notify", "connection.blocked", "consumer_priorities", "authentication_failure_close", "per_consumer_qos", "direct_reply_to"] {
        entry(&mut caps, cap, b't', &[1]);
    }
    let mut props = BytesMut::new();
    entry(&mut props, "product", b'S', &longstr("kombu-gateway"));
    entry(&mut props, "capabilities", b'F', &table(caps));
    let mut payload = BytesMut::new();
    payload.put_u16(START.0);
    payload.put_u16(START.1);
    payload.put_slice(&[0, 9]);
    payload.put_slice(&table(props));
    payload.put_slice(&longstr("PLAIN"));
    payload.put_slice(&longstr("en_US"));
    let mut frame = BytesMut::new();
    frame.put_u8(1);
    frame.put_u16(0);
    frame.put_u32(payload.len() as u32);
    frame.put_slice(&payload);
    frame.put_u8(0xCE);
    frame.freeze()
}

/// Refuse the client's login: `connection.close` with `code`, then the socket closes.
fn refuse_connection(code: ReplyCode, reply_text: String, (class_id, method_id): (u16, u16), text: String, out: &mut Vec<Verdict>) -> Close {
    let mut frame = BytesMut::new();
    let m = Method::ConnectionClose { reply_code: code.code(), reply_text: crate::cut(&reply_text, 255).to_owned(), class_id, method_id };
    if write(0, &m, &mut frame).is_ok() {
        out.push(Verdict::ToClient(frame.freeze()));
    }
    close(1008, text.clone(), ClientError::Refused { code: code.code(), text })
}

#[cfg(test)]
mod tests {
    use kombu::transport::ConnectInfo;

    use super::*;

    const TOKENS: &str = "[[identity]]\nname = 'web'\ntoken = 'web-token-123'\nvhosts = ['/web']\nconfigure = 'web\\..*'\n";

    fn filter(tokens: Option<&str>) -> Filter {
        let upstream = ConnectInfo { userid: Some("broker-user".into()), password: Some("broker-pass".into()), ..ConnectInfo::default() };
        Filter::new(&RelayConfig { upstream, auth: tokens.map(|t| Arc::new(Auth::parse(t).unwrap())), frame_max: 128 * 1024 })
    }

    fn frame(channel: u16, m: &Method) -> Bytes {
        let mut out = BytesMut::new();
        amqp::write_method(channel, m, &mut out).unwrap();
        out.freeze()
    }

    /// The methods of `bytes` (whole method frames), with their channels.
    fn methods(bytes: &[u8]) -> Vec<(u16, Method)> {
        let mut at = 0;
        let mut found = Vec::new();
        while let Some(f) = amqp::split_frame(&bytes[at..], 1 << 20).unwrap() {
            found.push((f.channel, f.method().unwrap()));
            at += f.len;
        }
        assert_eq!(at, bytes.len(), "whole frames");
        found
    }

    /// Hand `bytes` to the filter as one client message: the verdicts.
    fn client(f: &mut Filter, buf: &mut BytesMut, bytes: &[u8]) -> Vec<Verdict> {
        buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        f.handle_client(buf, &mut out);
        out
    }

    fn start_ok(password: &str) -> Bytes {
        frame(0, &Method::ConnectionStartOk { client_properties: Default::default(), mechanism: "PLAIN".into(), response: format!("\0anyone\0{password}").into_bytes(), locale: "en_US".into() })
    }

    fn declare(queue: &str) -> Method {
        Method::QueueDeclare { queue: queue.into(), passive: false, durable: false, exclusive: false, auto_delete: false, nowait: false, arguments: Default::default() }
    }

    /// A filter with a client logged in on `/web`, and its buffer.
    fn logged_in() -> (Filter, BytesMut) {
        let (mut f, mut buf) = (filter(Some(TOKENS)), BytesMut::new());
        let mut login = BytesMut::from(&amqp::PROTOCOL_HEADER[..]);
        login.extend_from_slice(&start_ok("web-token-123"));
        login.extend_from_slice(&frame(0, &Method::ConnectionOpen { virtual_host: "/web".into() }));
        login.extend_from_slice(&frame(1, &Method::ChannelOpen));
        let v = client(&mut f, &mut buf, &login);
        assert!(matches!(&v[..], [Verdict::ToClient(_), Verdict::ToBroker(_)]), "{v:?}");
        (f, buf)
    }

    #[test]
    fn without_a_token_file_whole_frames_pass_as_they_are() {
        let (mut f, mut buf) = (filter(None), BytesMut::new());
        let open = frame(1, &Method::ChannelOpen);
        let mut bytes = amqp::PROTOCOL_HEADER.to_vec();
        bytes.extend_from_slice(&open);
        bytes.extend_from_slice(&open[..5]);
        let v = client(&mut f, &mut buf, &bytes);
        let [Verdict::ToBroker(b)] = &v[..] else { panic!("{v:?}") };
        assert_eq!(&b[..], &bytes[..8 + open.len()], "the header and the whole frame; the partial one waits");
        let v = client(&mut f, &mut buf, &open[5..]);
        assert!(matches!(&v[..], [Verdict::ToBroker(b)] if *b == open), "{v:?}");
        assert!(buf.is_empty());
    }

    #[test]
    fn what_is_not_amqp_gets_the_protocol_header_and_a_close() {
        let (mut f, mut buf) = (filter(None), BytesMut::new());
        let v = client(&mut f, &mut buf, b"GET / HTTP/1.1\r\n");
        let [Verdict::ToClient(header), Verdict::Close(Close { code: 1002, error: ClientError::NotAmqp, .. })] = &v[..] else { panic!("{v:?}") };
        assert_eq!(&header[..], amqp::PROTOCOL_HEADER);
        // A malformed frame after the header closes with 1002 too.
        let (mut f, mut buf) = (filter(None), BytesMut::new());
        let mut bytes = amqp::PROTOCOL_HEADER.to_vec();
        bytes.extend_from_slice(&[1, 0, 1, 0, 0, 0, 4, 0, 10, 0, 10, 0x00]);
        let v = client(&mut f, &mut buf, &bytes);
        assert!(matches!(&v[..], [Verdict::Close(Close { code: 1002, error: ClientError::Malformed(_), .. })]), "{v:?}");
    }

    #[test]
    fn the_token_logs_the_client_in_and_the_broker_gets_the_urls_credentials() {
        let (mut f, mut buf) = (filter(Some(TOKENS)), BytesMut::new());
        let mut bytes = amqp::PROTOCOL_HEADER.to_vec();
        let v = client(&mut f, &mut buf, &bytes[..8]);
        // The relay answers the header itself, with nothing of the broker.
        let [Verdict::ToClient(start)] = &v[..] else { panic!("{v:?}") };
        let [(0, Method::ConnectionStart { mechanisms, server_properties, .. })] = &methods(start)[..] else { panic!() };
        assert_eq!((mechanisms.as_str(), server_properties["product"].as_str()), ("PLAIN", Some("kombu-gateway")));
        assert!(!server_properties.contains_key("version") && !server_properties.contains_key("cluster_name"));
        bytes.extend_from_slice(&start_ok("web-token-123"));
        let v = client(&mut f, &mut buf, &bytes[8..]);
        let [Verdict::ToBroker(b)] = &v[..] else { panic!("{v:?}") };
        assert_eq!(&b[..8], amqp::PROTOCOL_HEADER, "the broker is connected once the token is accepted");
        let [(0, Method::ConnectionStartOk { mechanism, response, .. })] = &methods(&b[8..])[..] else { panic!() };
        assert_eq!((mechanism.as_str(), &response[..]), ("PLAIN", &b"\0broker-user\0broker-pass"[..]));
        let open = frame(0, &Method::ConnectionOpen { virtual_host: "/web".into() });
        assert!(matches!(&client(&mut f, &mut buf, &open)[..], [Verdict::ToBroker(b)] if *b == open));
        assert!(f.admitted.is_some());
    }

    #[test]
    fn a_wrong_token_or_virtual_host_is_refused_with_connection_close() {
        let (mut f, mut buf) = (filter(Some(TOKENS)), BytesMut::new());
        let mut bytes = amqp::PROTOCOL_HEADER.to_vec();
        bytes.extend_from_slice(&start_ok("wrong-token"));
        let v = client(&mut f, &mut buf, &bytes);
        let [Verdict::ToClient(_), Verdict::ToClient(b), Verdict::Close(Close { code: 1008, reason, error: ClientError::Refused { code: 403, .. } })] = &v[..] else { panic!("{v:?}") };
        assert_eq!(reason, "unknown token");
        let [(0, Method::ConnectionClose { reply_code: 403, reply_text, class_id: 10, method_id: 11 })] = &methods(b)[..] else { panic!() };
        assert!(reply_text.starts_with("ACCESS_REFUSED - log in with mechanism PLAIN"), "{reply_text}");

        let (mut f, mut buf) = (filter(Some(TOKENS)), BytesMut::new());
        bytes.truncate(8);
        bytes.extend_from_slice(&start_ok("web-token-123"));
        bytes.extend_from_slice(&frame(0, &Method::ConnectionOpen { virtual_host: "/admin".into() }));
        let v = client(&mut f, &mut buf, &bytes);
        let [Verdict::ToClient(_), Verdict::ToClient(b), Verdict::Close(Close { code: 1008, error: ClientError::Refused { code: 530, .. }, .. })] = &v[..] else { panic!("{v:?}") };
        assert!(matches!(&methods(b)[..], [(0, Method::ConnectionClose { reply_code: 530, class_id: 10, method_id: 40, .. })]));
    }

    #[test]
    fn a_refused_method_closes_its_channel_on_both_sides_until_each_confirms() {
        let (mut f, mut buf) = logged_in();
        let v = client(&mut f, &mut buf, &frame(1, &declare("admin.jobs")));
        let [Verdict::ToClient(to_client), Verdict::ToBroker(to_broker)] = &v[..] else { panic!("{v:?}") };
        let [(1, Method::ChannelClose { reply_code: 403, reply_text, class_id: 50, method_id: 10 })] = &methods(to_client)[..] else { panic!() };
        assert!(reply_text.contains("configure access to queue 'admin.jobs'"), "{reply_text}");
        assert!(matches!(&methods(to_broker)[..], [(1, Method::ChannelClose { reply_code: 200, .. })]));
        // The client's frames on the channel are dropped, its close-ok too (the broker must not see it).
        let mut bytes = frame(1, &declare("web.jobs")).to_vec();
        bytes.extend_from_slice(&frame(1, &Method::ChannelCloseOk));
        assert!(client(&mut f, &mut buf, &bytes).is_empty());
        // The broker's frames on the channel are dropped until its close-ok; others pass.
        let other = frame(2, &Method::ChannelOpenOk);
        let mut from_broker = BytesMut::new();
        from_broker.extend_from_slice(&frame(1, &Method::ChannelOpenOk));
        from_broker.extend_from_slice(&other);
        let fw = f.handle_broker(&mut from_broker).unwrap();
        assert_eq!((fw.frames.as_deref(), fw.confirmed), (Some(&other[..]), false));
        // The client reopens the channel before the broker confirmed: its frames wait.
        let reopen = frame(1, &Method::ChannelOpen);
        let v = client(&mut f, &mut buf, &reopen);
        assert!(matches!(&v[..], [Verdict::Hold(1)]), "{v:?}");
        assert!(f.broker_closing(1) && buf.len() == reopen.len());
        from_broker.extend_from_slice(&frame(1, &Method::ChannelCloseOk));
        let fw = f.handle_broker(&mut from_broker).unwrap();
        assert_eq!((fw.frames, fw.confirmed), (None, true));
        assert!(!f.broker_closing(1));
        let v = client(&mut f, &mut buf, b"");
        assert!(matches!(&v[..], [Verdict::ToBroker(b)] if *b == reopen), "{v:?}");
    }

    #[test]
    fn before_login_only_start_ok_passes_and_the_brokers_start_is_not_relayed() {
        let (mut f, mut buf) = (filter(Some(TOKENS)), BytesMut::new());
        let mut bytes = amqp::PROTOCOL_HEADER.to_vec();
        bytes.extend_from_slice(&frame(0, &Method::ConnectionOpen { virtual_host: "/web".into() }));
        let v = client(&mut f, &mut buf, &bytes);
        let [Verdict::ToClient(_), Verdict::ToClient(b), Verdict::Close(Close { code: 1008, .. })] = &v[..] else { panic!("{v:?}") };
        assert!(matches!(&methods(b)[..], [(0, Method::ConnectionClose { reply_code: 403, .. })]));
        // Logged in: the broker's own connection.start is dropped, what follows passes.
        let (mut f, _) = logged_in();
        // (The core's codec writes no connection.start: the relay's own stands in for the broker's.)
        let start = relay_start();
        let tune = frame(0, &Method::ConnectionTune { channel_max: 2047, frame_max: 131072, heartbeat: 60 });
        let mut from_broker = BytesMut::from(&start[..]);
        from_broker.extend_from_slice(&tune);
        let fw = f.handle_broker(&mut from_broker).unwrap();
        assert_eq!(fw.frames.as_deref(), Some(&tune[..]));
    }

    #[test]
    fn a_close_crossing_the_relays_is_answered_and_a_reopen_ends_the_wait() {
        let (mut f, mut buf) = logged_in();
        let _ = client(&mut f, &mut buf, &frame(1, &declare("admin.jobs")));
        // The client closed the channel before it saw the relay's close: close-ok.
        let close = frame(1, &Method::ChannelClose { reply_code: 200, reply_text: "bye".into(), class_id: 0, method_id: 0 });
        let v = client(&mut f, &mut buf, &close);
        let [Verdict::ToClient(b)] = &v[..] else { panic!("{v:?}") };
        assert!(matches!(&methods(b)[..], [(1, Method::ChannelCloseOk)]));
        // It took that close-ok as the end and reopens without answering the relay's close:
        // the reopen waits for the broker's close-ok, then goes through.
        let reopen = frame(1, &Method::ChannelOpen);
        assert!(matches!(&client(&mut f, &mut buf, &reopen)[..], [Verdict::Hold(1)]));
        let mut from_broker = BytesMut::from(&frame(1, &Method::ChannelCloseOk)[..]);
        assert!(f.handle_broker(&mut from_broker).unwrap().confirmed);
        let v = client(&mut f, &mut buf, b"");
        assert!(matches!(&v[..], [Verdict::ToBroker(b)] if *b == reopen), "{v:?}");
    }

    #[test]
    fn a_malformed_frame_from_the_broker_closes_the_client_with_1011() {
        let (mut f, _) = logged_in();
        let mut from_broker = BytesMut::from(&[1, 0, 1, 0, 0, 0, 4, 0, 20, 0, 11, 0x00][..]);
        let Err(Close { code: 1011, error: ClientError::Broker(_), .. }) = f.handle_broker(&mut from_broker) else { panic!() };
    }
}
