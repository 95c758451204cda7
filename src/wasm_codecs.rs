//! The npm package's separately loaded codecs module (`kombu-wasm/codecs`; its exports come
//! with the `codec-module` feature, wasm32 only): the yaml and msgpack serializers and the compression methods —
//! zlib/gzip, bzip2, lzma/xz and zstd, brotli when built with it — in a WebAssembly module
//! of their own, so that the core module stays small for everyone who does not need them.
//! `js/codecs.js` loads it and registers each serializer (`registerJsonCodec`) and method
//! (`registerCompression`) with the core, after which producers and consumers use them by
//! name like built-in ones.
//!
//! js/build.sh builds it from this crate without the `facade` feature, so that these are its
//! only exports: the rest of the crate is unreachable from them and link-time optimisation
//! drops it. The codecs are [`crate::compression`]'s; [`methods_array`] also serves the
//! facade's `compressionMethods`.

#[cfg(feature = "codec-module")]
use wasm_bindgen::prelude::*;

use crate::compression;

/// The registered compression methods as JS data: `[[contentType, [alias, ...]], ...]`.
pub fn methods_array() -> js_sys::Array {
    let methods = js_sys::Array::new();
    for (content_type, aliases) in compression::methods() {
        let list = js_sys::Array::new();
        for alias in aliases {
            list.push(&alias.into());
        }
        methods.push(&js_sys::Array::of2(&content_type.into(), &list));
    }
    methods
}

/// The compression methods in this module: `[[contentType, [alias, ...]], ...]`.
#[cfg(feature = "codec-module")]
#[wasm_bindgen]
pub fn methods() -> js_sys::Array {
    methods_array()
}

/// Compress `body` with the method named by `content_type` (or an alias).
#[cfg(feature = "codec-module")]
#[wasm_bindgen]
pub fn compress(content_type: &str, body: &[u8]) -> Result<Vec<u8>, JsError> {
    compression::compress(body, content_type).map(|(out, _)| out).map_err(js_err)
}

/// Decompress `body`, compressed with the method named by `content_type`.
#[cfg(feature = "codec-module")]
#[wasm_bindgen]
pub fn decompress(content_type: &str, body: &[u8]) -> Result<Vec<u8>, JsError> {
    compression::decompress(body, content_type).map_err(js_err)
}

/// The serializers in this module: `[[name, contentType, contentEncoding], ...]`.
#[cfg(feature = "codec-module")]
#[wasm_bindgen]
pub fn serializers() -> js_sys::Array {
    let out = [(cfg!(feature = "yaml"), ["yaml", "application/x-yaml", "utf-8"]), (cfg!(feature = "msgpack"), ["msgpack", "application/x-msgpack", "binary"])];
    out.into_iter().filter(|(built, _)| *built).map(|(_, [n, t, e])| wasm_bindgen::JsValue::from(js_sys::Array::of3(&n.into(), &t.into(), &e.into()))).collect()
}

#[cfg(feature = "codec-module")]
fn js_err(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Serialize a payload given as JSON bytes with the serializer `name` (the bytes Python
/// kombu's yaml/msgpack serializers write for the same data).
#[cfg(feature = "codec-module")]
#[wasm_bindgen(js_name = fromJson)]
#[cfg_attr(not(any(feature = "yaml", feature = "msgpack")), allow(unused_variables))]
pub fn from_json(name: &str, json: &[u8]) -> Result<Vec<u8>, JsError> {
    let value: serde_json::Value = crate::serialization::json_loads(json).map_err(|e| js_err(format!("invalid JSON: {e}")))?;
    match name {
        #[cfg(feature = "yaml")]
        "yaml" => crate::serialization::yaml_dumps(&value).map_err(js_err),
        #[cfg(feature = "msgpack")]
        "msgpack" => crate::serialization::msgpack_dumps(&value).map_err(js_err),
        other => Err(js_err(format!("no serializer {other} in the codecs module"))),
    }
}

/// Deserialize a body of the serializer `name` into JSON bytes.
#[cfg(feature = "codec-module")]
#[wasm_bindgen(js_name = toJson)]
#[cfg_attr(not(any(feature = "yaml", feature = "msgpack")), allow(unused_variables, unreachable_code))]
pub fn to_json(name: &str, body: &[u8]) -> Result<Vec<u8>, JsError> {
    let value: serde_json::Value = match name {
        #[cfg(feature = "yaml")]
        "yaml" => crate::serialization::yaml_loads(body).map_err(js_err)?,
        #[cfg(feature = "msgpack")]
        "msgpack" => crate::serialization::msgpack_loads(body).map_err(js_err)?,
        other => return Err(js_err(format!("no serializer {other} in the codecs module"))),
    };
    let mut out = Vec::new();
    crate::json_print::compact(&mut out, &value);
    Ok(out)
}
