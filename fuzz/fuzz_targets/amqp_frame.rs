//! The AMQP 0-9-1 frame decoder on arbitrary bytes, as the client reads a broker's stream:
//! frames are taken from the front of the buffer until it is incomplete or malformed. It
//! never panics, never reads past the buffer and always makes progress.
#![no_main]

use kombu::proto::amqp::read_frame;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((_frame, n))) = read_frame(rest, 131_072) {
        assert!(n > 0 && n <= rest.len(), "read_frame consumed {n} of {} bytes", rest.len());
        rest = &rest[n..];
    }
});
