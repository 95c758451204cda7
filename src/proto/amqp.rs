//! AMQP 0-9-1 frames and the methods Kombu uses, to and from bytes. Field tables are read and
//! written here straight from and to the JSON-like [`Headers`] the rest of the crate uses, with
//! RabbitMQ's field types (its errata: `s` is a signed 16-bit integer, `l` and `L` 64-bit) —
//! not through a general AMQP types crate, whose serde and parser-combinator code was a sixth
//! of the npm package's `kombu-wasm/ws` module. Keys are written and read back sorted, as
//! before, when tables went through such a crate's ordered map.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};
use crate::properties::Properties;
use crate::value::{Headers, Value};

/// `AMQP\x00\x00\x09\x01`.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
/// Frame end octet.
pub const FRAME_END: u8 = 0xCE;

/// A frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A method on a channel.
    Method(u16, Method),
    /// A content header: channel, body size, properties.
    Header(u16, u64, Box<Properties>),
    /// A content body chunk.
    Body(u16, Bytes),
    /// A heartbeat.
    Heartbeat,
}

/// The methods Kombu uses (arguments as in the AMQP 0-9-1 spec; reserved fields omitted).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Method {
    ConnectionStart { mechanisms: String, locales: String, server_properties: Headers },
    ConnectionStartOk { client_properties: Headers, mechanism: String, response: Vec<u8>, locale: String },
    ConnectionTune { channel_max: u16, frame_max: u32, heartbeat: u16 },
    ConnectionTuneOk { channel_max: u16, frame_max: u32, heartbeat: u16 },
    ConnectionOpen { virtual_host: String },
    ConnectionOpenOk,
    ConnectionClose { reply_code: u16, reply_text: String, class_id: u16, method_id: u16 },
    ConnectionCloseOk,
    ConnectionBlocked { reason: String },
    ConnectionUnblocked,
    ChannelOpen,
    ChannelOpenOk,
    ChannelFlow { active: bool },
    ChannelFlowOk { active: bool },
    ChannelClose { reply_code: u16, reply_text: String, class_id: u16, method_id: u16 },
    ChannelCloseOk,
    ExchangeDeclare { exchange: String, kind: String, passive: bool, durable: bool, auto_delete: bool, internal: bool, nowait: bool, arguments: Headers },
    ExchangeDeclareOk,
    ExchangeDelete { exchange: String, if_unused: bool, nowait: bool },
    ExchangeDeleteOk,
    ExchangeBind { destination: String, source: String, routing_key: String, nowait: bool, arguments: Headers },
    ExchangeBindOk,
    ExchangeUnbind { destination: String, source: String, routing_key: String, nowait: bool, arguments: Headers },
    ExchangeUnbindOk,
    QueueDeclare { queue: String, passive: bool, durable: bool, exclusive: bool, auto_delete: bool, nowait: bool, arguments: Headers },
    QueueDeclareOk { queue: String, message_count: u32, consumer_count: u32 },
    QueueBind { queue: String, exchange: String, routing_key: String, nowait: bool, arguments: Headers },
    QueueBindOk,
    QueuePurge { queue: String, nowait: bool },
    QueuePurgeOk { message_count: u32 },
    QueueDelete { queue: String, if_unused: bool, if_empty: bool, nowait: bool },
    QueueDeleteOk { message_count: u32 },
    QueueUnbind { queue: String, exchange: String, routing_key: String, arguments: Headers },
    QueueUnbindOk,
    BasicQos { prefetch_size: u32, prefetch_count: u16, global: bool },
    BasicQosOk,
    BasicConsume { queue: String, consumer_tag: String, no_local: bool, no_ack: bool, exclusive: bool, nowait: bool, arguments: Headers },
    BasicConsumeOk { consumer_tag: String },
    BasicCancel { consumer_tag: String, nowait: bool },
    BasicCancelOk { consumer_tag: String },
    BasicPublish { exchange: String, routing_key: String, mandatory: bool, immediate: bool },
    BasicReturn { reply_code: u16, reply_text: String, exchange: String, routing_key: String },
    BasicDeliver { consumer_tag: String, delivery_tag: u64, redelivered: bool, exchange: String, routing_key: String },
    BasicGet { queue: String, no_ack: bool },
    BasicGetOk { delivery_tag: u64, redelivered: bool, exchange: String, routing_key: String, message_count: u32 },
    BasicGetEmpty,
    BasicAck { delivery_tag: u64, multiple: bool },
    BasicReject { delivery_tag: u64, requeue: bool },
    BasicRecover { requeue: bool },
    BasicRecoverOk,
    BasicNack { delivery_tag: u64, multiple: bool, requeue: bool },
    ConfirmSelect { nowait: bool },
    ConfirmSelectOk,
}

impl Method {
    /// `(class_id, method_id)`.
    pub fn ids(&self) -> (u16, u16) {
        use Method::*;
        match self {
            ConnectionStart { .. } => (10, 10),
            ConnectionStartOk { .. } => (10, 11),
            ConnectionTune { .. } => (10, 30),
            ConnectionTuneOk { .. } => (10, 31),
            ConnectionOpen { .. } => (10, 40),
            ConnectionOpenOk => (10, 41),
            ConnectionClose { .. } => (10, 50),
            ConnectionCloseOk => (10, 51),
            ConnectionBlocked { .. } => (10, 60),
            ConnectionUnblocked => (10, 61),
            ChannelOpen => (20, 10),
            ChannelOpenOk => (20, 11),
            ChannelFlow { .. } => (20, 20),
            ChannelFlowOk { .. } => (20, 21),
            ChannelClose { .. } => (20, 40),
            ChannelCloseOk => (20, 41),
            ExchangeDeclare { .. } => (40, 10),
            ExchangeDeclareOk => (40, 11),
            ExchangeDelete { .. } => (40, 20),
            ExchangeDeleteOk => (40, 21),
            ExchangeBind { .. } => (40, 30),
            ExchangeBindOk => (40, 31),
            ExchangeUnbind { .. } => (40, 40),
            ExchangeUnbindOk => (40, 51),
            QueueDeclare { .. } => (50, 10),
            QueueDeclareOk { .. } => (50, 11),
            QueueBind { .. } => (50, 20),
            QueueBindOk => (50, 21),
            QueuePurge { .. } => (50, 30),
            QueuePurgeOk { .. } => (50, 31),
            QueueDelete { .. } => (50, 40),
            QueueDeleteOk { .. } => (50, 41),
            QueueUnbind { .. } => (50, 50),
            QueueUnbindOk => (50, 51),
            BasicQos { .. } => (60, 10),
            BasicQosOk => (60, 11),
            BasicConsume { .. } => (60, 20),
            BasicConsumeOk { .. } => (60, 21),
            BasicCancel { .. } => (60, 30),
            BasicCancelOk { .. } => (60, 31),
            BasicPublish { .. } => (60, 40),
            BasicReturn { .. } => (60, 50),
            BasicDeliver { .. } => (60, 60),
            BasicGet { .. } => (60, 70),
            BasicGetOk { .. } => (60, 71),
            BasicGetEmpty => (60, 72),
            BasicAck { .. } => (60, 80),
            BasicReject { .. } => (60, 90),
            BasicRecover { .. } => (60, 110),
            BasicRecoverOk => (60, 111),
            BasicNack { .. } => (60, 120),
            ConfirmSelect { .. } => (85, 10),
            ConfirmSelectOk => (85, 11),
        }
    }

    /// True if this method carries content (header and body frames follow).
    pub fn has_content(&self) -> bool {
        matches!(self, Method::BasicPublish { .. } | Method::BasicReturn { .. } | Method::BasicDeliver { .. } | Method::BasicGetOk { .. })
    }
}

// ----- field values -----------------------------------------------------------------------

/// The longest a field table or array may nest (a bound for hostile input, far beyond what
/// brokers and Kombu send).
const MAX_DEPTH: usize = 64;

/// Sorted by key, the order field tables have always been written and read in here.
fn sorted(h: &Headers) -> Vec<(&String, &Value)> {
    let mut entries: Vec<(&String, &Value)> = Vec::with_capacity(h.len());
    for entry in h {
        entries.push(entry);
    }
    crate::sort::sort_by(&mut entries, |a, b| a.0.cmp(b.0));
    entries
}

// ----- writing ------------------------------------------------------------------------------

/// A writer of a frame's payload. A field that cannot be written (a short string over 255
/// bytes, a server-side method) records the first error and the writing goes on, so that the
/// method and property writers need no early return per field (their clean-up paths were a
/// good part of their size in the wasm module); [`W::done`] then returns the error.
struct W(BytesMut, Option<Error>);

impl W {
    fn new(b: BytesMut) -> Self {
        W(b, None)
    }
    /// Record `e` unless an error came first.
    fn fail(&mut self, e: Error) {
        self.1.get_or_insert(e);
    }
    /// The bytes written, or the first error.
    fn done(self) -> Result<BytesMut> {
        match self.1 {
            Some(e) => Err(e),
            None => Ok(self.0),
        }
    }
    fn u8(&mut self, v: u8) {
        self.0.put_u8(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.put_u16(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.put_u32(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.put_u64(v);
    }
    fn shortstr(&mut self, s: &str) {
        let b = s.as_bytes();
        if b.len() > 255 {
            return self.fail(Error::TooLong { what: "AMQP short string", max: 255, value: s.to_owned() });
        }
        self.u8(b.len() as u8);
        self.0.put_slice(b);
    }
    fn longstr(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.put_slice(b);
    }
    fn bits(&mut self, bits: &[bool]) {
        let mut v = 0u8;
        for (i, b) in bits.iter().enumerate() {
            if *b {
                v |= 1 << i;
            }
        }
        self.u8(v);
    }
    /// A field table: its byte length, then each key (a short string) and value.
    fn table(&mut self, h: &Headers) {
        self.sized(|w| {
            for (k, v) in sorted(h) {
                w.shortstr(k);
                w.value(v);
            }
        })
    }
    /// What `f` writes, preceded by its length as a u32.
    fn sized(&mut self, f: impl FnOnce(&mut Self)) {
        let at = self.0.len();
        self.u32(0);
        f(self);
        match u32::try_from(self.0.len() - at - 4) {
            Ok(n) => self.0[at..at + 4].copy_from_slice(&n.to_be_bytes()),
            Err(_) => self.fail(Error::Encode("an AMQP field table or array over 4 GiB".into())),
        }
    }
    /// A JSON-like value as an AMQP field value: integers as 32-bit (`I`) when they fit, else
    /// 64-bit (`l`), as py-amqp does; floats as doubles, strings as long strings, arrays and
    /// objects as arrays and tables, null as void.
    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.u8(b'V'),
            Value::Bool(b) => {
                self.u8(b't');
                self.u8(u8::from(*b));
            }
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) if i32::try_from(i).is_ok() => {
                    self.u8(b'I');
                    self.u32(i as i32 as u32);
                }
                (Some(i), _) => {
                    self.u8(b'l');
                    self.u64(i as u64);
                }
                (None, Some(u)) => {
                    self.u8(b'l');
                    self.u64(u);
                }
                _ => {
                    self.u8(b'd');
                    self.u64(n.as_f64().unwrap_or(0.0).to_bits());
                }
            },
            Value::String(s) => {
                self.u8(b'S');
                self.longstr(s.as_bytes());
            }
            Value::Array(a) => {
                self.u8(b'A');
                self.sized(|w| a.iter().for_each(|v| w.value(v)));
            }
            Value::Object(m) => {
                self.u8(b'F');
                self.table(m);
            }
        }
    }
}

fn method_args(m: &Method, w: &mut W) {
    use Method::*;
    match m {
        ConnectionStartOk { client_properties, mechanism, response, locale } => {
            w.table(client_properties);
            w.shortstr(mechanism);
            w.longstr(response);
            w.shortstr(locale);
        }
        ConnectionTuneOk { channel_max, frame_max, heartbeat } | ConnectionTune { channel_max, frame_max, heartbeat } => {
            w.u16(*channel_max);
            w.u32(*frame_max);
            w.u16(*heartbeat);
        }
        ConnectionOpen { virtual_host } => {
            w.shortstr(virtual_host);
            w.shortstr("");
            w.u8(0);
        }
        ConnectionClose { reply_code, reply_text, class_id, method_id } | ChannelClose { reply_code, reply_text, class_id, method_id } => {
            w.u16(*reply_code);
            w.shortstr(reply_text);
            w.u16(*class_id);
            w.u16(*method_id);
        }
        ChannelOpen => w.shortstr(""),
        ChannelFlow { active } | ChannelFlowOk { active } => w.bits(&[*active]),
        ExchangeDeclare { exchange, kind, passive, durable, auto_delete, internal, nowait, arguments } => {
            w.u16(0);
            w.shortstr(exchange);
            w.shortstr(kind);
            w.bits(&[*passive, *durable, *auto_delete, *internal, *nowait]);
            w.table(arguments);
        }
        ExchangeDelete { exchange, if_unused, nowait } => {
            w.u16(0);
            w.shortstr(exchange);
            w.bits(&[*if_unused, *nowait]);
        }
        ExchangeBind { destination, source, routing_key, nowait, arguments } | ExchangeUnbind { destination, source, routing_key, nowait, arguments } => {
            w.u16(0);
            w.shortstr(destination);
            w.shortstr(source);
            w.shortstr(routing_key);
            w.bits(&[*nowait]);
            w.table(arguments);
        }
        QueueDeclare { queue, passive, durable, exclusive, auto_delete, nowait, arguments } => {
            w.u16(0);
            w.shortstr(queue);
            w.bits(&[*passive, *durable, *exclusive, *auto_delete, *nowait]);
            w.table(arguments);
        }
        QueueBind { queue, exchange, routing_key, nowait, arguments } => {
            w.u16(0);
            w.shortstr(queue);
            w.shortstr(exchange);
            w.shortstr(routing_key);
            w.bits(&[*nowait]);
            w.table(arguments);
        }
        QueuePurge { queue, nowait } => {
            w.u16(0);
            w.shortstr(queue);
            w.bits(&[*nowait]);
        }
        QueueDelete { queue, if_unused, if_empty, nowait } => {
            w.u16(0);
            w.shortstr(queue);
            w.bits(&[*if_unused, *if_empty, *nowait]);
        }
        QueueUnbind { queue, exchange, routing_key, arguments } => {
            w.u16(0);
            w.shortstr(queue);
            w.shortstr(exchange);
            w.shortstr(routing_key);
            w.table(arguments);
        }
        BasicQos { prefetch_size, prefetch_count, global } => {
            w.u32(*prefetch_size);
            w.u16(*prefetch_count);
            w.bits(&[*global]);
        }
        BasicConsume { queue, consumer_tag, no_local, no_ack, exclusive, nowait, arguments } => {
            w.u16(0);
            w.shortstr(queue);
            w.shortstr(consumer_tag);
            w.bits(&[*no_local, *no_ack, *exclusive, *nowait]);
            w.table(arguments);
        }
        BasicCancel { consumer_tag, nowait } => {
            w.shortstr(consumer_tag);
            w.bits(&[*nowait]);
        }
        BasicPublish { exchange, routing_key, mandatory, immediate } => {
            w.u16(0);
            w.shortstr(exchange);
            w.shortstr(routing_key);
            w.bits(&[*mandatory, *immediate]);
        }
        BasicGet { queue, no_ack } => {
            w.u16(0);
            w.shortstr(queue);
            w.bits(&[*no_ack]);
        }
        BasicAck { delivery_tag, multiple } => {
            w.u64(*delivery_tag);
            w.bits(&[*multiple]);
        }
        BasicReject { delivery_tag, requeue } => {
            w.u64(*delivery_tag);
            w.bits(&[*requeue]);
        }
        BasicRecover { requeue } => w.bits(&[*requeue]),
        BasicNack { delivery_tag, multiple, requeue } => {
            w.u64(*delivery_tag);
            w.bits(&[*multiple, *requeue]);
        }
        ConfirmSelect { nowait } => w.bits(&[*nowait]),
        ConnectionOpenOk | ConnectionCloseOk | ChannelOpenOk | ChannelCloseOk | ConnectionUnblocked | ExchangeDeclareOk | ExchangeDeleteOk | ExchangeBindOk
        | ExchangeUnbindOk | QueueBindOk | QueueUnbindOk | BasicQosOk | BasicRecoverOk | ConfirmSelectOk | BasicGetEmpty => {
            if matches!(m, BasicGetEmpty) {
                w.shortstr("");
            }
        }
        other => w.fail(Error::NotImplemented(format!("encoding AMQP method {}.{} (a server-side method)", other.ids().0, other.ids().1))),
    }
}

fn frame(kind: u8, channel: u16, payload: &[u8], out: &mut BytesMut) {
    out.put_u8(kind);
    out.put_u16(channel);
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
    out.put_u8(FRAME_END);
}

/// Append a method frame.
pub fn write_method(channel: u16, m: &Method, out: &mut BytesMut) -> Result<()> {
    let mut w = W::new(BytesMut::with_capacity(64));
    let (c, i) = m.ids();
    w.u16(c);
    w.u16(i);
    method_args(m, &mut w);
    frame(1, channel, &w.done()?, out);
    Ok(())
}

/// Append the content header and body frames of a message, splitting the body at `frame_max`.
pub fn write_content(channel: u16, properties: &Properties, body: &[u8], frame_max: u32, out: &mut BytesMut) -> Result<()> {
    let mut w = W::new(BytesMut::with_capacity(64));
    w.u16(60);
    w.u16(0);
    w.u64(body.len() as u64);
    let p = properties;
    let mut flags = 0u16;
    let mut props = W::new(BytesMut::new());
    let bit = |n: u16| 1u16 << (15 - n);
    if let Some(v) = &p.content_type {
        flags |= bit(0);
        props.shortstr(v);
    }
    if let Some(v) = &p.content_encoding {
        flags |= bit(1);
        props.shortstr(v);
    }
    if !p.headers.is_empty() {
        flags |= bit(2);
        props.table(&p.headers);
    }
    if let Some(v) = p.delivery_mode {
        flags |= bit(3);
        props.u8(v);
    }
    if let Some(v) = p.priority {
        flags |= bit(4);
        props.u8(v);
    }
    for (i, v) in [(5, &p.correlation_id), (6, &p.reply_to), (7, &p.expiration), (8, &p.message_id)] {
        if let Some(v) = v {
            flags |= bit(i);
            props.shortstr(v);
        }
    }
    if let Some(v) = p.timestamp {
        flags |= bit(9);
        props.u64(v);
    }
    for (i, v) in [(10, &p.type_), (11, &p.user_id), (12, &p.app_id), (13, &p.cluster_id)] {
        if let Some(v) = v {
            flags |= bit(i);
            props.shortstr(v);
        }
    }
    w.u16(flags);
    w.0.put_slice(&props.done()?);
    frame(2, channel, &w.0, out);
    let max = (frame_max.max(4096) - 8) as usize;
    for chunk in body.chunks(max) {
        frame(3, channel, chunk, out);
    }
    Ok(())
}

/// The `connection.start-ok` response of the AMQPLAIN login method: a field table with
/// `LOGIN` and `PASSWORD`, without the table's length prefix.
pub fn amqplain_response(login: &str, password: &str) -> Result<Vec<u8>> {
    // Written as `table` writes such a table (keys sorted, strings as long strings), without
    // building one.
    let mut w = W::new(BytesMut::new());
    for (key, value) in [("LOGIN", login), ("PASSWORD", password)] {
        w.shortstr(key);
        w.u8(b'S');
        w.longstr(value.as_bytes());
    }
    Ok(w.done()?.to_vec())
}

/// Append a heartbeat frame.
pub fn write_heartbeat(out: &mut BytesMut) {
    frame(8, 0, &[], out);
}

// ----- reading ------------------------------------------------------------------------------

/// A reader of a frame's payload. A read past the end (or of a malformed value) records the
/// first error, empties the reader and gives a default, so that the method and property
/// readers need no early return per field (their clean-up paths were most of their size in
/// the wasm module); [`R::check`] then returns the error.
struct R<'a> {
    b: &'a [u8],
    err: Option<Error>,
}

fn short(what: &str) -> Error {
    Error::Decode(format!("AMQP frame too short while reading {what}"))
}

impl<'a> R<'a> {
    fn new(b: &'a [u8]) -> Self {
        R { b, err: None }
    }
    /// Record `e` (unless an error came first) and stop reading.
    fn fail(&mut self, e: Error) {
        self.err.get_or_insert(e);
        self.b = &[];
    }
    /// The first error, if any.
    fn check(&mut self) -> Result<()> {
        self.err.take().map_or(Ok(()), Err)
    }
    fn bytes(&mut self, n: usize, what: &str) -> &'a [u8] {
        if self.b.len() < n {
            self.fail(short(what));
            return &[];
        }
        let (a, b) = self.b.split_at(n);
        self.b = b;
        a
    }
    fn array<const N: usize>(&mut self, what: &str) -> [u8; N] {
        self.bytes(N, what).try_into().unwrap_or([0; N])
    }
    fn u8(&mut self, what: &str) -> u8 {
        self.array::<1>(what)[0]
    }
    fn u16(&mut self, what: &str) -> u16 {
        u16::from_be_bytes(self.array(what))
    }
    fn u32(&mut self, what: &str) -> u32 {
        u32::from_be_bytes(self.array(what))
    }
    fn u64(&mut self, what: &str) -> u64 {
        u64::from_be_bytes(self.array(what))
    }
    fn utf8(&mut self, b: &[u8], what: &str) -> String {
        match std::str::from_utf8(b) {
            Ok(s) => s.to_owned(),
            Err(_) => {
                self.fail(Error::Decode(format!("AMQP {what} is not UTF-8")));
                String::new()
            }
        }
    }
    fn shortstr(&mut self, what: &str) -> String {
        let b = self.shortstr_bytes(what);
        self.utf8(b, what)
    }
    fn shortstr_bytes(&mut self, what: &str) -> &'a [u8] {
        let n = self.u8(what) as usize;
        self.bytes(n, what)
    }
    /// A content type or encoding: the serializers' own labels come back as the static
    /// strings they were sent from, without an allocation per message; others as `shortstr`.
    fn label(&mut self, what: &str) -> Cow<'static, str> {
        const KNOWN: [&str; 6] = ["application/json", "utf-8", "binary", "text/plain", "application/data", "application/x-msgpack"];
        let b = self.shortstr_bytes(what);
        match KNOWN.iter().find(|k| k.as_bytes() == b) {
            Some(k) => Cow::Borrowed(k),
            None => Cow::Owned(self.utf8(b, what)),
        }
    }
    fn longstr(&mut self, what: &str) -> &'a [u8] {
        let n = self.u32(what) as usize;
        self.bytes(n, what)
    }
    fn bit(&mut self, what: &str) -> [bool; 8] {
        let v = self.u8(what);
        std::array::from_fn(|i| v & (1 << i) != 0)
    }
    fn table(&mut self, what: &str) -> Headers {
        self.table_at(what, 0)
    }
    /// A field table (keys sorted; a repeated key keeps its last value).
    fn table_at(&mut self, what: &str, depth: usize) -> Headers {
        let mut inner = self.sized(what, depth);
        let mut entries = Vec::new();
        while !inner.b.is_empty() {
            let key = inner.shortstr(what);
            let value = inner.value(what, depth + 1);
            entries.push((key, value));
        }
        self.merge(inner);
        crate::sort::sort_by(&mut entries, |a, b| a.0.cmp(&b.0));
        let mut table = Headers::new();
        for (k, v) in entries {
            table.insert(k, v);
        }
        table
    }
    /// The bytes of a table or array (its u32 length first), as a reader of their own, whose
    /// error [`R::merge`] takes back.
    fn sized(&mut self, what: &str, depth: usize) -> R<'a> {
        if depth > MAX_DEPTH {
            self.fail(Error::Decode(format!("AMQP field tables in {what} nest deeper than {MAX_DEPTH}")));
        }
        let n = self.u32(what) as usize;
        R::new(self.bytes(n, what))
    }
    fn merge(&mut self, inner: R<'_>) {
        if let Some(e) = inner.err {
            self.fail(e);
        }
    }
    /// A field value (RabbitMQ's types), as a JSON-like value: numbers as numbers (a decimal
    /// as its float value), strings as strings (long strings decoded leniently: bytes that are
    /// not UTF-8 become U+FFFD), byte arrays as arrays of numbers, void as null.
    fn value(&mut self, what: &str, depth: usize) -> Value {
        let float = |f: f64| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number);
        match self.u8(what) {
            b't' => Value::Bool(self.u8(what) != 0),
            // Every integer through Value::from(i64) (the same number as from its own type):
            // one conversion in the wasm module rather than one per type.
            b'b' => Value::from(i64::from(self.u8(what) as i8)),
            b'B' => Value::from(i64::from(self.u8(what))),
            b's' | b'U' => Value::from(i64::from(self.u16(what) as i16)),
            b'u' => Value::from(i64::from(self.u16(what))),
            b'I' => Value::from(i64::from(self.u32(what) as i32)),
            b'i' => Value::from(i64::from(self.u32(what))),
            b'l' | b'L' => Value::from(self.u64(what) as i64),
            b'f' => float(f64::from(f32::from_bits(self.u32(what)))),
            b'd' => float(f64::from_bits(self.u64(what))),
            b'D' => {
                let scale = self.u8(what);
                float(f64::from(self.u32(what)) / 10f64.powi(i32::from(scale)))
            }
            b'S' => Value::String(String::from_utf8_lossy(self.longstr(what)).into_owned()),
            b'A' => {
                let mut inner = self.sized(what, depth);
                let mut items = Vec::new();
                while !inner.b.is_empty() {
                    items.push(inner.value(what, depth + 1));
                }
                self.merge(inner);
                Value::Array(items)
            }
            b'T' => Value::from(self.u64(what)),
            b'F' => Value::Object(self.table_at(what, depth)),
            b'x' => Value::Array(self.longstr(what).iter().map(|b| Value::from(i64::from(*b))).collect()),
            b'V' => Value::Null,
            t => {
                // (An empty reader reads type 0: the error is then the one already recorded.)
                self.fail(Error::Decode(format!("invalid AMQP field table in {what}: unknown field type {:?}", char::from(t))));
                Value::Null
            }
        }
    }
}

/// A method a server sends (some, such as `channel.close` and `basic.ack`, clients send too).
fn read_method(class: u16, method: u16, r: &mut R<'_>) -> Result<Method> {
    use Method::*;
    let m = match (class, method) {
        (10, 10) => {
            r.u8("version");
            r.u8("version");
            let server_properties = r.table("server properties");
            let mechanisms = String::from_utf8_lossy(r.longstr("mechanisms")).into_owned();
            let locales = String::from_utf8_lossy(r.longstr("locales")).into_owned();
            ConnectionStart { mechanisms, locales, server_properties }
        }
        (10, 30) => ConnectionTune { channel_max: r.u16("channel_max"), frame_max: r.u32("frame_max"), heartbeat: r.u16("heartbeat") },
        (10, 41) => ConnectionOpenOk,
        (10, 50) => ConnectionClose { reply_code: r.u16("reply code"), reply_text: r.shortstr("reply text"), class_id: r.u16("class"), method_id: r.u16("method") },
        (10, 51) => ConnectionCloseOk,
        (10, 60) => ConnectionBlocked { reason: r.shortstr("reason") },
        (10, 61) => ConnectionUnblocked,
        (20, 11) => ChannelOpenOk,
        (20, 20) => ChannelFlow { active: r.bit("active")[0] },
        (20, 21) => ChannelFlowOk { active: r.bit("active")[0] },
        (20, 40) => ChannelClose { reply_code: r.u16("reply code"), reply_text: r.shortstr("reply text"), class_id: r.u16("class"), method_id: r.u16("method") },
        (20, 41) => ChannelCloseOk,
        (40, 11) => ExchangeDeclareOk,
        (40, 21) => ExchangeDeleteOk,
        (40, 31) => ExchangeBindOk,
        (40, 51) => ExchangeUnbindOk,
        (50, 11) => QueueDeclareOk { queue: r.shortstr("queue"), message_count: r.u32("message count"), consumer_count: r.u32("consumer count") },
        (50, 21) => QueueBindOk,
        (50, 31) => QueuePurgeOk { message_count: r.u32("message count") },
        (50, 41) => QueueDeleteOk { message_count: r.u32("message count") },
        (50, 51) => QueueUnbindOk,
        (60, 11) => BasicQosOk,
        (60, 21) => BasicConsumeOk { consumer_tag: r.shortstr("consumer tag") },
        (60, 30) => BasicCancel { consumer_tag: r.shortstr("consumer tag"), nowait: r.bit("nowait")[0] },
        (60, 31) => BasicCancelOk { consumer_tag: r.shortstr("consumer tag") },
        (60, 50) => BasicReturn { reply_code: r.u16("reply code"), reply_text: r.shortstr("reply text"), exchange: r.shortstr("exchange"), routing_key: r.shortstr("routing key") },
        (60, 60) => BasicDeliver {
            consumer_tag: r.shortstr("consumer tag"),
            delivery_tag: r.u64("delivery tag"),
            redelivered: r.bit("redelivered")[0],
            exchange: r.shortstr("exchange"),
            routing_key: r.shortstr("routing key"),
        },
        (60, 71) => BasicGetOk {
            delivery_tag: r.u64("delivery tag"),
            redelivered: r.bit("redelivered")[0],
            exchange: r.shortstr("exchange"),
            routing_key: r.shortstr("routing key"),
            message_count: r.u32("message count"),
        },
        (60, 72) => BasicGetEmpty,
        (60, 80) => {
            let delivery_tag = r.u64("delivery tag");
            BasicAck { delivery_tag, multiple: r.bit("multiple")[0] }
        }
        (60, 111) => BasicRecoverOk,
        (60, 120) => {
            let delivery_tag = r.u64("delivery tag");
            let b = r.bit("flags");
            BasicNack { delivery_tag, multiple: b[0], requeue: b[1] }
        }
        (85, 11) => ConfirmSelectOk,
        (c, m) => return Err(Error::Decode(format!("unknown AMQP method {c}.{m} (or one only clients send)"))),
    };
    r.check().map(|_| m)
}

/// A method only clients send (the gateway's `/amqp` relay reads them, through
/// [`RawFrame::method`]); `None` for the others. Apart from [`read_method`], which the client
/// transport reads frames with, so that the wasm module leaves it out (~8 KB of code).
fn read_client_method(class: u16, method: u16, r: &mut R<'_>) -> Result<Option<Method>> {
    use Method::*;
    let m = match (class, method) {
        (10, 11) => {
            let client_properties = r.table("client properties");
            let mechanism = r.shortstr("mechanism");
            let response = r.longstr("response").to_vec();
            ConnectionStartOk { client_properties, mechanism, response, locale: r.shortstr("locale") }
        }
        (10, 31) => ConnectionTuneOk { channel_max: r.u16("channel_max"), frame_max: r.u32("frame_max"), heartbeat: r.u16("heartbeat") },
        (10, 40) => ConnectionOpen { virtual_host: r.shortstr("virtual host") },
        (20, 10) => ChannelOpen,
        (40, 10) => {
            r.u16("ticket");
            let exchange = r.shortstr("exchange");
            let kind = r.shortstr("type");
            let b = r.bit("flags");
            ExchangeDeclare { exchange, kind, passive: b[0], durable: b[1], auto_delete: b[2], internal: b[3], nowait: b[4], arguments: r.table("arguments") }
        }
        (40, 20) => {
            r.u16("ticket");
            let exchange = r.shortstr("exchange");
            let b = r.bit("flags");
            ExchangeDelete { exchange, if_unused: b[0], nowait: b[1] }
        }
        (40, 30) | (40, 40) => {
            r.u16("ticket");
            let destination = r.shortstr("destination");
            let source = r.shortstr("source");
            let routing_key = r.shortstr("routing key");
            let nowait = r.bit("nowait")[0];
            let arguments = r.table("arguments");
            if method == 30 {
                ExchangeBind { destination, source, routing_key, nowait, arguments }
            } else {
                ExchangeUnbind { destination, source, routing_key, nowait, arguments }
            }
        }
        (50, 10) => {
            r.u16("ticket");
            let queue = r.shortstr("queue");
            let b = r.bit("flags");
            QueueDeclare { queue, passive: b[0], durable: b[1], exclusive: b[2], auto_delete: b[3], nowait: b[4], arguments: r.table("arguments") }
        }
        (50, 20) => {
            r.u16("ticket");
            let queue = r.shortstr("queue");
            let exchange = r.shortstr("exchange");
            let routing_key = r.shortstr("routing key");
            let nowait = r.bit("nowait")[0];
            QueueBind { queue, exchange, routing_key, nowait, arguments: r.table("arguments") }
        }
        (50, 30) => {
            r.u16("ticket");
            let queue = r.shortstr("queue");
            QueuePurge { queue, nowait: r.bit("nowait")[0] }
        }
        (50, 40) => {
            r.u16("ticket");
            let queue = r.shortstr("queue");
            let b = r.bit("flags");
            QueueDelete { queue, if_unused: b[0], if_empty: b[1], nowait: b[2] }
        }
        (50, 50) => {
            r.u16("ticket");
            let queue = r.shortstr("queue");
            let exchange = r.shortstr("exchange");
            let routing_key = r.shortstr("routing key");
            QueueUnbind { queue, exchange, routing_key, arguments: r.table("arguments") }
        }
        (60, 10) => {
            let prefetch_size = r.u32("prefetch size");
            let prefetch_count = r.u16("prefetch count");
            BasicQos { prefetch_size, prefetch_count, global: r.bit("global")[0] }
        }
        (60, 20) => {
            r.u16("ticket");
            let queue = r.shortstr("queue");
            let consumer_tag = r.shortstr("consumer tag");
            let b = r.bit("flags");
            BasicConsume { queue, consumer_tag, no_local: b[0], no_ack: b[1], exclusive: b[2], nowait: b[3], arguments: r.table("arguments") }
        }
        (60, 40) => {
            r.u16("ticket");
            let exchange = r.shortstr("exchange");
            let routing_key = r.shortstr("routing key");
            let b = r.bit("flags");
            BasicPublish { exchange, routing_key, mandatory: b[0], immediate: b[1] }
        }
        (60, 70) => {
            r.u16("ticket");
            let queue = r.shortstr("queue");
            BasicGet { queue, no_ack: r.bit("no_ack")[0] }
        }
        (60, 90) => {
            let delivery_tag = r.u64("delivery tag");
            BasicReject { delivery_tag, requeue: r.bit("requeue")[0] }
        }
        (60, 110) => BasicRecover { requeue: r.bit("requeue")[0] },
        (85, 10) => ConfirmSelect { nowait: r.bit("nowait")[0] },
        _ => return Ok(None),
    };
    r.check().map(|_| Some(m))
}

/// Content header properties (errors are left in `r`).
fn read_properties(r: &mut R<'_>) -> Properties {
    let flags = r.u16("property flags");
    let has = |n: u16| flags & (1 << (15 - n)) != 0;
    let mut p = Properties::default();
    if has(0) {
        p.content_type = Some(r.label("content_type"));
    }
    if has(1) {
        p.content_encoding = Some(r.label("content_encoding"));
    }
    if has(2) {
        p.headers = r.table("headers");
    }
    if has(3) {
        p.delivery_mode = Some(r.u8("delivery_mode"));
    }
    if has(4) {
        p.priority = Some(r.u8("priority"));
    }
    if has(5) {
        p.correlation_id = Some(r.shortstr("correlation_id"));
    }
    if has(6) {
        p.reply_to = Some(r.shortstr("reply_to"));
    }
    if has(7) {
        p.expiration = Some(r.shortstr("expiration"));
    }
    if has(8) {
        p.message_id = Some(r.shortstr("message_id"));
    }
    if has(9) {
        p.timestamp = Some(r.u64("timestamp"));
    }
    if has(10) {
        p.type_ = Some(r.shortstr("type"));
    }
    if has(11) {
        p.user_id = Some(r.shortstr("user_id"));
    }
    if has(12) {
        p.app_id = Some(r.shortstr("app_id"));
    }
    if has(13) {
        p.cluster_id = Some(r.shortstr("cluster_id"));
    }
    p
}

/// A frame's extent in a byte stream, not decoded (see [`split_frame`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFrame<'a> {
    /// Frame type: 1 method, 2 content header, 3 content body, 8 heartbeat.
    pub kind: u8,
    /// Channel number.
    pub channel: u16,
    /// The payload, between the 7-byte frame header and the frame end octet.
    pub payload: &'a [u8],
    /// The whole frame's length in the stream.
    pub len: usize,
}

impl RawFrame<'_> {
    /// `(class_id, method_id)` of a method frame.
    pub fn method_ids(&self) -> Option<(u16, u16)> {
        (self.kind == 1 && self.payload.len() >= 4).then(|| {
            (u16::from_be_bytes([self.payload[0], self.payload[1]]), u16::from_be_bytes([self.payload[2], self.payload[3]]))
        })
    }

    /// Decode a method frame's method, whichever peer sends it ([`read_frame`] reads only
    /// those a server sends).
    pub fn method(&self) -> Result<Method> {
        let mut r = R::new(self.payload);
        let class = r.u16("class id");
        let method = r.u16("method id");
        r.check()?;
        match read_client_method(class, method, &mut r)? {
            Some(m) => Ok(m),
            None => read_method(class, method, &mut r),
        }
    }
}

/// Find the first frame at the front of `buf` without decoding its payload (a relay forwards
/// what it does not need to read). `Ok(None)` when more bytes are needed.
pub fn split_frame(buf: &[u8], frame_max: u32) -> Result<Option<RawFrame<'_>>> {
    if buf.len() < 7 {
        return Ok(None);
    }
    let kind = buf[0];
    let channel = u16::from_be_bytes([buf[1], buf[2]]);
    let size = u32::from_be_bytes([buf[3], buf[4], buf[5], buf[6]]);
    if size > frame_max.max(4096) {
        return Err(Error::Decode(format!("AMQP frame of {size} bytes exceeds frame_max {frame_max}")));
    }
    let total = 7 + size as usize + 1;
    if buf.len() < total {
        return Ok(None);
    }
    if buf[total - 1] != FRAME_END {
        return Err(Error::Decode(format!("AMQP frame does not end with 0xCE (got {:#04x})", buf[total - 1])));
    }
    if !matches!(kind, 1 | 2 | 3 | 8) {
        return Err(Error::Decode(format!("unknown AMQP frame type {kind}")));
    }
    Ok(Some(RawFrame { kind, channel, payload: &buf[7..total - 1], len: total }))
}

/// Parse one frame from the front of `buf`, as a client reads what a server sends (a method
/// only clients send is an unknown one here; [`RawFrame::method`] reads those). `Ok(None)` when
/// more bytes are needed; on success the frame and the number of bytes it used. Malformed
/// input is an error naming the problem.
pub fn read_frame(buf: &[u8], frame_max: u32) -> Result<Option<(Frame, usize)>> {
    let Some(RawFrame { kind, channel, payload, len: total }) = split_frame(buf, frame_max)? else {
        return Ok(None);
    };
    let mut r = R::new(payload);
    let frame = match kind {
        1 => {
            let class = r.u16("class id");
            let method = r.u16("method id");
            r.check()?;
            Frame::Method(channel, read_method(class, method, &mut r)?)
        }
        2 => {
            let _class = r.u16("class id");
            let _weight = r.u16("weight");
            let size = r.u64("body size");
            let properties = read_properties(&mut r);
            r.check()?;
            Frame::Header(channel, size, Box::new(properties))
        }
        3 => Frame::Body(channel, Bytes::copy_from_slice(payload)),
        8 => Frame::Heartbeat,
        other => return Err(Error::Decode(format!("unknown AMQP frame type {other}"))),
    };
    Ok(Some((frame, total)))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use serde_json::json;

    use super::*;

    /// A field table, or the first error reading it.
    fn read_table(b: &[u8], what: &str) -> Result<Headers> {
        let mut r = R::new(b);
        let table = r.table(what);
        r.check().map(|_| table)
    }

    #[test]
    fn client_methods_round_trip() {
        use Method::*;
        let mut args = Headers::new();
        args.insert("x-max-priority".into(), json!(10));
        let methods = vec![
            ConnectionStartOk { client_properties: args.clone(), mechanism: "PLAIN".into(), response: b"\0u\0p".to_vec(), locale: "en_US".into() },
            ConnectionTuneOk { channel_max: 2047, frame_max: 131072, heartbeat: 60 },
            ConnectionOpen { virtual_host: "/".into() },
            ChannelOpen,
            ExchangeDeclare { exchange: "x".into(), kind: "topic".into(), passive: false, durable: true, auto_delete: true, internal: false, nowait: false, arguments: args.clone() },
            ExchangeDelete { exchange: "x".into(), if_unused: true, nowait: false },
            ExchangeBind { destination: "d".into(), source: "s".into(), routing_key: "k".into(), nowait: false, arguments: args.clone() },
            ExchangeUnbind { destination: "d".into(), source: "s".into(), routing_key: "k".into(), nowait: true, arguments: Headers::new() },
            QueueDeclare { queue: "q".into(), passive: false, durable: true, exclusive: false, auto_delete: true, nowait: false, arguments: args.clone() },
            QueueBind { queue: "q".into(), exchange: "x".into(), routing_key: "k".into(), nowait: false, arguments: args.clone() },
            QueuePurge { queue: "q".into(), nowait: false },
            QueueDelete { queue: "q".into(), if_unused: false, if_empty: true, nowait: false },
            QueueUnbind { queue: "q".into(), exchange: "x".into(), routing_key: "k".into(), arguments: Headers::new() },
            BasicQos { prefetch_size: 0, prefetch_count: 100, global: true },
            BasicConsume { queue: "q".into(), consumer_tag: "t".into(), no_local: false, no_ack: true, exclusive: false, nowait: false, arguments: args },
            BasicPublish { exchange: "x".into(), routing_key: "k".into(), mandatory: true, immediate: false },
            BasicGet { queue: "q".into(), no_ack: true },
            BasicReject { delivery_tag: 7, requeue: true },
            BasicRecover { requeue: true },
            ConfirmSelect { nowait: false },
        ];
        for m in methods {
            let mut out = BytesMut::new();
            write_method(3, &m, &mut out).unwrap();
            let raw = split_frame(&out, 131_072).unwrap().unwrap();
            assert_eq!(raw.method_ids(), Some(m.ids()));
            assert_eq!(raw.method().unwrap(), m);
            // A client does not read what only clients send.
            let e = read_frame(&out, 131_072).unwrap_err().to_string();
            assert!(e.contains(&format!("unknown AMQP method {}.{} (or one only clients send)", m.ids().0, m.ids().1)), "{e}");
        }
    }

    #[test]
    fn amqplain_is_a_table_without_its_length() {
        assert_eq!(amqplain_response("guest", "pw").unwrap(), b"\x05LOGINS\x00\x00\x00\x05guest\x08PASSWORDS\x00\x00\x00\x02pw".to_vec());
    }

    #[test]
    fn content_round_trips_and_splits() {
        let mut p = Properties { content_type: Some("application/json".into()), delivery_mode: Some(2), priority: Some(3), ..Default::default() };
        p.headers.insert("x".into(), json!({"a": [1, "b", true, null, 2.5]}));
        p.correlation_id = Some("c".into());
        let body = vec![7u8; 10_000];
        let mut out = BytesMut::new();
        write_content(1, &p, &body, 4096, &mut out).unwrap();
        let mut off = 0;
        let (f, n) = read_frame(&out, 4096).unwrap().unwrap();
        off += n;
        let Frame::Header(1, size, props) = f else { panic!("{f:?}") };
        assert_eq!(size, 10_000);
        assert_eq!(*props, p);
        let mut got = Vec::new();
        while off < out.len() {
            let (f, n) = read_frame(&out[off..], 4096).unwrap().unwrap();
            off += n;
            let Frame::Body(1, b) = f else { panic!() };
            assert!(b.len() <= 4088);
            got.extend_from_slice(&b);
        }
        assert_eq!(got, body);
    }

    #[test]
    fn content_labels_of_the_serializers_are_read_without_a_copy() {
        let header = |ct: &str, ce: &str| {
            let p = Properties { content_type: Some(ct.to_owned().into()), content_encoding: Some(ce.to_owned().into()), ..Default::default() };
            let mut out = BytesMut::new();
            write_content(1, &p, b"", 4096, &mut out).unwrap();
            let (Frame::Header(_, _, got), _) = read_frame(&out, 4096).unwrap().unwrap() else { panic!() };
            assert_eq!(*got, p);
            got
        };
        let p = header("application/json", "utf-8");
        assert!(matches!((&p.content_type, &p.content_encoding), (Some(Cow::Borrowed(_)), Some(Cow::Borrowed(_)))), "{p:?}");
        // Others (and near misses) are read as they are.
        let p = header("application/jsonx", "utf-16");
        assert!(matches!((&p.content_type, &p.content_encoding), (Some(Cow::Owned(_)), Some(Cow::Owned(_)))), "{p:?}");
        assert_eq!((p.content_type.as_deref(), p.content_encoding.as_deref()), (Some("application/jsonx"), Some("utf-16")));
    }

    #[test]
    fn bad_frames_are_named() {
        assert!(read_frame(&[1, 0, 0], 4096).unwrap().is_none(), "needs more");
        let e = read_frame(&[1, 0, 0, 0, 0, 0, 0, 0x00], 4096).unwrap_err();
        assert!(e.to_string().contains("0xCE"), "{e}");
        let e = read_frame(&[9, 0, 0, 0, 0, 0, 0, FRAME_END], 4096).unwrap_err();
        assert!(e.to_string().contains("frame type 9"), "{e}");
        let e = read_frame(&[1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0], 4096).unwrap_err();
        assert!(e.to_string().contains("exceeds frame_max"), "{e}");
        let e = read_frame(&[1, 0, 0, 0, 0, 0, 4, 0, 99, 0, 1, FRAME_END], 4096).unwrap_err();
        assert!(e.to_string().contains("unknown AMQP method 99.1"), "{e}");
    }

    /// A field table's bytes: its u32 length, then `entries`.
    fn table_bytes(entries: &[u8]) -> Vec<u8> {
        let mut b = (entries.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(entries);
        b
    }

    #[test]
    fn field_tables_are_written_sorted_with_py_amqps_types() {
        let mut h = Headers::new();
        h.insert("b".into(), json!([true, null, "x", 2.5, 5_000_000_000i64, -7, 18_446_744_073_709_551_615u64]));
        h.insert("a".into(), json!({"z": false, "y": {}}));
        let mut w = W::new(BytesMut::new());
        w.table(&h);
        let w = W::new(w.done().unwrap());
        let mut entries = b"\x01aF\x00\x00\x00\x0b\x01yF\x00\x00\x00\x00\x01zt\x00".to_vec();
        entries.extend_from_slice(b"\x01bA\x00\x00\x00\x29");
        entries.extend_from_slice(b"t\x01VS\x00\x00\x00\x01x");
        entries.extend_from_slice(b"d");
        entries.extend_from_slice(&2.5f64.to_be_bytes());
        entries.extend_from_slice(b"l");
        entries.extend_from_slice(&5_000_000_000i64.to_be_bytes());
        entries.extend_from_slice(b"I");
        entries.extend_from_slice(&(-7i32).to_be_bytes());
        entries.extend_from_slice(&[b'l', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(w.0.to_vec(), table_bytes(&entries));
        // And back (a u64 beyond i64 comes back as -1, as RabbitMQ reads it).
        let back = read_table(&w.0, "t").unwrap();
        assert_eq!(back.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(back["a"], json!({"y": {}, "z": false}));
        assert_eq!(back["b"], json!([true, null, "x", 2.5, 5_000_000_000i64, -7, -1]));
        // A key longer than a short string is refused (not written with a wrapped length).
        let mut long = Headers::new();
        long.insert("k".repeat(256), json!(1));
        let mut w = W::new(BytesMut::new());
        w.table(&long);
        assert!(w.done().unwrap_err().to_string().contains("short string"));
    }

    #[test]
    fn field_tables_read_every_rabbitmq_type() {
        let mut e = Vec::new();
        let mut field = |key: &str, value: &[u8]| {
            e.push(key.len() as u8);
            e.extend_from_slice(key.as_bytes());
            e.extend_from_slice(value);
        };
        field("t", b"t\x02");
        field("b", b"b\xfe");
        field("B", b"B\xfe");
        field("s", b"s\xff\xfe");
        field("U", b"U\x00\x05");
        field("u", b"u\xff\xfe");
        field("I", b"I\xff\xff\xff\xfe");
        field("i", b"i\xff\xff\xff\xfe");
        field("l", b"l\xff\xff\xff\xff\xff\xff\xff\xfe");
        field("L", b"L\x00\x00\x00\x00\x00\x00\x00\x09");
        field("f", &[b'f', 0x3f, 0xc0, 0, 0]);
        field("d", &[&b"d"[..], &0.25f64.to_be_bytes()].concat());
        field("D", b"D\x02\x00\x00\x01\x3b");
        field("S", b"S\x00\x00\x00\x03a\xffb");
        field("A", b"A\x00\x00\x00\x04VB\x07V");
        field("T", b"T\x00\x00\x00\x00\x65\x00\x00\x00");
        field("F", b"F\x00\x00\x00\x03\x01kV");
        field("x", b"x\x00\x00\x00\x02\x01\x02");
        field("V", b"V");
        field("t", b"t\x00"); // a repeated key keeps its last value
        let h = read_table(&table_bytes(&e), "t").unwrap();
        let expected = json!({
            "A": [null, 7, null], "B": 254, "D": 3.15, "F": {"k": null}, "I": -2, "L": 9, "S": "a\u{fffd}b",
            "T": 0x6500_0000u64, "U": 5, "V": null, "b": -2, "d": 0.25, "f": 1.5, "i": 4_294_967_294u32, "l": -2,
            "s": -2, "t": false, "u": 65_534, "x": [1, 2]
        });
        assert_eq!(Value::Object(h.clone()), expected);
        let keys: Vec<&str> = h.keys().map(String::as_str).collect();
        assert_eq!(keys, ["A", "B", "D", "F", "I", "L", "S", "T", "U", "V", "b", "d", "f", "i", "l", "s", "t", "u", "x"]);
    }

    #[test]
    fn bad_field_tables_are_refused() {
        let err = |b: &[u8]| read_table(b, "arguments").unwrap_err().to_string();
        assert!(err(&table_bytes(b"\x01kZ")).contains("unknown field type 'Z'"));
        assert!(err(&table_bytes(b"\x01kI\x00")).contains("too short"));
        assert!(err(&[0, 0, 0, 9, 1]).contains("too short"));
        assert!(err(&table_bytes(b"\x01\xffV")).contains("not UTF-8"));
        // Nesting is bounded: 100 arrays inside each other.
        let mut v = b"V".to_vec();
        for _ in 0..100 {
            let mut a = b"A".to_vec();
            a.extend_from_slice(&(v.len() as u32).to_be_bytes());
            a.extend_from_slice(&v);
            v = a;
        }
        let mut e = b"\x01k".to_vec();
        e.extend_from_slice(&v);
        assert!(err(&table_bytes(&e)).contains("nest deeper than 64"));
    }
}
