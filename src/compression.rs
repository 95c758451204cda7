//! Compression (Kombu's `kombu.compression`): a registry of compressors by content type and
//! alias. The producer writes the content type into the `compression` header; the receiver
//! decompresses by it.
//!
//! | content type | aliases | codec |
//! | --- | --- | --- |
//! | `application/x-gzip` | `zlib`, `gzip` | zlib stream (Python's `zlib.compress`; the "gzip" name is Kombu's) |
//! | `application/x-bz2` | `bzip2`, `bzip` | bzip2 |
//! | `application/x-lzma` | `lzma`, `xz` | xz container (Python's `lzma.compress`) |
//! | `application/x-brotli` | `brotli` | brotli |
//! | `application/zstd` | `zstd`, `zstandard` | zstandard frame |
//!
//! All codecs are pure Rust and work in wasm32.

use crate::namemap::NameMap;
use std::io::Read;
#[cfg(any(feature = "zlib", feature = "bzip2", feature = "lzma", feature = "brotli"))]
use std::io::Write;
use std::sync::{Arc, OnceLock, RwLock};

use crate::error::{Error, Result};

/// Compresses bytes.
pub type CompressFn = Arc<dyn Fn(&[u8]) -> std::io::Result<Vec<u8>> + Send + Sync>;
/// Decompresses bytes.
pub type DecompressFn = Arc<dyn Fn(&[u8]) -> std::io::Result<Vec<u8>> + Send + Sync>;

#[derive(Clone)]
struct Method {
    encode: CompressFn,
    decode: DecompressFn,
}

#[derive(Default)]
struct Registry {
    by_type: NameMap<Method>,
    aliases: NameMap<String>,
}

impl Registry {
    fn resolve<'a>(&'a self, name: &'a str) -> &'a str {
        self.aliases.get(name).map_or(name, String::as_str)
    }

    fn known(&self) -> String {
        // &str, not String: one join instantiation in the wasm modules (serialization's is &str).
        let mut v: Vec<&str> = Vec::new();
        for k in self.aliases.keys().chain(self.by_type.keys()) {
            v.push(k);
        }
        let mut known = if v.is_empty() { "none".to_owned() } else { v.join(", ") };
        // The npm package's core module has none built in: they come with its codecs module.
        if cfg!(target_arch = "wasm32") && !self.by_type.contains_key("application/zstd") {
            known.push_str(r#"; import "kombu-wasm/codecs" to add zlib/gzip, bzip2, lzma/xz and zstd, or "kombu-wasm/zlib" for zlib/gzip alone"#);
        }
        known
    }
}

fn registry() -> &'static RwLock<Registry> {
    static R: OnceLock<RwLock<Registry>> = OnceLock::new();
    R.get_or_init(|| {
        let mut r = Registry::default();
        // Unused when every codec feature is off (the npm package's core module).
        #[allow(unused_mut, unused_variables)]
        let mut add = |t: &str, aliases: &[&str], encode: CompressFn, decode: DecompressFn| {
            r.by_type.insert(t.into(), Method { encode, decode });
            for a in aliases {
                r.aliases.insert((*a).into(), t.into());
            }
        };
        #[cfg(feature = "zlib")]
        add(
            "application/x-gzip",
            &["zlib", "gzip"],
            Arc::new(|b| {
                let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(b)?;
                e.finish()
            }),
            Arc::new(|b| read_all(flate2::read::ZlibDecoder::new(b))),
        );
        #[cfg(feature = "bzip2")]
        add(
            "application/x-bz2",
            &["bzip2", "bzip"],
            Arc::new(|b| {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
                e.write_all(b)?;
                e.finish()
            }),
            Arc::new(|b| read_all(bzip2::read::MultiBzDecoder::new(b))),
        );
        #[cfg(feature = "lzma")]
        add(
            "application/x-lzma",
            &["lzma", "xz"],
            Arc::new(|b| {
                if b.is_empty() {
                    // lzma-rust2 0.15 writes an index for zero blocks that its own reader
                    // rejects; this is the stream Python's lzma.compress(b"") produces.
                    return Ok(EMPTY_XZ.to_vec());
                }
                let mut w = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(6))?;
                w.write_all(b)?;
                w.finish()
            }),
            Arc::new(|b| read_all(lzma_rust2::XzReader::new(b, true))),
        );
        #[cfg(feature = "brotli")]
        add(
            "application/x-brotli",
            &["brotli"],
            Arc::new(|b| {
                let mut out = Vec::new();
                {
                    let mut w = brotli::CompressorWriter::new(&mut out, 4096, 11, 22);
                    w.write_all(b)?;
                }
                Ok(out)
            }),
            Arc::new(|b| read_all(brotli::Decompressor::new(b, 4096))),
        );
        #[cfg(feature = "zstd")]
        add(
            "application/zstd",
            &["zstd", "zstandard"],
            Arc::new(|b| Ok(ruzstd::encoding::compress_to_vec(b, ruzstd::encoding::CompressionLevel::Fastest))),
            Arc::new(|b| {
                let mut d = ruzstd::decoding::StreamingDecoder::new(b)
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
                let mut out = Vec::new();
                d.read_to_end(&mut out)?;
                Ok(out)
            }),
        );
        RwLock::new(r)
    })
}

#[cfg(feature = "lzma")]
/// An xz stream with no blocks (CRC64 check), as Python's `lzma.compress(b"")` writes it.
const EMPTY_XZ: [u8; 32] = [
    253, 55, 122, 88, 90, 0, 0, 4, 230, 214, 180, 70, 0, 0, 0, 0, 28, 223, 68, 33, 31, 182, 243, 125, 1, 0, 0, 0, 0, 4,
    89, 90,
];

#[cfg_attr(not(any(feature = "zlib", feature = "bzip2", feature = "lzma", feature = "brotli")), allow(dead_code))]
fn read_all(mut r: impl Read) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

/// Register a compression method under a content type with aliases (Kombu's `register`).
pub fn register(content_type: &str, aliases: &[&str], encode: CompressFn, decode: DecompressFn) {
    let mut r = crate::rt::write(registry());
    r.by_type.insert(content_type.into(), Method { encode, decode });
    for a in aliases {
        r.aliases.insert((*a).into(), content_type.into());
    }
}

/// The registered methods: each content type with its aliases.
pub fn methods() -> Vec<(String, Vec<String>)> {
    let r = crate::rt::read(registry());
    let mut methods = Vec::new();
    for t in r.by_type.keys() {
        let mut aliases = Vec::new();
        for (alias, to) in r.aliases.iter() {
            if to == t {
                aliases.push(alias.clone());
            }
        }
        methods.push((t.clone(), aliases));
    }
    methods
}

/// The aliases and content types that can be used (Kombu's `encoders()`).
pub fn encoders() -> Vec<String> {
    let r = crate::rt::read(registry());
    r.aliases.keys().chain(r.by_type.keys()).cloned().collect()
}

/// The content type an alias or content type stands for.
pub fn content_type_of(method: &str) -> Result<String> {
    let r = crate::rt::read(registry());
    let t = r.resolve(method);
    if r.by_type.contains_key(t) {
        Ok(t.to_owned())
    } else {
        Err(Error::CompressionNotInstalled { name: method.into(), known: r.known() })
    }
}

fn method(name: &str) -> Result<(String, Method)> {
    let r = crate::rt::read(registry());
    let t = r.resolve(name);
    match r.by_type.get(t) {
        Some(m) => Ok((t.to_owned(), m.clone())),
        None => Err(Error::CompressionNotInstalled { name: name.into(), known: r.known() }),
    }
}

/// Compress `body` with `method` (alias or content type); returns the bytes and the content
/// type for the `compression` header.
pub fn compress(body: &[u8], method_name: &str) -> Result<(Vec<u8>, String)> {
    let (t, m) = method(method_name)?;
    let out = (m.encode)(body).map_err(|e| Error::Encode(format!("compressing with {method_name} ({t}) failed: {e}")))?;
    Ok((out, t))
}

/// Decompress `body` compressed with `content_type` (as found in the `compression` header;
/// aliases work too).
pub fn decompress(body: &[u8], content_type: &str) -> Result<Vec<u8>> {
    let (t, m) = method(content_type)?;
    (m.decode)(body).map_err(|e| Error::Decode(format!("the body is not valid {t} data: {e}")))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    const ALL: &[(&str, &str)] = &[
        ("zlib", "application/x-gzip"),
        ("gzip", "application/x-gzip"),
        ("bzip2", "application/x-bz2"),
        ("bzip", "application/x-bz2"),
        ("lzma", "application/x-lzma"),
        ("xz", "application/x-lzma"),
        ("brotli", "application/x-brotli"),
        ("zstd", "application/zstd"),
        ("zstandard", "application/zstd"),
    ];

    #[test]
    fn every_method_round_trips() {
        let body: Vec<u8> = (0..5000u32).flat_map(|i| format!("line {i} of the log\n").into_bytes()).collect();
        for (alias, ct) in ALL {
            let (c, t) = compress(&body, alias).unwrap();
            assert_eq!(t, *ct, "{alias}");
            assert!(c.len() < body.len(), "{alias} did not compress");
            assert_eq!(decompress(&c, &t).unwrap(), body, "{alias}");
            assert_eq!(decompress(&c, alias).unwrap(), body, "{alias} by alias");
            assert_eq!(decompress(&compress(b"", alias).unwrap().0, ct).unwrap(), b"", "{alias} empty");
        }
    }

    #[test]
    fn known_python_streams_decode() {
        // zlib.compress(b"\x00\x01") from Python kombu 5.7 ("eJxjYAQAAAMAAg==").
        assert_eq!(decompress(&[0x78, 0x9c, 0x63, 0x60, 0x04, 0x00, 0x00, 0x03, 0x00, 0x02], "application/x-gzip").unwrap(), b"\x00\x01");
    }

    #[test]
    fn unknown_and_corrupt() {
        let e = compress(b"x", "snappy").unwrap_err();
        assert_eq!(e.name(), "CompressionNotInstalled");
        assert!(e.to_string().contains("zstd") && e.to_string().contains("bzip2"), "{e}");
        assert!(e.to_string().contains(", zstd, application/x-brotli, "), "{e}");
        for (alias, _) in ALL {
            let e = decompress(b"definitely not compressed", alias).unwrap_err();
            assert_eq!(e.name(), "DecodeError", "{alias}");
        }
        assert!(content_type_of("xz").unwrap() == "application/x-lzma");
        assert!(encoders().contains(&"gzip".to_string()));
    }
}
