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

struct WsCarrier {
    ws: WebSocket,
    handlers: RefCell<Option<Handlers>>,
}

impl Carrier for WsCarrier {
    fn send(&self, frame: Bytes) -> Result<()> {
        self.ws.send_with_u8_array(&frame).map_err(|e| Error::RecoverableConnection(format!("WebSocket send failed: {e:?}")))
    }
    fn close(&self) {
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
        let carrier = WsCarrier { ws, handlers: RefCell::new(Some((on_message, on_close, on_open))) };
        let client = GatewayClient::new(Box::new(carrier));
        *slot.borrow_mut() = Some(Arc::downgrade(&client));
        let (vhost, token) = hello_params(info);
        client.hello(&vhost, token).await?;
        Ok(Arc::new(GatewayConnection::new(client)))
    }
}
