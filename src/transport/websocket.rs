//! The browser/Node `gateway+ws://` and `gateway+wss://` transports (wasm32 only): the core's
//! gateway client ([`super::gateway_client`]) carried by the JavaScript `WebSocket`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures::channel::oneshot;
use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use super::carrier::Carrier;
use super::gateway_client::{endpoint, GatewayClient, GatewayConnection};
use super::carrier::outbox::{Outbox, ACK_HOLD_MS};
use crate::transport::amqp_client::AmqpClient;
use super::{ConnectInfo, Implements, RawConnection, Transport};
use crate::error::{Error, Result};
use crate::proto::gateway::SUBPROTOCOL;

/// The `gateway+ws` / `gateway+wss` transport over the JavaScript `WebSocket`.
#[derive(Debug, Default)]
pub struct WebSocketTransport;

type Handlers = (Closure<dyn FnMut(MessageEvent)>, Closure<dyn FnMut(CloseEvent)>, Closure<dyn FnMut(web_sys::Event)>);

/// A carrier's held frames ([`Outbox`]) and its socket. Held frames go out when a batch is
/// full, when the client is about to wait for the server (`flush`), and otherwise as soon as
/// the JavaScript event loop turns (see [`scheduler`]); an ack held alone goes out when its timer
/// fires ([`ACK_HOLD_MS`]).
struct Held {
    ws: WebSocket,
    out: Outbox,
    /// A flush is scheduled for the next turn of the event loop.
    scheduled: bool,
    /// The timer of a held ack is running.
    timer: bool,
}

fn ws_send(ws: &WebSocket, message: &[u8]) -> Result<()> {
    ws.send_with_u8_array(message).map_err(|e| Error::RecoverableConnection(format!("WebSocket send failed: {e:?}")))
}

impl Held {
    /// Send what a flush sends, or start the timer of an ack held alone.
    fn flush(&mut self, this: &Rc<RefCell<Held>>) -> Result<()> {
        if let Some(message) = self.out.take() {
            return ws_send(&self.ws, &message);
        }
        if !self.out.holding() || self.timer {
            return Ok(());
        }
        match TIMERS.with(|(_, f)| f.as_ref().map(|f| f.call0(&JsValue::NULL))) {
            Some(Ok(_)) => {
                self.timer = true;
                wait(Wait::Ack, this);
                Ok(())
            }
            // No timer to send it later: now.
            _ => self.flush_all(),
        }
    }

    /// Send everything held.
    fn flush_all(&mut self) -> Result<()> {
        match self.out.take_all() {
            Some(message) => ws_send(&self.ws, &message),
            None => Ok(()),
        }
    }
}

/// Which of the two lists of waiting carriers (see `WAITING`).
#[derive(Clone, Copy)]
enum Wait {
    /// Waiting for the flush `scheduler` runs on the next turn of the event loop.
    Due,
    /// Holding an ack alone, waiting for the `ack_timer`.
    Ack,
}

type Waiting = [Vec<std::rc::Weak<RefCell<Held>>>; 2];

thread_local! {
    /// The carriers waiting, by [`Wait`] (one thread-local: one copy of its access code).
    static WAITING: RefCell<Waiting> = const { RefCell::new([Vec::new(), Vec::new()]) };
    /// Schedules `flush_due` for the next turn of the event loop, and runs `flush_held_acks`
    /// in `ACK_HOLD_MS` (none without `setTimeout`). Made once, together.
    static TIMERS: (js_sys::Function, Option<js_sys::Function>) = (scheduler(), ack_timer());
}

fn wait(list: Wait, held: &Rc<RefCell<Held>>) {
    WAITING.with(|w| w.borrow_mut()[list as usize].push(Rc::downgrade(held)));
}

/// Flush the carriers waiting on `list`.
fn flush_waiting(list: Wait) {
    for held in WAITING.with(|w| std::mem::take(&mut w.borrow_mut()[list as usize])) {
        if let Some(held) = held.upgrade() {
            let mut h = held.borrow_mut();
            // A failed send means the socket is closing: its close event reports it.
            let _ = match list {
                Wait::Due => {
                    h.scheduled = false;
                    h.flush(&held)
                }
                Wait::Ack => {
                    h.timer = false;
                    h.flush_all()
                }
            };
        }
    }
}

fn flush_due() {
    flush_waiting(Wait::Due);
}

fn flush_held_acks() {
    flush_waiting(Wait::Ack);
}

/// `o[k]` (undefined when it cannot be read).
fn property(o: &JsValue, k: &str) -> JsValue {
    js_sys::Reflect::get(o, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED)
}

/// `f.bind(this, ...args)`, through Reflect (no `new Function`: pages with a strict CSP and
/// edge runtimes forbid it).
fn bind(f: &JsValue, this: &JsValue, args: &[&JsValue]) -> Option<js_sys::Function> {
    let bind: js_sys::Function = property(f, "bind").dyn_into().ok()?;
    let list = js_sys::Array::new();
    list.push(this);
    for a in args {
        list.push(a);
    }
    js_sys::Reflect::apply(&bind, f, &list).ok()?.dyn_into().ok()
}

/// A function that starts a `setTimeout` of [`ACK_HOLD_MS`] running `flush_held_acks`; none
/// where there is no `setTimeout` (then acks are not held). Lives as long as the wasm instance.
fn ack_timer() -> Option<js_sys::Function> {
    let callback: js_sys::Function = Closure::<dyn FnMut()>::new(flush_held_acks).into_js_value().unchecked_into();
    let global = js_sys::global();
    bind(&property(&global, "setTimeout"), &global, &[&callback, &JsValue::from(ACK_HOLD_MS)])
}

/// A function that runs `flush_due` on the next turn of the event loop, and soon:
/// `setImmediate` where it exists (Node, Bun), else a `MessageChannel` message (browsers,
/// workers), else `setTimeout(0)`. The callback lives as long as the wasm instance.
fn scheduler() -> js_sys::Function {
    use js_sys::{Function, Reflect};
    let callback: Function = Closure::<dyn FnMut()>::new(flush_due).into_js_value().unchecked_into();
    let global = js_sys::global();
    let set_immediate = property(&global, "setImmediate");
    if set_immediate.is_function() {
        if let Some(f) = bind(&set_immediate, &global, &[&callback]) {
            return f;
        }
    }
    let channel = property(&global, "MessageChannel");
    if channel.is_function() {
        if let Ok(mc) = Reflect::construct(channel.unchecked_ref::<Function>(), &js_sys::Array::new()) {
            let (port1, port2) = (property(&mc, "port1"), property(&mc, "port2"));
            if Reflect::set(&port1, &JsValue::from_str("onmessage"), &callback).is_ok() {
                // Where ports keep the process alive (Deno, Node without setImmediate), don't.
                if let Ok(unref) = property(&port1, "unref").dyn_into::<Function>() {
                    let _ = unref.call0(&port1);
                }
                if let Some(f) = bind(&property(&port2, "postMessage"), &port2, &[&JsValue::NULL]) {
                    return f;
                }
            }
        }
    }
    // Else setTimeout(0); with no timer at all, the callback itself (flush at once).
    bind(&property(&global, "setTimeout"), &global, &[&callback, &JsValue::from_f64(0.0)]).unwrap_or(callback)
}

/// A repeating timer (`setInterval`) that lives as long as the socket: dropped when the
/// socket closes, either side.
type Timer = Rc<RefCell<Option<gloo_timers::callback::Interval>>>;

struct WsCarrier {
    ws: WebSocket,
    held: Rc<RefCell<Held>>,
    handlers: RefCell<Option<Handlers>>,
    timer: Timer,
}

impl WsCarrier {
    fn new(ws: WebSocket, handlers: Handlers, raw_stream: bool, timer: Timer) -> WsCarrier {
        // A byte stream can always be coalesced; gateway frames once the server allows it.
        let limit = if raw_stream { 64 * 1024 } else { 0 };
        let held = Rc::new(RefCell::new(Held { ws: ws.clone(), out: Outbox::new(limit, raw_stream), scheduled: false, timer: false }));
        WsCarrier { ws, held, handlers: RefCell::new(Some(handlers)), timer }
    }

    /// After queueing: a flush on the next turn of the event loop for what is held, unless
    /// one is scheduled or all that is held is an ack that may wait (its timer is started).
    fn queued(&self, h: &mut Held) -> Result<()> {
        if h.out.holding() {
            return h.flush(&self.held);
        }
        if !h.out.is_empty() && !h.scheduled {
            h.scheduled = true;
            wait(Wait::Due, &self.held);
            TIMERS.with(|(f, _)| f.call0(&JsValue::NULL)).map_err(|e| Error::RecoverableConnection(format!("cannot schedule a WebSocket flush: {e:?}")))?;
        }
        Ok(())
    }
}

impl Carrier for WsCarrier {
    fn send(&self, frame: Bytes) -> Result<()> {
        let mut h = self.held.borrow_mut();
        h.out.push(frame, |m| ws_send(&self.ws, &m))?;
        self.queued(&mut h)
    }
    fn send_ack(&self, channel: u16, frame: Bytes, hold: u32) -> Result<()> {
        let mut h = self.held.borrow_mut();
        h.out.push_ack(channel, frame, hold, |m| ws_send(&self.ws, &m))?;
        self.queued(&mut h)
    }
    fn flush(&self) {
        let _ = self.held.borrow_mut().flush(&self.held);
    }
    fn allow_batches(&self, max_bytes: usize) {
        self.held.borrow_mut().out.limit = max_bytes;
    }
    fn close(&self) {
        let _ = self.held.borrow_mut().flush_all();
        let _ = self.ws.close();
        // Drop the callbacks (they hold the client): nothing arrives after a close we asked for.
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        self.handlers.borrow_mut().take();
        self.timer.borrow_mut().take();
    }
}

/// What reads a WebSocket's messages: the gateway client or the AMQP client.
trait Peer {
    fn on_data(&self, bytes: &Bytes) -> Result<()>;
    fn on_end(&self, reason: &str);
    /// Send a heartbeat.
    fn beat(&self) -> Result<()>;
}

impl Peer for GatewayClient {
    fn on_data(&self, bytes: &Bytes) -> Result<()> {
        self.on_frame(bytes)
    }
    fn on_end(&self, reason: &str) {
        self.on_close(reason)
    }
    fn beat(&self) -> Result<()> {
        self.heartbeat()
    }
}

impl Peer for AmqpClient {
    fn on_data(&self, bytes: &Bytes) -> Result<()> {
        self.on_bytes(bytes)
    }
    fn on_end(&self, reason: &str) {
        self.on_close(reason)
    }
    fn beat(&self) -> Result<()> {
        self.heartbeat()
    }
}

type Slot = Rc<RefCell<Option<Weak<dyn Peer>>>>;

/// An open socket: its carrier, the slot for the peer that reads it, the time of the last
/// message received (`Date.now()`, ms) and the socket's timer slot.
struct Socket {
    carrier: WsCarrier,
    slot: Slot,
    last_received: Rc<std::cell::Cell<f64>>,
    timer: Timer,
}

thread_local! {
    /// What the JavaScript side says about a WebSocket that failed to open (set by the npm
    /// package in Node: a plain HTTP upgrade request that reports ECONNREFUSED, TLS errors
    /// or the HTTP status the runtime's WebSocket does not expose).
    static DIAGNOSE: RefCell<Option<js_sys::Function>> = const { RefCell::new(None) };
}

/// Set the function `(url, protocol) => Promise<string | undefined>` that explains why a
/// WebSocket failed to open.
pub fn set_diagnosis(f: Option<js_sys::Function>) {
    DIAGNOSE.with(|d| *d.borrow_mut() = f);
}

/// `reason`, or what the diagnosis function (if any) says instead.
async fn diagnosis(url: &str, protocol: Option<&str>, reason: String) -> String {
    let Some(f) = DIAGNOSE.with(|d| d.borrow().clone()) else { return reason };
    let protocol = protocol.map_or(JsValue::UNDEFINED, JsValue::from_str);
    let Ok(promise) = f.call2(&JsValue::NULL, &JsValue::from_str(url), &protocol) else { return reason };
    match wasm_bindgen_futures::JsFuture::from(js_sys::Promise::resolve(&promise)).await.map(|v| v.as_string()) {
        Ok(Some(said)) if !said.is_empty() => said,
        _ => reason,
    }
}

/// A socket being opened: closed, its handlers removed, when the opening fails or is given up
/// (the connect timeout dropped it), so that nothing keeps connecting (or Node running).
struct Opening(Option<WebSocket>);

impl Drop for Opening {
    fn drop(&mut self) {
        if let Some(ws) = self.0.take() {
            ws.set_onmessage(None);
            ws.set_onclose(None);
            ws.set_onopen(None);
            ws.set_onerror(None);
            let _ = ws.close();
        }
    }
}

/// Open a WebSocket to `url` and wait until it is open. Its messages go to the peer put in
/// the returned slot. `raw_stream`: the messages are a byte stream (AMQP), batched by
/// concatenation; otherwise gateway frames, batched once the server allows it.
async fn open_socket(url: &str, protocol: Option<&str>, raw_stream: bool) -> Result<Socket> {
    if property(&js_sys::global(), "WebSocket").is_undefined() {
        return Err(Error::NotImplemented(format!(
            "cannot open a WebSocket to {url}: this JavaScript runtime has no WebSocket (Node 20 needs `node --experimental-websocket`; Node 22+ and browsers have it)"
        )));
    }
    let ws = match protocol {
        Some(p) => WebSocket::new_with_str(url, p),
        None => WebSocket::new(url),
    }
    .map_err(|e| {
        let reason = e.dyn_ref::<js_sys::Error>().map_or_else(|| format!("{e:?}"), |e| String::from(e.message()));
        // A URL the WebSocket refuses (bad host, port...) is not worth retrying.
        Error::InvalidUrl { url: url.to_owned(), reason }
    })?;
    ws.set_binary_type(BinaryType::Arraybuffer);
    let slot: Slot = Rc::new(RefCell::new(None));
    // Why it did not open travels as the error it becomes (`RecoverableConnection`): the
    // carrier's publish confirms already use this channel type, so it costs no new copy.
    let (open_tx, open_rx) = oneshot::channel::<Result<()>>();
    let open_tx = Rc::new(RefCell::new(Some(open_tx)));
    let last_received = Rc::new(std::cell::Cell::new(js_sys::Date::now()));
    let timer: Timer = Rc::new(RefCell::new(None));

    let on_message = {
        let slot = slot.clone();
        let ws = ws.clone();
        let last_received = last_received.clone();
        Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            last_received.set(js_sys::Date::now());
            let Some(peer) = slot.borrow().as_ref().and_then(Weak::upgrade) else { return };
            let Ok(buf) = ev.data().dyn_into::<ArrayBuffer>() else {
                peer.on_end("the server sent a text message");
                let _ = ws.close();
                return;
            };
            let bytes = Bytes::from(Uint8Array::new(&buf).to_vec());
            if let Err(e) = peer.on_data(&bytes) {
                peer.on_end(&format!("malformed data from the server: {e}"));
                let _ = ws.close();
            }
        })
    };
    let on_close = {
        let slot = slot.clone();
        let open_tx = open_tx.clone();
        let timer = timer.clone();
        Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
            timer.borrow_mut().take();
            let reason = if ev.reason().is_empty() { format!("closed (code {})", ev.code()) } else { ev.reason() };
            if let Some(tx) = open_tx.borrow_mut().take() {
                let before = if ev.code() == 1006 {
                    format!("the WebSocket closed before it opened (code 1006: nothing listening there, a TLS failure, or the server refused the upgrade, e.g. with HTTP 401/403 from kombu-gateway; this runtime does not say which{})", if ev.reason().is_empty() { String::new() } else { format!(": {}", ev.reason()) })
                } else {
                    format!("the WebSocket closed before it opened ({reason})")
                };
                let _ = tx.send(Err(Error::RecoverableConnection(before)));
            }
            if let Some(peer) = slot.borrow().as_ref().and_then(Weak::upgrade) {
                peer.on_end(&reason);
            }
        })
    };
    let on_open = {
        let open_tx = open_tx.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            if let Some(tx) = open_tx.borrow_mut().take() {
                let _ = tx.send(Ok(()));
            }
        })
    };
    // An error before the socket opens fails the connection at once: browsers follow it with
    // a close event in the same task (whose code the timer below leaves time to report);
    // Node 20's WebSocket sends no close event at all.
    let failed: Rc<RefCell<Option<gloo_timers::callback::Timeout>>> = Rc::new(RefCell::new(None));
    let on_error = {
        let open_tx = open_tx.clone();
        let failed = failed.clone();
        Closure::<dyn FnMut(web_sys::Event)>::new(move |ev: web_sys::Event| {
            let message = property(&ev, "message").as_string().filter(|m| !m.is_empty());
            let open_tx = open_tx.clone();
            *failed.borrow_mut() = Some(gloo_timers::callback::Timeout::new(0, move || {
                if let Some(tx) = open_tx.borrow_mut().take() {
                    let reason = message.unwrap_or_else(|| "the WebSocket failed before it opened".into());
                    let _ = tx.send(Err(Error::RecoverableConnection(reason)));
                }
            }));
        })
    };
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    let mut opening = Opening(Some(ws.clone()));
    let outcome = open_rx.await;
    ws.set_onerror(None);
    failed.borrow_mut().take();
    if !matches!(outcome, Ok(Ok(()))) {
        drop(opening);
        let reason = match outcome {
            Ok(Err(Error::RecoverableConnection(reason))) => reason,
            _ => "the WebSocket failed before it opened".into(),
        };
        return Err(Error::RecoverableConnection(format!("cannot connect to {url}: {}", diagnosis(url, protocol, reason).await)));
    }
    ws.set_onopen(None);
    opening.0 = None;
    let carrier = WsCarrier::new(ws, (on_message, on_close, on_open), raw_stream, timer.clone());
    Ok(Socket { carrier, slot, last_received, timer })
}

#[async_trait::async_trait(?Send)]
impl Transport for WebSocketTransport {
    fn driver_name(&self) -> &'static str {
        "gateway"
    }
    fn default_port(&self) -> Option<u16> {
        Some(8765)
    }
    fn implements(&self) -> Implements {
        Implements::all_exchange_types(false)
    }

    async fn establish_connection(&self, info: &ConnectInfo) -> Result<Arc<dyn RawConnection>> {
        let Socket { carrier, slot, last_received, timer } = open_socket(&endpoint(info), Some(SUBPROTOCOL), false).await?;
        let ws = carrier.ws.clone();
        let client = GatewayClient::new(Box::new(carrier));
        let peer: Weak<dyn Peer> = Arc::downgrade(&client) as Weak<dyn Peer>;
        *slot.borrow_mut() = Some(peer.clone());
        client.hello(info).await?;
        let heartbeat = client.heartbeat_interval();
        if heartbeat > 0 {
            *timer.borrow_mut() = Some(heartbeats(peer, "the gateway", ws, last_received, heartbeat));
        }
        Ok(Arc::new(GatewayConnection::new(client)))
    }
}

/// `amqp+ws://user:password@host:port/vhost` and `amqps+wss://` (wasm32 only): AMQP 0-9-1
/// over a WebSocket — to kombu-gateway's `/amqp` relay (the default path; `ws_path` in the
/// URL query names another), or any AMQP-over-WebSocket endpoint. The virtual host is the
/// URL's path, as for `amqp://`; through a gateway with a token file, the password is the
/// gateway token. The core's AMQP client ([`crate::transport::amqp_client`]) speaks the protocol.
#[derive(Debug, Default)]
pub struct AmqpWebSocketTransport;

#[async_trait::async_trait(?Send)]
impl Transport for AmqpWebSocketTransport {
    fn driver_name(&self) -> &'static str {
        "amqp"
    }
    fn default_port(&self) -> Option<u16> {
        Some(8765)
    }
    fn implements(&self) -> Implements {
        Implements::all_exchange_types(true)
    }

    async fn establish_connection(&self, info: &ConnectInfo) -> Result<Arc<dyn RawConnection>> {
        let scheme = if info.transport.ends_with("wss") || info.ssl { "wss" } else { "ws" };
        let path = info.options.get("ws_path").and_then(crate::value::Value::as_str).unwrap_or("/amqp");
        let url = format!("{scheme}://{}:{}{path}", info.hostname, info.port.unwrap_or(8765));
        let Socket { carrier, slot, last_received, timer } = open_socket(&url, None, true).await?;
        let ws = carrier.ws.clone();
        let client = AmqpClient::new(Box::new(carrier));
        let peer: Weak<dyn Peer> = Arc::downgrade(&client) as Weak<dyn Peer>;
        *slot.borrow_mut() = Some(peer.clone());
        client.handshake(info).await?;
        let heartbeat = client.heartbeat_interval();
        if heartbeat > 0 {
            *timer.borrow_mut() = Some(heartbeats(peer, "the broker", ws, last_received, heartbeat));
        }
        Ok(Arc::new(client.connection()?))
    }
}

/// Heartbeats of an `amqp+ws://` or `gateway+ws://` connection, as the native carriers do
/// them: a heartbeat frame every half interval, and a server (`who`) silent for two intervals
/// is gone (the connection fails with the reason and the socket closes). The timer
/// (`setInterval`) only holds the client weakly and stops with the socket.
fn heartbeats(client: Weak<dyn Peer>, who: &'static str, ws: WebSocket, last_received: Rc<std::cell::Cell<f64>>, heartbeat: u16) -> gloo_timers::callback::Interval {
    let period_ms = u32::from(heartbeat) * 500;
    gloo_timers::callback::Interval::new(period_ms.max(1), move || {
        let Some(client) = client.upgrade() else { return };
        let silent_ms = js_sys::Date::now() - last_received.get();
        if silent_ms > f64::from(heartbeat) * 2000.0 {
            // Tenths of a second in integers: `{:.1}` of a float would bring core's float
            // formatting (~9 KB gzipped) into the module for this one message.
            let tenths = (silent_ms / 100.0) as u64;
            client.on_end(&format!("missed heartbeats from {who}: nothing received for {}.{} s (heartbeat {heartbeat} s)", tenths / 10, tenths % 10));
            let _ = ws.close();
        } else {
            // A failed send means the socket is closing: its close event reports it.
            let _ = client.beat();
        }
    })
}
