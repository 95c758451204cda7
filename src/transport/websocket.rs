//! The browser/Node `gateway+ws://` and `gateway+wss://` transports (wasm32 only): the core's
//! gateway client ([`super::gateway`]) carried by the JavaScript `WebSocket`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Weak};

use bytes::Bytes;
use futures::channel::oneshot;
use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{BinaryType, CloseEvent, MessageEvent, WebSocket};

use super::gateway::{endpoint, hello_params, Carrier, GatewayClient, GatewayConnection};
use super::{ConnectInfo, Implements, RawConnection, Transport};
use crate::error::{Error, Result};
use crate::gateway::SUBPROTOCOL;
use crate::spec::ExchangeType;

/// The `gateway+ws` / `gateway+wss` transport over the JavaScript `WebSocket`.
#[derive(Debug, Default)]
pub struct WebSocketTransport;

type Handlers = (Closure<dyn FnMut(MessageEvent)>, Closure<dyn FnMut(CloseEvent)>, Closure<dyn FnMut(web_sys::Event)>);

/// Frames held back to go out together: each WebSocket `send` costs a system call in Node
/// and a message event in the gateway, so publishes and acks issued in one go share one
/// message (a batch). Held frames go out when a batch is full, when the client is about to
/// wait for the server (`flush`), and otherwise as soon as the JavaScript event loop turns
/// (see [`soon`]).
struct Outbox {
    ws: WebSocket,
    frames: Vec<Bytes>,
    bytes: usize,
    /// The largest batch the server reads; 0: send each frame at once.
    limit: usize,
    /// A flush is scheduled.
    scheduled: bool,
}

impl Outbox {
    fn flush(&mut self) -> Result<()> {
        if self.frames.is_empty() {
            return Ok(());
        }
        let message = crate::gateway::encode_batch(&self.frames);
        self.frames.clear();
        self.bytes = 0;
        self.ws.send_with_u8_array(&message).map_err(|e| Error::RecoverableConnection(format!("WebSocket send failed: {e:?}")))
    }
}

thread_local! {
    /// Outboxes waiting for the scheduled flush.
    static DUE: RefCell<Vec<std::rc::Weak<RefCell<Outbox>>>> = const { RefCell::new(Vec::new()) };
    /// Schedules `flush_due` for the next turn of the event loop (made once).
    static SCHEDULER: js_sys::Function = scheduler();
}

fn flush_due() {
    for out in DUE.with(|d| std::mem::take(&mut *d.borrow_mut())) {
        if let Some(out) = out.upgrade() {
            let mut o = out.borrow_mut();
            o.scheduled = false;
            // A failed send means the socket is closing: its close event reports it.
            let _ = o.flush();
        }
    }
}

/// A function that runs `flush_due` on the next turn of the event loop, and soon:
/// `setImmediate` where it exists (Node, Bun), else a `MessageChannel` message (browsers,
/// workers), else `setTimeout(0)`. The callback lives as long as the wasm instance.
fn scheduler() -> js_sys::Function {
    use js_sys::{Function, Reflect};
    let callback: Function = Closure::<dyn FnMut()>::new(flush_due).into_js_value().unchecked_into();
    let global = js_sys::global();
    let get = |o: &JsValue, k: &str| Reflect::get(o, &JsValue::from_str(k)).unwrap_or(JsValue::UNDEFINED);
    // `f.bind(this, ...args)`, through Reflect (no `new Function`: pages with a strict CSP
    // and edge runtimes forbid it).
    let bind = |f: &JsValue, this: &JsValue, args: &[&JsValue]| -> Option<Function> {
        let bind: Function = get(f, "bind").dyn_into().ok()?;
        let list = js_sys::Array::new();
        list.push(this);
        for a in args {
            list.push(a);
        }
        Reflect::apply(&bind, f, &list).ok()?.dyn_into().ok()
    };
    let set_immediate = get(&global, "setImmediate");
    if set_immediate.is_function() {
        if let Some(f) = bind(&set_immediate, &global, &[&callback]) {
            return f;
        }
    }
    let channel = get(&global, "MessageChannel");
    if channel.is_function() {
        if let Ok(mc) = Reflect::construct(channel.unchecked_ref::<Function>(), &js_sys::Array::new()) {
            let (port1, port2) = (get(&mc, "port1"), get(&mc, "port2"));
            if Reflect::set(&port1, &JsValue::from_str("onmessage"), &callback).is_ok() {
                // Where ports keep the process alive (Deno, Node without setImmediate), don't.
                if let Ok(unref) = get(&port1, "unref").dyn_into::<Function>() {
                    let _ = unref.call0(&port1);
                }
                if let Some(f) = bind(&get(&port2, "postMessage"), &port2, &[&JsValue::NULL]) {
                    return f;
                }
            }
        }
    }
    // Else setTimeout(0); with no timer at all, the callback itself (flush at once).
    bind(&get(&global, "setTimeout"), &global, &[&callback, &JsValue::from_f64(0.0)]).unwrap_or(callback)
}

struct WsCarrier {
    ws: WebSocket,
    out: Rc<RefCell<Outbox>>,
    handlers: RefCell<Option<Handlers>>,
}

impl WsCarrier {
    fn new(ws: WebSocket, handlers: Handlers) -> WsCarrier {
        let out = Rc::new(RefCell::new(Outbox { ws: ws.clone(), frames: Vec::new(), bytes: 0, limit: 0, scheduled: false }));
        WsCarrier { ws, out, handlers: RefCell::new(Some(handlers)) }
    }
}

impl Carrier for WsCarrier {
    fn send(&self, frame: Bytes) -> Result<()> {
        let mut o = self.out.borrow_mut();
        if o.limit == 0 {
            return self.ws.send_with_u8_array(&frame).map_err(|e| Error::RecoverableConnection(format!("WebSocket send failed: {e:?}")));
        }
        if !o.frames.is_empty() && o.bytes + 4 + frame.len() > o.limit {
            o.flush()?;
        }
        o.bytes += 4 + frame.len();
        o.frames.push(frame);
        if o.bytes >= o.limit {
            o.flush()
        } else {
            if !o.scheduled {
                o.scheduled = true;
                DUE.with(|d| d.borrow_mut().push(Rc::downgrade(&self.out)));
                SCHEDULER.with(|f| f.call0(&JsValue::NULL)).map_err(|e| Error::RecoverableConnection(format!("cannot schedule a WebSocket flush: {e:?}")))?;
            }
            Ok(())
        }
    }
    fn flush(&self) {
        let _ = self.out.borrow_mut().flush();
    }
    fn allow_batches(&self, max_bytes: usize) {
        self.out.borrow_mut().limit = max_bytes;
    }
    fn close(&self) {
        let _ = self.out.borrow_mut().flush();
        let _ = self.ws.close();
        // Drop the callbacks (they hold the client): nothing arrives after a close we asked for.
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        self.ws.set_onerror(None);
        self.handlers.borrow_mut().take();
    }
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
        Implements { asynchronous: true, exchange_types: vec![ExchangeType::Direct, ExchangeType::Topic, ExchangeType::Fanout, ExchangeType::Headers], heartbeats: false }
    }

    async fn establish_connection(&self, info: &ConnectInfo) -> Result<Arc<dyn RawConnection>> {
        let url = endpoint(info);
        let ws = WebSocket::new_with_str(&url, SUBPROTOCOL).map_err(|e| Error::Value(format!("cannot open a WebSocket to {url}: {e:?}")))?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let slot: Rc<RefCell<Option<Weak<GatewayClient>>>> = Rc::new(RefCell::new(None));
        let (open_tx, open_rx) = oneshot::channel::<std::result::Result<(), String>>();
        let open_tx = Rc::new(RefCell::new(Some(open_tx)));

        let on_message = {
            let slot = slot.clone();
            let ws = ws.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
                let Some(client) = slot.borrow().as_ref().and_then(Weak::upgrade) else { return };
                let Ok(buf) = ev.data().dyn_into::<ArrayBuffer>() else {
                    client.on_close("the gateway sent a text frame");
                    let _ = ws.close();
                    return;
                };
                let bytes = Bytes::from(Uint8Array::new(&buf).to_vec());
                if let Err(e) = client.on_frame(&bytes) {
                    client.on_close(&format!("malformed frame from the gateway: {e}"));
                    let _ = ws.close();
                }
            })
        };
        let on_close = {
            let slot = slot.clone();
            let open_tx = open_tx.clone();
            Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
                let reason = if ev.reason().is_empty() { format!("closed (code {})", ev.code()) } else { ev.reason() };
                if let Some(tx) = open_tx.borrow_mut().take() {
                    let _ = tx.send(Err(reason.clone()));
                }
                if let Some(client) = slot.borrow().as_ref().and_then(Weak::upgrade) {
                    client.on_close(&reason);
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
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        match open_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(Error::RecoverableConnection(format!("cannot connect to {url}: {reason}"))),
            Err(_) => return Err(Error::RecoverableConnection(format!("cannot connect to {url}"))),
        }
        ws.set_onopen(None);
        let carrier = WsCarrier::new(ws, (on_message, on_close, on_open));
        let client = GatewayClient::new(Box::new(carrier));
        *slot.borrow_mut() = Some(Arc::downgrade(&client));
        let (vhost, token) = hello_params(info);
        client.hello(&vhost, token).await?;
        Ok(Arc::new(GatewayConnection::new(client)))
    }
}
