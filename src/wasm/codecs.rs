//! Serializers and compression methods from JavaScript: `registerCompression`,
//! `registerSerializer`, and `registerJsonCodec` (how `kombu-wasm/codecs` plugs its second
//! WebAssembly module in); `compressionMethods` lists what is known.

use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use super::convert::{body_from_js, body_to_js, js_error, kombu, value_error, JsResult};
use crate::error::Error;
use crate::Payload;

/// A JavaScript function kept by the compression or serializer registry, whose entries must
/// be `Send + Sync`: the wasm32 build has one thread and no shared memory, so the function
/// is only ever called on the thread that made it.
struct JsFunction(js_sys::Function);
// SAFETY: wasm32 without the atomics feature is single-threaded (see above).
unsafe impl Send for JsFunction {}
unsafe impl Sync for JsFunction {}

impl JsFunction {
    /// Call with one argument; a throw becomes a message naming the function.
    fn call(&self, what: &str, arg: &JsValue) -> std::result::Result<JsValue, String> {
        self.0.call1(&JsValue::NULL, arg).map_err(|e| {
            let text = e.dyn_ref::<js_sys::Error>().map_or_else(|| format!("{e:?}"), |e| String::from(e.message()));
            format!("the JavaScript {what} function threw: {text}")
        })
    }

    /// Call with bytes; the result must be a `Uint8Array` (or, with `text_ok`, a string:
    /// its UTF-8).
    fn call_bytes(&self, what: &str, arg: &JsValue, text_ok: bool) -> std::result::Result<Vec<u8>, String> {
        let out = self.call(what, arg)?;
        if let Some(a) = out.dyn_ref::<Uint8Array>() {
            return Ok(a.to_vec());
        }
        match out.as_string() {
            Some(s) if text_ok => Ok(s.into_bytes()),
            _ => Err(format!("the JavaScript {what} function must return a Uint8Array{}", if text_ok { " or a string" } else { "" })),
        }
    }

    /// Call with bytes (a `Uint8Array`) for bytes.
    fn bytes(&self, what: &str, b: &[u8]) -> std::result::Result<Vec<u8>, String> {
        self.call_bytes(what, &Uint8Array::from(b).into(), false)
    }
}

/// Register a compression method implemented in JavaScript (Kombu's
/// `kombu.compression.register`): `compress` and `decompress` take a `Uint8Array` and
/// return one. Producers then use it by content type or alias (`compression: "..."`) and
/// consumers decompress bodies whose `compression` header names it.
#[wasm_bindgen(js_name = registerCompression)]
pub fn register_compression(content_type: &str, aliases: Vec<String>, compress: js_sys::Function, decompress: js_sys::Function) -> JsResult<()> {
    if content_type.is_empty() {
        return Err(value_error("registerCompression needs a content type, such as \"application/x-bz2\""));
    }
    let (encode, decode) = (JsFunction(compress), JsFunction(decompress));
    let aliases: Vec<&str> = aliases.iter().map(String::as_str).collect();
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    crate::compression::register(
        content_type,
        &aliases,
        std::sync::Arc::new(move |b: &[u8]| encode.bytes("compress", b).map_err(invalid)),
        std::sync::Arc::new(move |b: &[u8]| decode.bytes("decompress", b).map_err(invalid)),
    );
    Ok(())
}

/// Register a serializer implemented in JavaScript (Kombu's `kombu.serialization.register`):
/// `encode` takes the body (JSON data, a string or a `Uint8Array`) and returns a `Uint8Array`
/// or a string; `decode` takes the bytes and returns the body. Producers then name it
/// (`serializer: name`) and consumers decode its content type when their `accept` allows it.
#[wasm_bindgen(js_name = registerSerializer)]
pub fn register_serializer(name: &str, content_type: &str, content_encoding: &str, encode: js_sys::Function, decode: js_sys::Function) -> JsResult<()> {
    let (encode, decode) = (JsFunction(encode), JsFunction(decode));
    kombu(crate::serialization::register(
        name,
        content_type,
        content_encoding,
        std::sync::Arc::new(move |p: &Payload| {
            let body = body_to_js(p).map_err(|_| Error::Encode("the body cannot be given to JavaScript".into()))?;
            encode.call_bytes("encode", &body, true).map_err(Error::Encode)
        }),
        std::sync::Arc::new(move |b: &[u8]| {
            let out = decode.call("decode", &Uint8Array::from(b).into()).map_err(Error::Decode)?;
            body_from_js(&out).map_err(|_| Error::Decode("the JavaScript decode function must return JSON data, a string or a Uint8Array".into()))
        }),
    ))
}

/// Register a serializer that a second WebAssembly module implements over JSON (used by
/// `kombu-wasm/codecs` for yaml and msgpack): `fromJson` turns the payload as JSON bytes into
/// the body, `toJson` turns a body into JSON bytes. No JavaScript values are built on the
/// way, so key order and integer/float types survive as with the built-in serializers.
#[wasm_bindgen(js_name = registerJsonCodec)]
pub fn register_json_codec(name: &str, content_type: &str, content_encoding: &str, from_json: js_sys::Function, to_json: js_sys::Function) -> JsResult<()> {
    let (encode, decode) = (JsFunction(from_json), JsFunction(to_json));
    kombu(crate::serialization::register(
        name,
        content_type,
        content_encoding,
        std::sync::Arc::new(move |p: &Payload| {
            let json = crate::serialization::json_bytes(p)?;
            encode.bytes("fromJson", &json).map_err(Error::Encode)
        }),
        std::sync::Arc::new(move |b: &[u8]| {
            let json = decode.bytes("toJson", b).map_err(Error::Decode)?;
            crate::serialization::json_loads(&json).map(Payload::Data).map_err(|e| Error::Decode(format!("toJson returned invalid JSON: {e}")))
        }),
    ))
}

/// The compression methods this module knows: `[[contentType, [alias, ...]], ...]`.
#[wasm_bindgen(js_name = compressionMethods)]
pub fn compression_methods() -> Array {
    crate::wasm_codecs::methods_array()
}

/// Serialize `body` (Kombu's `dumps`): `[contentType, contentEncoding, bytes]`. With `json`,
/// `body` is JSON text (what lib.js made of structured data); else a string or bytes.
#[wasm_bindgen]
pub fn dumps(body: JsValue, json: bool, serializer: Option<String>) -> JsResult<Array> {
    let payload = match (json, body.as_string()) {
        (true, Some(text)) => Payload::Data(crate::serialization::json_loads(text.as_bytes()).map_err(|e| js_error(&Error::Encode(format!("the body is not JSON: {e}"))))?),
        _ => body_from_js(&body)?,
    };
    let e = kombu(crate::serialization::dumps(&payload, serializer.as_deref()))?;
    Ok(Array::of3(&JsValue::from_str(&e.content_type), &JsValue::from_str(&e.content_encoding), &Uint8Array::from(&e.body[..])))
}

/// Deserialize bytes (Kombu's `loads`), checking `accept` (names or content types) unless
/// `force`.
#[wasm_bindgen]
pub fn loads(data: &[u8], content_type: Option<String>, content_encoding: Option<String>, accept: Option<Vec<String>>, force: bool) -> JsResult<JsValue> {
    let accept = match accept {
        Some(a) => Some(kombu(crate::serialization::Accept::new(&a))?),
        None => None,
    };
    body_to_js(&kombu(crate::serialization::loads(data, content_type.as_deref(), content_encoding.as_deref(), accept.as_ref(), force))?)
}

/// Remove a serializer (Kombu's `registry.unregister`).
#[wasm_bindgen]
pub fn unregister(name: &str) -> JsResult<()> {
    kombu(crate::serialization::unregister(name))
}

/// Allow decoding these serializers without an accept list (Kombu's
/// `enable_insecure_serializers`); `disable` refuses all but them (Kombu's
/// `disable_insecure_serializers`).
#[wasm_bindgen(js_name = insecureSerializers)]
pub fn insecure_serializers(choices: Vec<String>, disable: bool) -> JsResult<()> {
    kombu(if disable { crate::serialization::disable_insecure_serializers(&choices) } else { crate::serialization::enable_insecure_serializers(&choices) })
}
