//! The gateway protocol decoder on arbitrary bytes (one frame or a batch): client frames as the server reads them,
//! server frames as a client reads them. Decoding never panics; what decodes re-encodes and
//! decodes to the same header.
#![no_main]

use bytes::Bytes;
use kombu::proto::gateway::{decode, decode_server, encode, encode_batch, split_batch, ClientHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let message = Bytes::copy_from_slice(data);
    // A message is one frame or a batch; a batch splits into frames that re-batch identically.
    let Ok(frames) = split_batch(&message) else { return };
    if frames.len() > 1 || message.starts_with(&[0xFF; 4]) {
        assert_eq!(split_batch(&encode_batch(&frames)).expect("a split batch re-encodes"), frames);
    }
    for frame in frames {
        check(frame);
    }
});

fn check(frame: Bytes) {
    if let Ok((header, body)) = decode::<ClientHeader>(&frame) {
        let again = encode(&header, &body);
        let (h2, b2) = decode::<ClientHeader>(&again).expect("a decoded client frame re-encodes");
        assert_eq!(header, h2);
        assert_eq!(body, b2);
    }
    if let Ok((header, body)) = decode_server(&frame) {
        let again = encode(&header, &body);
        assert_eq!(decode_server(&again).expect("a decoded server frame re-encodes"), (header, body));
    }
}
