//! The gateway protocol decoder on arbitrary bytes: client frames as the server reads them,
//! server frames as a client reads them. Decoding never panics; what decodes re-encodes and
//! decodes to the same header.
#![no_main]

use bytes::Bytes;
use kombu::gateway::{decode, encode, ClientHeader, ServerFrame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let frame = Bytes::copy_from_slice(data);
    if let Ok((header, body)) = decode::<ClientHeader>(&frame) {
        let again = encode(&header, &body);
        let (h2, b2) = decode::<ClientHeader>(&again).expect("a decoded client frame re-encodes");
        assert_eq!(serde_json::to_value(&header).ok(), serde_json::to_value(&h2).ok());
        assert_eq!(body, b2);
    }
    if let Ok((header, body)) = decode::<ServerFrame>(&frame) {
        let again = encode(&header, &body);
        decode::<ServerFrame>(&again).expect("a decoded server frame re-encodes");
    }
});
