//! Serializers (Kombu's `kombu.serialization`): a registry of named encoders/decoders with
//! their content types, `dumps`/`loads`, and accept lists.
//!
//! Built in: `json` (the default; output byte-identical to Python kombu's `json.dumps`:
//! `", "`/`": "` separators, non-ASCII escaped, Python's float formatting), `msgpack`,
//! `yaml`, and `pickle`, which is registered so that it can be named in errors but is never
//! encoded or decoded: pickle bodies are Python objects. `raw` sends text or bytes as
//! `application/data`. Text and bytes published without a serializer bypass serialization
//! (`text/plain`, `application/data`).
//!
//! Secure by default, as Kombu 3+: without an accept list, only pickle, yaml and msgpack are
//! refused ([`enable_insecure_serializers`] lifts that); with an accept list only its types
//! (plus the always-trusted `application/data`, `application/text` and an unspecified
//! content type) are decoded, anything else is [`Error::ContentDisallowed`].

use crate::namemap::NameMap;
use std::borrow::Cow;
use std::io;
use std::sync::{Arc, OnceLock, RwLock};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::payload::Payload;
use crate::value::Value;

/// Encodes a payload into body bytes.
pub type Encoder = Arc<dyn Fn(&Payload) -> Result<Vec<u8>> + Send + Sync>;
/// Decodes body bytes into a payload.
pub type Decoder = Arc<dyn Fn(&[u8]) -> Result<Payload> + Send + Sync>;

/// Pickle's content type: recognised, never decoded.
pub const PICKLE_CONTENT_TYPE: &str = "application/x-python-serialize";
const JSON: &str = "application/json";
/// Content types decoded even when an accept list does not name them (Kombu's
/// `TRUSTED_CONTENT`), plus the empty (unspecified) type.
const TRUSTED: &[&str] = &["application/data", "application/text"];
/// Encodings whose bodies are not text.
const SKIP_DECODE: &[&str] = &["binary", "ascii-8bit"];

/// A serializer of the registry.
#[derive(Clone)]
pub struct Codec {
    /// Registry name (`json`, `msgpack`, ...).
    pub name: String,
    /// MIME type written to `content_type`.
    pub content_type: Cow<'static, str>,
    /// Written to `content_encoding` (`utf-8`, `binary`).
    pub content_encoding: Cow<'static, str>,
    encoder: Option<Encoder>,
    decoder: Option<Decoder>,
}

impl std::fmt::Debug for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Codec")
            .field("name", &self.name)
            .field("content_type", &self.content_type)
            .field("content_encoding", &self.content_encoding)
            .finish()
    }
}

struct Registry {
    by_name: NameMap<Codec>,
    /// content type → name
    by_type: NameMap<String>,
    disabled: Vec<String>,
    default: String,
    /// "json" is still the built-in serializer (not replaced by `register`).
    json_builtin: bool,
}

impl Registry {
    fn builtin() -> Self {
        let mut r = Registry { by_name: NameMap::new(), by_type: NameMap::new(), disabled: Vec::new(), default: "json".into(), json_builtin: true };
        r.insert(Codec {
            name: "json".into(),
            content_type: "application/json".into(),
            content_encoding: "utf-8".into(),
            encoder: Some(Arc::new(|p| match p {
                Payload::Data(v) => json_dumps(v),
                other => json_dumps(&payload_value(other)),
            })),
            decoder: Some(Arc::new(|b| {
                json_loads(b).map(Payload::Data).map_err(|e| Error::Decode(format!("invalid JSON body: {e}")))
            })),
        });
        // msgpack and yaml are crate features (on by default). Without them the names and
        // content types are still known, so that errors can say how to get them.
        r.insert(Codec {
            name: "msgpack".into(),
            content_type: "application/x-msgpack".into(),
            content_encoding: "binary".into(),
            #[cfg(feature = "msgpack")]
            encoder: Some(Arc::new(|p| match p {
                Payload::Data(v) => msgpack_dumps(v),
                other => msgpack_dumps(&payload_value(other)),
            })),
            #[cfg(feature = "msgpack")]
            decoder: Some(Arc::new(|b| msgpack_loads(b).map(Payload::Data))),
            #[cfg(not(feature = "msgpack"))]
            encoder: None,
            #[cfg(not(feature = "msgpack"))]
            decoder: None,
        });
        r.insert(Codec {
            name: "yaml".into(),
            content_type: "application/x-yaml".into(),
            content_encoding: "utf-8".into(),
            #[cfg(feature = "yaml")]
            encoder: Some(Arc::new(|p| yaml_dumps(&payload_value(p)))),
            #[cfg(feature = "yaml")]
            decoder: Some(Arc::new(|b| yaml_loads(b).map(Payload::Data))),
            #[cfg(not(feature = "yaml"))]
            encoder: None,
            #[cfg(not(feature = "yaml"))]
            decoder: None,
        });
        r.insert(Codec {
            name: "pickle".into(),
            content_type: PICKLE_CONTENT_TYPE.into(),
            content_encoding: "binary".into(),
            encoder: None,
            decoder: None,
        });
        r.disabled = vec![PICKLE_CONTENT_TYPE.into(), "application/x-yaml".into(), "application/x-msgpack".into()];
        r
    }

    fn insert(&mut self, c: Codec) {
        if let Some(old) = self.by_name.remove(&c.name) {
            self.by_type.remove(&*old.content_type);
        }
        self.by_type.insert(c.content_type.to_string(), c.name.clone());
        self.by_name.insert(c.name.clone(), c);
    }

    fn known(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for k in self.by_name.keys() {
            names.push(k);
        }
        names.push("raw");
        names.join(", ")
    }

    /// A name or content type → content type.
    fn content_type_of(&self, name_or_type: &str) -> Option<String> {
        if let Some(c) = self.by_name.get(name_or_type) {
            return Some(c.content_type.to_string());
        }
        if self.by_type.contains_key(name_or_type) || name_or_type.as_bytes().contains(&b'/') {
            return Some(name_or_type.to_owned());
        }
        None
    }

    /// [`Registry::content_type_of`], or `SerializerNotInstalled` listing the known ones.
    fn installed(&self, name_or_type: &str) -> Result<String> {
        self.content_type_of(name_or_type).ok_or_else(|| Error::SerializerNotInstalled { name: name_or_type.into(), known: self.known() })
    }
}

fn registry() -> &'static RwLock<Registry> {
    static R: OnceLock<RwLock<Registry>> = OnceLock::new();
    R.get_or_init(|| RwLock::new(Registry::builtin()))
}

fn read() -> std::sync::RwLockReadGuard<'static, Registry> {
    crate::rt::read(registry())
}

fn write() -> std::sync::RwLockWriteGuard<'static, Registry> {
    crate::rt::write(registry())
}

fn payload_value(p: &Payload) -> Value {
    match p {
        Payload::Data(v) => v.clone(),
        Payload::Text(s) => Value::String(s.clone()),
        // Python's json refuses bytes; kombu's encoder turns them into text (utf-8).
        Payload::Bytes(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
    }
}

/// A payload as (compact) JSON bytes — how serializers implemented outside the crate (the npm
/// package's codecs module) receive it. Text and bytes become JSON strings, as for msgpack/yaml.
pub fn json_bytes(p: &Payload) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    match p {
        Payload::Data(v) => crate::json_print::compact(&mut out, v),
        other => crate::json_print::compact(&mut out, &payload_value(other)),
    }
    Ok(out)
}

/// Register a serializer (Kombu's `register(name, encoder, decoder, content_type,
/// content_encoding)`). A later registration under the same name replaces the earlier.
pub fn register(name: &str, content_type: &str, content_encoding: &str, encoder: Encoder, decoder: Decoder) -> Result<()> {
    if name.is_empty() || content_type.is_empty() {
        return Err(Error::MissingArgument { what: "a serializer", needs: "a name and a content type" });
    }
    let mut r = write();
    if name == "json" {
        r.json_builtin = false;
    }
    r.insert(Codec {
        name: name.into(),
        content_type: content_type.to_owned().into(),
        content_encoding: content_encoding.to_owned().into(),
        encoder: Some(encoder),
        decoder: Some(decoder),
    });
    Ok(())
}

/// Remove a serializer (Kombu's `unregister`). Errors when no such serializer exists.
pub fn unregister(name: &str) -> Result<()> {
    let mut r = write();
    match r.by_name.remove(name) {
        Some(c) => {
            if name == "json" {
                r.json_builtin = false;
            }
            r.by_type.remove(&*c.content_type);
            if r.default == name {
                r.default = "json".into();
            }
            Ok(())
        }
        None => Err(Error::SerializerNotInstalled { name: name.into(), known: r.known() }),
    }
}

/// The registered serializers.
pub fn registry_codecs() -> Vec<Codec> {
    read().by_name.values().cloned().collect()
}

/// The serializer used when none is named (`json`).
pub fn default_serializer() -> String {
    read().default.clone()
}

/// Change the default serializer (Kombu's `registry._set_default_serializer`).
pub fn set_default_serializer(name: &str) -> Result<()> {
    let mut r = write();
    if !r.by_name.contains_key(name) {
        return Err(Error::SerializerNotInstalled { name: name.into(), known: r.known() });
    }
    r.default = name.into();
    Ok(())
}

/// Allow decoding these serializers without an accept list (Kombu's
/// `enable_insecure_serializers`, global). Pickle stays undecodable here.
pub fn enable_insecure_serializers<S: AsRef<str>>(choices: impl IntoIterator<Item = S>) -> Result<()> {
    let mut r = write();
    for c in choices {
        let ct = r.installed(c.as_ref())?;
        r.disabled.retain(|d| *d != ct);
    }
    Ok(())
}

/// Refuse every serializer but `allowed` when there is no accept list (Kombu's
/// `disable_insecure_serializers(allowed=['json'])`). Producers can still serialize.
pub fn disable_insecure_serializers<S: AsRef<str>>(allowed: impl IntoIterator<Item = S>) -> Result<()> {
    let mut r = write();
    let mut keep = Vec::new();
    for a in allowed {
        keep.push(r.installed(a.as_ref())?);
    }
    let mut disabled = Vec::new();
    for t in r.by_type.keys() {
        if !keep.contains(t) {
            disabled.push(t.clone());
        }
    }
    r.disabled = disabled;
    Ok(())
}

/// A body and the content type and encoding that describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// MIME type.
    pub content_type: Cow<'static, str>,
    /// Encoding (`utf-8`, `binary`).
    pub content_encoding: Cow<'static, str>,
    /// The bytes.
    pub body: Bytes,
}

/// Serialize a payload (Kombu's `dumps`). Without a serializer, structured data uses the
/// default (json), text is sent as `text/plain` and bytes as `application/data`, unserialized.
/// With a serializer, it is used even for text. `raw` sends text/bytes as `application/data`.
pub fn dumps(payload: &Payload, serializer: Option<&str>) -> Result<Encoded> {
    match (serializer, payload) {
        (Some("raw"), Payload::Bytes(b)) | (None, Payload::Bytes(b)) => {
            return Ok(Encoded { content_type: "application/data".into(), content_encoding: "binary".into(), body: b.clone() })
        }
        (Some("raw"), Payload::Text(s)) => {
            return Ok(Encoded { content_type: "application/data".into(), content_encoding: "utf-8".into(), body: Bytes::from(s.clone().into_bytes()) })
        }
        (Some("raw"), Payload::Data(_)) => {
            return Err(Error::Encode("the raw serializer sends text or bytes as they are; structured data needs a serializer such as json".into()))
        }
        (None, Payload::Text(s)) => {
            return Ok(Encoded { content_type: "text/plain".into(), content_encoding: "utf-8".into(), body: Bytes::from(s.clone().into_bytes()) })
        }
        _ => {}
    }
    let (encode, content_type, content_encoding) = {
        let r = read();
        let name = serializer.unwrap_or(&r.default);
        let Some(codec) = r.by_name.get(name) else {
            return Err(Error::SerializerNotInstalled { name: name.to_owned(), known: r.known() });
        };
        let Some(encode) = codec.encoder.clone() else {
            return Err(Error::Encode(unavailable(&codec.name, &codec.content_type)));
        };
        (encode, codec.content_type.clone(), codec.content_encoding.clone())
    };
    let body = encode(payload)?;
    Ok(Encoded { content_type, content_encoding, body: exact(body) })
}

/// Deserialize a body (Kombu's `loads`), checking `accept` unless `force`.
///
/// Text types without a decoder come back as [`Payload::Text`], binary ones (encoding
/// `binary`) and `application/data` as [`Payload::Bytes`].
pub fn loads(body: &[u8], content_type: Option<&str>, content_encoding: Option<&str>, accept: Option<&Accept>, force: bool) -> Result<Payload> {
    let ct = content_type.filter(|c| !c.is_empty()).unwrap_or("application/data");
    let (decoder, disabled) = {
        let r = read();
        let codec = r.by_type.get(ct).and_then(|n| r.by_name.get(n));
        (codec.map(|c| c.decoder.clone().ok_or_else(|| c.name.clone())), r.disabled.iter().any(|d| d == ct))
    };
    if !force {
        check_accept(ct, accept, disabled)?;
    }
    let encoding = content_encoding.filter(|e| !e.is_empty()).unwrap_or("utf-8");
    let encoding: std::borrow::Cow<str> = if encoding.bytes().any(|b| b.is_ascii_uppercase()) {
        encoding.to_ascii_lowercase().into()
    } else {
        encoding.into()
    };
    if body.is_empty() && !matches!(decoder, Some(Ok(_))) {
        return Ok(if SKIP_DECODE.contains(&&*encoding) { Payload::Bytes(Bytes::new()) } else { Payload::Text(String::new()) });
    }
    match decoder {
        Some(Ok(decode)) => decode(body),
        Some(Err(name)) => Err(Error::Decode(format!(
            "{}; the raw body is still available (message.body) and the message can be rejected or requeued",
            unavailable(&name, ct)
        ))),
        None if ct == "application/data" || SKIP_DECODE.contains(&&*encoding) => Ok(Payload::Bytes(Bytes::copy_from_slice(body))),
        None => match &*encoding {
            "utf-8" | "utf8" | "ascii" | "us-ascii" => std::str::from_utf8(body)
                .map(|s| Payload::Text(s.to_owned()))
                .map_err(|e| Error::Decode(format!("{ct} body is not valid {encoding}: {e}"))),
            "latin-1" | "latin1" | "iso-8859-1" => Ok(Payload::Text(body.iter().map(|&b| b as char).collect())),
            other => Err(Error::Decode(format!("unknown content encoding {other:?} for {ct} (known: utf-8, ascii, latin-1, binary)"))),
        },
    }
}

/// Whether a body of content type `ct` may be decoded: named by `accept` (or trusted), or,
/// without an accept list, not one of the disabled (insecure) serializers' types.
fn check_accept(ct: &str, accept: Option<&Accept>, disabled: bool) -> Result<()> {
    match accept {
        Some(a) if !TRUSTED.contains(&ct) && !a.contains(ct) => {
            Err(Error::ContentDisallowed { content_type: ct.into(), accepted: a.describe() })
        }
        None if disabled => Err(Error::ContentDisallowed {
            content_type: ct.into(),
            accepted: format!(
                "everything but the insecure serializers; pass an accept list or call enable_insecure_serializers to allow {ct}"
            ),
        }),
        _ => Ok(()),
    }
}

/// Deserialize a body straight into `T` — what `loads(...)?.deserialize::<T>()` gives, with
/// the same checks and errors — without building a [`Value`] first when the body is JSON and
/// the built-in json serializer decodes it (other content types go through [`loads`]).
pub fn loads_as<T: DeserializeOwned>(body: &[u8], content_type: Option<&str>, content_encoding: Option<&str>, accept: Option<&Accept>) -> Result<T> {
    if content_type == Some(JSON) {
        let (builtin, disabled) = {
            let r = read();
            (r.json_builtin && r.by_type.get(JSON).is_some_and(|n| n == "json"), r.disabled.iter().any(|d| d == JSON))
        };
        if builtin {
            check_accept(JSON, accept, disabled)?;
            let mismatch = |e| Error::Decode(format!("payload does not match the requested type: {e}"));
            if cfg!(target_arch = "wasm32") {
                // As in json_loads_as: the text, then the type.
                let v = json_loads(body).map_err(|e| Error::Decode(format!("invalid JSON body: {e}")))?;
                return T::deserialize(v).map_err(mismatch);
            }
            return serde_json::from_slice(body).map_err(|e| match e.classify() {
                serde_json::error::Category::Data => mismatch(e),
                _ => Error::Decode(format!("invalid JSON body: {e}")),
            });
        }
    }
    loads(body, content_type, content_encoding, accept, false)?.deserialize()
}

/// [`dumps`] of structured data given as any `Serialize` value: with the built-in json
/// serializer (the default) written straight to Python-style JSON bytes — the bytes
/// `dumps(&Payload::from_serialize(value)?, serializer)` gives, without building a [`Value`];
/// with other serializers through the value.
pub fn dumps_as<T: Serialize + ?Sized>(value: &T, serializer: Option<&str>) -> Result<Encoded> {
    if !builtin_json(serializer) {
        return dumps(&Payload::from_serialize(value)?, serializer);
    }
    let body = written(128, |out| {
        let mut ser = serde_json::Serializer::with_formatter(out, PythonFormatter);
        value.serialize(&mut ser).map_err(|e| Error::Encode(format!("json: {e}")))
    })?;
    Ok(json_encoded(body))
}

/// True when `serializer` (or, without one, the default) is the built-in json serializer,
/// whose bytes the direct paths ([`dumps_as`], [`json_from_text`]) write themselves.
fn builtin_json(serializer: Option<&str>) -> bool {
    let r = read();
    serializer.unwrap_or(&r.default) == "json" && r.json_builtin
}

/// Python-style JSON bytes written by a direct path, as [`dumps`] labels them.
fn json_encoded(body: Bytes) -> Encoded {
    Encoded { content_type: JSON.into(), content_encoding: "utf-8".into(), body }
}

/// The bytes `write` writes to a buffer of `capacity` (grown as needed), owning exactly
/// their length (see [`exact`]).
fn written(capacity: usize, write: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> Result<Bytes> {
    let mut buf = Vec::with_capacity(capacity);
    write(&mut buf)?;
    Ok(exact(buf))
}

/// Bytes that own exactly `v`'s length: `Bytes::from` a vector with spare capacity allocates
/// a second block to share it. A small body is copied to a block of its size (cheaper than
/// shrinking the vector in place, measured); a large one is shrunk (cheaper than a copy).
fn exact(v: Vec<u8>) -> Bytes {
    if v.len() <= 4096 {
        Bytes::copy_from_slice(&v)
    } else {
        Bytes::from(v.into_boxed_slice())
    }
}

/// Why a known serializer has no encoder/decoder here.
fn unavailable(name: &str, content_type: &str) -> String {
    if content_type == PICKLE_CONTENT_TYPE {
        format!("{name} ({content_type}) is Python's object serialization and cannot be encoded or decoded outside Python; use json, msgpack or yaml")
    } else if cfg!(target_arch = "wasm32") {
        format!("the {name} serializer ({content_type}) is not in this WebAssembly module: import \"kombu-wasm/codecs\" (it adds yaml, msgpack and the compression methods)")
    } else {
        format!("the {name} serializer ({content_type}) is not built in: enable the kombu crate's `{name}` feature")
    }
}

/// Content types a consumer accepts (Kombu's `accept`), given by serializer name or MIME type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    types: Vec<String>,
}

impl Accept {
    /// Build from names (`json`) or MIME types (`application/json`). Unknown names are
    /// `SerializerNotInstalled`, listing the known ones.
    pub fn new<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> Result<Accept> {
        let r = read();
        let mut types = Vec::new();
        for item in items {
            let s = item.as_ref();
            let ct = r.installed(s)?;
            if !types.contains(&ct) {
                types.push(ct);
            }
        }
        Ok(Accept { types })
    }

    /// Kombu's recommended accept list: `['json']`.
    pub fn default_accept() -> Accept {
        Accept { types: vec!["application/json".into()] }
    }

    /// True if `content_type` is accepted.
    pub fn contains(&self, content_type: &str) -> bool {
        self.types.iter().any(|t| t == content_type)
    }

    /// The accepted content types.
    pub fn content_types(&self) -> impl Iterator<Item = &str> {
        self.types.iter().map(String::as_str)
    }

    fn describe(&self) -> String {
        if self.types.is_empty() {
            "nothing".into()
        } else {
            // Joined as &str: the wasm modules keep one join instantiation.
            let mut types: Vec<&str> = Vec::new();
            for t in &self.types {
                types.push(t);
            }
            types.join(", ")
        }
    }
}

/// Parse JSON text (a whole body) into a value. Natively with serde_json's parser through
/// [`crate::value::deserialize_value`] (fewer allocations); in wasm builds with
/// [`crate::json_text::parse`], which reads what serde_json reads without its float parser
/// (~9.6 KB gzipped of each module). All JSON text the crate parses goes through here or
/// [`json_loads_as`], as bytes (`text.as_bytes()` for a `&str`). Same values and errors either
/// way (in wasm, json_text's own error type, with serde_json's text).
#[cfg(target_arch = "wasm32")]
pub(crate) fn json_loads(b: &[u8]) -> Result<Value, crate::json_text::Error> {
    crate::json_text::parse(b)
}

/// [`json_loads`] natively: serde_json's parser.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn json_loads(b: &[u8]) -> serde_json::Result<Value> {
    let mut de = serde_json::Deserializer::from_slice(b);
    let v = crate::value::deserialize_value(&mut de)?;
    de.end()?;
    Ok(v)
}

/// JSON text into `T`, as `serde_json::from_slice` reads it. In wasm builds the text is read
/// by [`json_loads`] and `T` from the value, which gives the same `T`; its errors are serde_json's
/// own for bad text and its value deserializer's for a mismatched type (without a position),
/// and a duplicate key in a struct's object is the last value rather than an error.
pub(crate) fn json_loads_as<T: DeserializeOwned>(b: &[u8]) -> serde_json::Result<T> {
    if cfg!(target_arch = "wasm32") {
        return json_loads(b).map_err(serde::de::Error::custom).and_then(T::deserialize);
    }
    serde_json::from_slice(b)
}

/// msgpack as Python's `msgpack.packb(use_bin_type=True)` writes it (maps with their keys).
#[cfg(feature = "msgpack")]
pub fn msgpack_dumps(value: &Value) -> Result<Vec<u8>> {
    rmp_serde::to_vec_named(value).map_err(|e| Error::Encode(format!("msgpack: {e}")))
}

/// Parse a msgpack body into JSON-like data.
#[cfg(feature = "msgpack")]
pub fn msgpack_loads(body: &[u8]) -> Result<Value> {
    let value = if cfg!(target_arch = "wasm32") {
        rmp_serde::from_slice(body)
    } else {
        crate::value::deserialize_value(&mut rmp_serde::Deserializer::from_read_ref(body))
    };
    value.map_err(|e| Error::Decode(format!("invalid msgpack body: {e}")))
}

#[cfg(feature = "yaml")]
/// YAML that PyYAML's `safe_load` reads back as the same data: floats always carry a `.`
/// (`1.0e+100`, as PyYAML writes them; YAML 1.1 reads `1e100` as a string).
pub fn yaml_dumps(value: &Value) -> Result<Vec<u8>> {
    fn to_yaml(v: &Value) -> yaml_rust2::Yaml {
        use yaml_rust2::Yaml;
        match v {
            Value::Null => Yaml::Null,
            Value::Bool(b) => Yaml::Boolean(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => Yaml::Integer(i),
                (None, Some(u), _) => Yaml::Real(u.to_string()),
                (_, _, Some(f)) => Yaml::Real(pyyaml_float(f)),
                _ => Yaml::Null,
            },
            Value::String(s) => Yaml::String(s.clone()),
            Value::Array(a) => Yaml::Array(a.iter().map(to_yaml).collect()),
            Value::Object(m) => Yaml::Hash(m.iter().map(|(k, v)| (Yaml::String(k.clone()), to_yaml(v))).collect()),
        }
    }
    let mut out = String::new();
    yaml_rust2::YamlEmitter::new(&mut out).dump(&to_yaml(value)).map_err(|e| Error::Encode(format!("yaml: {e}")))?;
    let body = out.strip_prefix("---\n").or_else(|| out.strip_prefix("--- ")).unwrap_or(&out);
    Ok(format!("{body}\n").into_bytes())
}

#[cfg(feature = "yaml")]
/// PyYAML's float representation: Python's repr with `.0` inserted before an exponent.
fn pyyaml_float(f: f64) -> String {
    if f.is_nan() {
        return ".nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { ".inf".into() } else { "-.inf".into() };
    }
    let r = python_float_repr(f);
    if !r.contains('.') && r.contains('e') {
        r.replacen('e', ".0e", 1)
    } else {
        r
    }
}

#[cfg(feature = "yaml")]
/// Parse a YAML document (the first one) into JSON-like data.
pub fn yaml_loads(body: &[u8]) -> Result<Value> {
    use yaml_rust2::Yaml;
    fn to_value(y: &Yaml) -> Result<Value> {
        Ok(match y {
            Yaml::Null => Value::Null,
            Yaml::Boolean(b) => Value::Bool(*b),
            Yaml::Integer(i) => Value::from(*i),
            Yaml::Real(s) => {
                if let Ok(u) = s.parse::<u64>() {
                    Value::from(u)
                } else {
                    let f: f64 = s.parse().map_err(|_| Error::Decode(format!("YAML float {s:?} cannot be represented")))?;
                    serde_json::Number::from_f64(f).map(Value::Number).ok_or_else(|| Error::Decode(format!("YAML float {s:?} (NaN or infinity) cannot be represented")))?
                }
            }
            Yaml::String(s) => Value::String(s.clone()),
            Yaml::Array(a) => Value::Array(a.iter().map(to_value).collect::<Result<_>>()?),
            Yaml::Hash(h) => {
                let mut m = crate::value::Headers::new();
                for (k, v) in h {
                    let key = match k {
                        Yaml::String(s) | Yaml::Real(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        Yaml::Null => "null".into(),
                        other => return Err(Error::Decode(format!("YAML mapping key {other:?} is not a scalar"))),
                    };
                    m.insert(key, to_value(v)?);
                }
                Value::Object(m)
            }
            Yaml::Alias(_) | Yaml::BadValue => return Err(Error::Decode("YAML aliases are not supported".into())),
        })
    }
    let text = std::str::from_utf8(body).map_err(|e| Error::Decode(format!("YAML body is not UTF-8: {e}")))?;
    let docs = yaml_rust2::YamlLoader::load_from_str(text).map_err(|e| Error::Decode(format!("invalid YAML body: {e}")))?;
    docs.first().map_or(Ok(Value::Null), to_value)
}

/// JSON exactly as Python's `json.dumps` writes it (Kombu's `kombu.utils.json.dumps`).
pub fn json_dumps(value: &Value) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    json_write(&mut out, value)?;
    Ok(out)
}

/// [`json_dumps`] into `out`.
fn json_write(out: &mut Vec<u8>, value: &Value) -> Result<()> {
    // In the wasm modules, the crate's own printer (the same bytes) instead of serde_json's
    // serializer and its integer and float formatters.
    if cfg!(target_arch = "wasm32") {
        crate::json_print::print(out, value, crate::json_print::Style::Python);
        return Ok(());
    }
    let mut ser = serde_json::Serializer::with_formatter(out, PythonFormatter);
    serde::Serialize::serialize(value, &mut ser).map_err(|e| Error::Encode(format!("json: {e}")))
}

/// What [`dumps`] makes of structured data given as JSON text (JavaScript's `JSON.stringify`
/// output), when `serializer` — or the default — is the built-in json serializer: the same
/// bytes, Python-style — for most messages written straight from the text (see [`spaced`]),
/// for the rest through a parsed value. `None` when another serializer applies (then parse
/// the text and use [`dumps`]).
pub fn json_from_text(text: &str, serializer: Option<&str>) -> Option<Result<Encoded>> {
    if !builtin_json(serializer) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() + text.len() / 4);
    let body = match spaced(text.as_bytes(), &mut out) {
        Some(()) => Ok(exact(out)),
        None => reparsed(text),
    };
    Some(body.map(json_encoded))
}

/// Python-style JSON bytes of any JSON text: parsed to a value and dumped. (A transcoder
/// writing straight from the text was ~2.2 KB of the core module gzipped, and its own instance
/// of serde_json's parser; for the bodies
/// [`spaced`] leaves to this — floats, non-ASCII — it published ~20% faster in Node. A
/// member repeated in an object is written once here, the last value, as Python reads it.)
fn reparsed(text: &str) -> Result<Bytes> {
    // json_loads: the module's one instance of serde_json's parser.
    let v = json_loads(text.as_bytes()).map_err(|e| Error::Encode(format!("the body is not JSON: {e}")))?;
    written(text.len() + text.len() / 4, |out| json_write(out, &v))
}

/// [`json_from_text`]'s common case without building a value (~4x less work for a small
/// message than the transcoder this replaces, measured in the npm package): compact JSON text
/// (as `JSON.stringify` writes it) whose strings are printable ASCII with only the short
/// escapes (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`) and whose numbers are integers of up
/// to 15 digits, nested at most 32 deep. Its Python-style bytes are the text with a space after
/// each `,` and `:` outside strings, which is what [`dumps`] writes for its value; they are
/// appended to `out`. `None` (nothing written) for anything else — other numbers, `\u`
/// escapes, non-ASCII, whitespace, and text that is not JSON — which [`reparsed`] then writes
/// (or refuses, saying why).
fn spaced(t: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if !plain_compact_json(t) {
        return None;
    }
    let (mut string, mut escaped) = (false, false);
    for &b in t {
        out.push(b);
        if string {
            (string, escaped) = (escaped || b != b'"', !escaped && b == b'\\');
        } else if b == b'"' {
            string = true;
        } else if b == b',' || b == b':' {
            out.push(b' ');
        }
    }
    Some(())
}

/// Whether [`spaced`] takes `t` (see there).
fn plain_compact_json(t: &[u8]) -> bool {
    // The open containers, innermost in the lowest bit: 1 for an object, 0 for an array.
    let (mut objects, mut depth) = (0u32, 0);
    // A value comes next (else what follows one: `,`, the end of a container or of the text);
    // with `key`, an object member's key and `:` come first.
    let (mut value, mut key) = (true, false);
    let mut i = 0;
    while i < t.len() {
        let c = t[i];
        i += 1;
        if value && c == b'"' {
            loop {
                let Some(&b) = t.get(i) else { return false };
                i += 1;
                if b == b'"' {
                    break;
                }
                if b == b'\\' {
                    if !t.get(i).is_some_and(|e| b"\"\\bfnrt".contains(e)) {
                        return false;
                    }
                    i += 1;
                } else if !(0x20..0x7f).contains(&b) {
                    return false;
                }
            }
            if key {
                if t.get(i) != Some(&b':') {
                    return false;
                }
                i += 1;
                key = false;
            } else {
                value = false;
            }
        } else if key {
            return false;
        } else if value && (c == b'{' || c == b'[') {
            if depth == 32 {
                return false;
            }
            objects = objects << 1 | u32::from(c == b'{');
            depth += 1;
            key = c == b'{';
            // `}` or `]`: empty.
            if t.get(i) == Some(&(c + 2)) {
                i += 1;
                objects >>= 1;
                depth -= 1;
                (value, key) = (false, false);
            }
        } else if value && (c == b'-' || c.is_ascii_digit()) {
            let digits = i - usize::from(c != b'-');
            while t.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            let n = i - digits;
            // Not none or more than 15 digits, a leading zero (or -0), a fraction or an exponent.
            if n == 0 || n > 15 || (t.get(digits) == Some(&b'0') && (n > 1 || c == b'-')) || t.get(i).is_some_and(|b| b"eE.".contains(b)) {
                return false;
            }
            value = false;
        } else if value {
            let word: &[u8] = match c {
                b't' => b"true",
                b'f' => b"false",
                b'n' => b"null",
                _ => return false,
            };
            if !t[i - 1..].starts_with(word) {
                return false;
            }
            i += word.len() - 1;
            value = false;
        } else if depth == 0 {
            return false;
        } else if c == b',' {
            (value, key) = (true, objects & 1 == 1);
        } else if c == if objects & 1 == 1 { b'}' } else { b']' } {
            objects >>= 1;
            depth -= 1;
        } else {
            return false;
        }
    }
    !value && depth == 0
}

/// serde_json formatter matching Python's `json.dumps` defaults.
struct PythonFormatter;

impl serde_json::ser::Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
    fn write_string_fragment<W: ?Sized + io::Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        // ensure_ascii: everything outside printable ASCII becomes \uXXXX (UTF-16 units).
        let bytes = fragment.as_bytes();
        if bytes.iter().all(|&b| b < 0x7f) {
            return w.write_all(bytes);
        }
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if (c as u32) < 0x7f {
                continue;
            }
            w.write_all(&bytes[start..i])?;
            let mut units = [0u16; 2];
            for &mut u in c.encode_utf16(&mut units) {
                // (Not `write!`: on an io::Write that is std's fmt-to-io adapter, ~0.5 KB of
                // wasm for this alone.)
                w.write_all(&crate::json_print::u_escape(u))?;
            }
            start = i + c.len_utf8();
        }
        w.write_all(&bytes[start..])
    }
    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, v: f64) -> io::Result<()> {
        w.write_all(python_float_repr(v).as_bytes())
    }
    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, v: f32) -> io::Result<()> {
        w.write_all(python_float_repr(v as f64).as_bytes())
    }
}

/// A number of seconds in a message: the shortest digits, without Python's `.0` ("5", "0.3"),
/// as Rust's `{}` writes it for such numbers, without core's float formatting in wasm.
pub(crate) fn seconds_text(v: f64) -> String {
    let r = python_float_repr(v);
    r.strip_suffix(".0").map(str::to_owned).unwrap_or(r)
}

/// Python's `repr(float)`: shortest round-trip digits, positional for exponents -4..16,
/// scientific (`1e+100`, `1.5e-07`) otherwise.
pub fn python_float_repr(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    // The shortest round-trip digits, in the wasm modules from JavaScript, natively from
    // serde_json's float formatter (zmij), not core's `{:e}`: a module then carries no float
    // formatter of its own (core's is ~20 KB of wasm).
    crate::json_print::float_text(v, crate::json_print::Style::Python)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use serde_json::json;

    use super::*;

    fn data(v: Value) -> Payload {
        Payload::Data(v)
    }

    #[test]
    fn json_is_byte_identical_to_python() {
        let e = dumps(&data(json!({"a": 1, "u": "é\u{1F600}", "f": 1.0, "g": 1e100, "h": 1.5e-7, "i": 1e16, "j": 1e15, "k": 0.0001, "l": 12345678.9, "m": [1, {"x": null, "y": true}]})), None).unwrap();
        assert_eq!((&*e.content_type, &*e.content_encoding), ("application/json", "utf-8"));
        // The bytes Python kombu 5.7 produced for the same dict.
        assert_eq!(
            std::str::from_utf8(&e.body).unwrap(),
            r#"{"a": 1, "u": "\u00e9\ud83d\ude00", "f": 1.0, "g": 1e+100, "h": 1.5e-07, "i": 1e+16, "j": 1000000000000000.0, "k": 0.0001, "l": 12345678.9, "m": [1, {"x": null, "y": true}]}"#
        );
        assert_eq!(&dumps(&Payload::Text("str".into()), Some("json")).unwrap().body[..], b"\"str\"");
        assert_eq!(&dumps(&data(json!("\u{7f}\"\\\n\t")), None).unwrap().body[..], br#""\u007f\"\\\n\t""#);
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Typed {
        a: u64,
        u: String,
        f: f64,
        m: Vec<Option<bool>>,
    }

    #[test]
    fn typed_values_make_the_bytes_of_their_json_value() {
        let t = Typed { a: 1, u: "é\u{1F600}\n".into(), f: 1e16, m: vec![None, Some(true)] };
        for serializer in [None, Some("json"), Some("msgpack"), Some("yaml")] {
            let direct = dumps_as(&t, serializer).unwrap();
            let via_value = dumps(&Payload::from_serialize(&t).unwrap(), serializer).unwrap();
            assert_eq!((direct.body, direct.content_type, direct.content_encoding), (via_value.body, via_value.content_type, via_value.content_encoding), "{serializer:?}");
        }
        assert_eq!(&dumps_as(&t, None).unwrap().body[..], br#"{"a": 1, "u": "\u00e9\ud83d\ude00\n", "f": 1e+16, "m": [null, true]}"#);
        assert_eq!(dumps_as(&t, Some("jsn")).unwrap_err().name(), "SerializerNotInstalled");
        // The built-in serializers' labels are static: a message carries them without a copy.
        for e in [dumps_as(&t, None).unwrap(), dumps(&Payload::from_serialize(&t).unwrap(), Some("msgpack")).unwrap()] {
            assert!(matches!((&e.content_type, &e.content_encoding), (Cow::Borrowed(_), Cow::Borrowed(_))), "{e:?}");
        }
    }

    #[test]
    fn loads_as_decodes_straight_into_a_type_with_the_checks_of_loads() {
        let t = Typed { a: 7, u: "x".into(), f: 0.5, m: vec![Some(false)] };
        let body = dumps_as(&t, None).unwrap().body;
        assert_eq!(loads_as::<Typed>(&body, Some("application/json"), Some("utf-8"), None).unwrap(), t);
        let json_only = Accept::new(["json"]).unwrap();
        assert_eq!(loads_as::<Typed>(&body, Some("application/json"), None, Some(&json_only)).unwrap(), t);
        // Refused by the accept list, as loads refuses it.
        let msgpack_only = Accept::new(["msgpack"]).unwrap();
        let err = loads_as::<Typed>(&body, Some("application/json"), None, Some(&msgpack_only)).unwrap_err();
        assert_eq!(err.name(), "ContentDisallowed");
        assert_eq!(err.to_string(), loads(&body, Some("application/json"), None, Some(&msgpack_only), false).unwrap_err().to_string());
        let two = Accept::new(["application/x-a", "application/x-b"]).unwrap();
        let err = loads(&body, Some("application/json"), None, Some(&two), false).unwrap_err();
        assert_eq!(err.to_string(), "Refusing to deserialize disallowed content of type application/json (accepted: application/x-a, application/x-b)");
        // Bad JSON and JSON of another shape are told apart.
        let err = loads_as::<Typed>(b"{\"a\": 1,", Some("application/json"), None, None).unwrap_err();
        assert!(err.to_string().contains("invalid JSON body"), "{err}");
        let err = loads_as::<Typed>(br#"{"a": "one"}"#, Some("application/json"), None, None).unwrap_err();
        assert!(err.to_string().contains("payload does not match the requested type"), "{err}");
        // Other content types go through loads.
        assert_eq!(loads_as::<String>(b"plain", Some("text/plain"), Some("utf-8"), None).unwrap(), "plain");
        #[cfg(feature = "msgpack")]
        {
            let packed = dumps_as(&t, Some("msgpack")).unwrap().body;
            assert_eq!(loads_as::<Typed>(&packed, Some("application/x-msgpack"), None, Some(&msgpack_only)).unwrap(), t);
        }
    }

    #[test]
    fn python_float_repr_cases() {
        for (v, s) in [(0.1, "0.1"), (-2.5, "-2.5"), (1e-5, "1e-05"), (0.00012, "0.00012"), (123.0, "123.0"), (1.2345678901234568e17, "1.2345678901234568e+17"), (5e-324, "5e-324"), (-0.0, "-0.0")] {
            assert_eq!(python_float_repr(v), s, "{v}");
        }
        for v in [5.0, 0.3, -1.0, 2.5, 30.0, 0.001] {
            assert_eq!(seconds_text(v), v.to_string());
        }
    }

    /// The digits come from serde_json's formatter (zmij): as few as core's shortest
    /// round-trip `{:e}` (what this function used before) and reading back as the same double,
    /// over a spread of doubles. Where two candidates of that length are equally near (a
    /// tie), zmij picks the even one, as Python does: core's `{:e}` does not.
    #[test]
    #[allow(clippy::excessive_precision)] // 1658206780088562.25 is the exact double of the tie
    fn python_float_repr_digits_are_shortest_and_round_trip() {
        fn digits(s: &str) -> usize {
            let m = s.split_once('e').map_or(s, |(m, _)| m).replace(['-', '.'], "");
            m.trim_start_matches('0').trim_end_matches('0').len()
        }
        assert_eq!(python_float_repr(1658206780088562.25), "1658206780088562.2");
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let check = |v: f64| {
            if v.is_finite() && v != 0.0 {
                let r = python_float_repr(v);
                assert_eq!(r.parse::<f64>().ok(), Some(v), "{r}");
                assert_eq!(digits(&r), digits(&format!("{v:e}")), "{r} {v:e}");
            }
        };
        for _ in 0..if cfg!(target_arch = "wasm32") { 2_000 } else { 200_000 } {
            crate::xorshift(&mut x);
            check(f64::from_bits(x));
            check((x % 1_000_000_007) as f64 / 1000.0);
        }
        for e in -325..309 {
            for m in [1.0, 1.5, 2.0, 9.999_999_999_999_999, 1.234_567_890_123_456_7, 5.0] {
                check(m * 10f64.powi(e));
            }
        }
        for v in [f64::MIN_POSITIVE, f64::MAX, 5e-324, 1e16, 1e15, 9_007_199_254_740_993.0, 0.1 + 0.2] {
            check(v);
        }
    }

    #[test]
    fn round_trips() {
        let v = json!({"id": 7, "args": [1, 2.5, "x"], "kw": {"nested": [true, null]}});
        for name in ["json", "msgpack", "yaml"] {
            let e = dumps(&data(v.clone()), Some(name)).unwrap();
            let accept = Accept::new([name]).unwrap();
            let back = loads(&e.body, Some(&e.content_type), Some(&e.content_encoding), Some(&accept), false).unwrap();
            assert_eq!(back, data(v.clone()), "{name}");
        }
        // msgpack bytes equal Python's msgpack.packb(use_bin_type=True)
        let e = dumps(&data(json!({"a": [1, 2.5, "x"]})), Some("msgpack")).unwrap();
        assert_eq!(&e.body[..], b"\x81\xa1a\x93\x01\xcb@\x04\x00\x00\x00\x00\x00\x00\xa1x");
        assert_eq!(&dumps(&data(json!({"a": [], "f": 1e100})), Some("yaml")).unwrap().body[..], b"a: []\nf: 1.0e+100\n");
        // PyYAML's output for {"a": [1, 2.5, "x"], "b": "yes"} reads back.
        assert_eq!(yaml_loads(b"a:\n- 1\n- 2.5\n- x\nb: 'yes'\n").unwrap(), json!({"a": [1, 2.5, "x"], "b": "yes"}));
    }

    #[test]
    fn raw_data_bypasses_serialization() {
        let e = dumps(&Payload::Text("hi".into()), None).unwrap();
        assert_eq!((&*e.content_type, &*e.content_encoding, &e.body[..]), ("text/plain", "utf-8", &b"hi"[..]));
        let e = dumps(&Payload::Bytes(Bytes::from_static(b"\x00\x01")), None).unwrap();
        assert_eq!((&*e.content_type, &*e.content_encoding), ("application/data", "binary"));
        let e = dumps(&Payload::Text("hi".into()), Some("raw")).unwrap();
        assert_eq!((&*e.content_type, &*e.content_encoding), ("application/data", "utf-8"));
        assert_eq!(loads(b"hi", Some("text/plain"), Some("utf-8"), None, false).unwrap(), Payload::Text("hi".into()));
        assert_eq!(loads(b"\xff", Some("image/jpeg"), Some("binary"), None, false).unwrap(), Payload::Bytes(Bytes::from_static(b"\xff")));
        assert_eq!(loads(b"\xff", None, None, None, false).unwrap(), Payload::Bytes(Bytes::from_static(b"\xff")));
        let err = loads(b"\xff", Some("text/plain"), Some("utf-8"), None, false).unwrap_err();
        assert!(err.to_string().contains("not valid utf-8"), "{err}");
    }

    #[test]
    fn accept_lists() {
        let a = Accept::new(["json", "application/x-msgpack"]).unwrap();
        assert!(a.contains("application/json") && a.contains("application/x-msgpack"));
        let yaml = dumps(&data(json!([1])), Some("yaml")).unwrap();
        let err = loads(&yaml.body, Some("application/x-yaml"), Some("utf-8"), Some(&a), false).unwrap_err();
        assert_eq!(err.name(), "ContentDisallowed");
        assert!(err.to_string().contains("application/x-yaml") && err.to_string().contains("application/json"), "{err}");
        // forced, trusted and unspecified types pass
        assert!(loads(&yaml.body, Some("application/x-yaml"), None, Some(&a), true).is_ok());
        assert!(loads(b"x", Some("application/data"), Some("binary"), Some(&a), false).is_ok());
        assert!(loads(b"x", None, None, Some(&a), false).is_ok());
        let err = Accept::new(["jsn"]).unwrap_err();
        assert_eq!(err.name(), "SerializerNotInstalled");
        assert!(err.to_string().contains("json, msgpack, pickle, raw, yaml") || err.to_string().contains("json"), "{err}");
    }

    #[test]
    fn secure_by_default() {
        let y = dumps(&data(json!({"a": 1})), Some("yaml")).unwrap();
        let err = loads(&y.body, Some("application/x-yaml"), Some("utf-8"), None, false).unwrap_err();
        assert_eq!(err.name(), "ContentDisallowed");
        assert!(err.to_string().contains("enable_insecure_serializers"), "{err}");
        assert!(loads(br#"{"a": 1}"#, Some("application/json"), None, None, false).is_ok());
    }

    #[test]
    fn pickle_is_refused_clearly() {
        let err = dumps(&data(json!(1)), Some("pickle")).unwrap_err();
        assert!(err.to_string().contains("cannot be encoded or decoded outside Python"), "{err}");
        let a = Accept::new(["pickle"]).unwrap();
        let err = loads(b"\x80\x04K\x01.", Some(PICKLE_CONTENT_TYPE), Some("binary"), Some(&a), false).unwrap_err();
        assert_eq!(err.name(), "DecodeError");
        assert!(err.to_string().contains("raw body is still available"), "{err}");
        let err = loads(b"\x80\x04K\x01.", Some(PICKLE_CONTENT_TYPE), Some("binary"), Some(&Accept::default_accept()), false).unwrap_err();
        assert_eq!(err.name(), "ContentDisallowed");
    }

    #[test]
    fn unknown_serializer_lists_known() {
        let err = dumps(&data(json!(1)), Some("bson")).unwrap_err();
        assert_eq!(err.name(), "SerializerNotInstalled");
        let s = err.to_string();
        assert!(s.contains("bson") && s.contains("json") && s.contains("msgpack") && s.contains("yaml"), "{s}");
    }

    #[test]
    fn register_and_unregister() {
        register(
            "reverse-test",
            "application/x-reverse-test",
            "utf-8",
            Arc::new(|p| Ok(p.as_str().unwrap_or_default().chars().rev().collect::<String>().into_bytes())),
            Arc::new(|b| Ok(Payload::Text(String::from_utf8_lossy(b).chars().rev().collect()))),
        )
        .unwrap();
        let e = dumps(&Payload::Text("abc".into()), Some("reverse-test")).unwrap();
        assert_eq!(&e.body[..], b"cba");
        let a = Accept::new(["reverse-test"]).unwrap();
        assert_eq!(loads(&e.body, Some(&e.content_type), None, Some(&a), false).unwrap(), Payload::Text("abc".into()));
        unregister("reverse-test").unwrap();
        assert_eq!(unregister("reverse-test").unwrap_err().name(), "SerializerNotInstalled");
    }

    #[test]
    fn spaced_is_the_bytes_of_the_parsed_value_or_leaves_the_text() {
        let spaced = |t: &[u8]| {
            let mut out = Vec::new();
            super::spaced(t, &mut out).map(|()| out)
        };
        let taken = [
            r#"{"id":0,"task":"bench.add","args":[1,2],"kwargs":{}}"#,
            r#"{}"#,
            r#"[]"#,
            r#"[[],{},[[]],{"a":{}}]"#,
            r#"{"a":[{"b":[1,-2,30]},null,true,false]}"#,
            r#""a \\ \" \b\f\n\r\t ~""#,
            r#"{"k\"ey":"v","":""}"#,
            "123456789012345",
            "-123456789012345",
            "0",
            "-7",
            "null",
            r#"[0,10,-1]"#,
        ];
        for text in taken {
            let fast = spaced(text.as_bytes()).unwrap_or_else(|| panic!("{text} taken"));
            assert_eq!(String::from_utf8(fast).unwrap(), std::str::from_utf8(&reparsed(text).unwrap()).unwrap(), "{text}");
        }
        let left = [
            // Other numbers, escapes and characters: written through the parsed value.
            "1234567890123456",
            "-0",
            "[1.5]",
            "[1e5]",
            "[1E5]",
            r#""\u0001""#,
            r#""\/""#,
            "\"caf\u{e9}\"",
            "\"\u{7f}\"",
            "\"a\tb\"",
            "[1, 2]",
            " 1",
            "1 ",
            // Deeper than 32.
            &format!("{}{}", "[".repeat(33), "]".repeat(33)),
            // Not JSON: refused when parsed.
            "",
            "[1,]",
            "[,1]",
            "{\"a\"}",
            "{\"a\":1,}",
            "{\"a\":1}}",
            "{\"a\":1]",
            "[1}",
            "{1:2}",
            "[01]",
            "-",
            "tru",
            "nul",
            "]",
            "\"abc",
            "{,}",
            "[1]x",
            "1 2",
        ];
        for text in left {
            assert_eq!(spaced(text.as_bytes()), None, "{text}");
        }
        assert_eq!(spaced(format!("{}{}", "[".repeat(32), "]".repeat(32)).as_bytes()).map(String::from_utf8), Some(Ok(format!("{}{}", "[".repeat(32), "]".repeat(32)))));
    }

    #[test]
    fn json_from_text_writes_python_style_or_defers() {
        let e = json_from_text(r#"{"id":1,"name":"caf\u00e9 ☕","f":[1.5,1e21,0.1,-0.0]}"#, None).unwrap().unwrap();
        assert_eq!(e.content_type, "application/json");
        assert_eq!(
            std::str::from_utf8(&e.body).unwrap(),
            r#"{"id": 1, "name": "caf\u00e9 \u2615", "f": [1.5, 1e+21, 0.1, -0.0]}"#
        );
        assert_eq!(json_from_text(r#"{"a":1}"#, Some("json")).unwrap().unwrap().body.as_ref(), br#"{"a": 1}"#);
        // Another serializer: the caller parses the text and uses dumps.
        assert!(json_from_text(r#"{"a":1}"#, Some("msgpack")).is_none());
        for bad in [r#"{"a":"#, r#"{"a":1} x"#, "", "[1,]", r#"{"a":1}}"#, "[01]", "{1:2}", "[1}", "tru"] {
            assert_eq!(json_from_text(bad, None).unwrap().unwrap_err().name(), "EncodeError", "{bad:?}");
        }
    }
}
