//! The npm package's separately loaded codecs module (`kombu-wasm/codecs`, wasm32 with the
//! `codec-module` feature): the compression methods beyond zlib — bzip2, lzma/xz and zstd,
//! brotli when built with it — in a WebAssembly module of their own, so that the core
//! module stays small for everyone who does not need them. `js/codecs.js` loads it and
//! registers each method with the core (`registerCompression`), after which producers and
//! consumers use them by name like the built-in ones.
//!
//! Built from this crate, with only these exports (the facade, [`crate::wasm`], is left out):
//! the rest of the crate is unreachable from them and link-time optimisation drops it. The
//! codecs are [`crate::compression`]'s.

#[cfg(feature = "codec-module")]
use wasm_bindgen::prelude::*;

use crate::compression;

/// The registered compression methods as JS data: `[[contentType, [alias, ...]], ...]`.
pub fn methods_array() -> js_sys::Array {
    compression::methods()
        .into_iter()
        .map(|(content_type, aliases)| {
            let aliases: js_sys::Array = aliases.into_iter().map(wasm_bindgen::JsValue::from).collect();
            wasm_bindgen::JsValue::from(js_sys::Array::of2(&content_type.into(), &aliases))
        })
        .collect()
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
    compression::compress(body, content_type).map(|(out, _)| out).map_err(|e| JsError::new(&e.to_string()))
}

/// Decompress `body`, compressed with the method named by `content_type`.
#[cfg(feature = "codec-module")]
#[wasm_bindgen]
pub fn decompress(content_type: &str, body: &[u8]) -> Result<Vec<u8>, JsError> {
    compression::decompress(body, content_type).map_err(|e| JsError::new(&e.to_string()))
}
