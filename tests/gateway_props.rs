//! The gateway frame decoder never panics, on random bytes or on mutations of valid frames,
//! and valid frames round-trip. (A property test stands in for a fuzzer: it runs in every
//! test run.)
#![cfg(not(target_arch = "wasm32"))]

use bytes::Bytes;
use kombu::proto::gateway::{decode, decode_server, encode, ClientHeader, Request};
use kombu::proto::methods::{BasicPublish, QueueDeclare};
use kombu::Properties;
use proptest::prelude::*;

fn valid_frames() -> Vec<Bytes> {
    vec![
        encode(&ClientHeader { id: 1, request: Request::Hello { vhost: Some("/".into()), token: None, client: None, heartbeat: None } }, b""),
        encode(&ClientHeader { id: 2, request: Request::QueueDeclare { channel: 1, method: QueueDeclare { queue: "q".into(), ..Default::default() } } }, b""),
        encode(
            &ClientHeader { id: 3, request: Request::BasicPublish { channel: 1, method: BasicPublish { routing_key: "k".into(), ..Default::default() }, properties: Properties::default() } },
            b"{\"a\": 1}",
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let b = Bytes::from(data);
        let _ = decode::<ClientHeader>(&b);
        let _ = decode_server(&b);
    }

    #[test]
    fn mutated_frames_never_panic(which in 0usize..3, flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let mut f = valid_frames()[which].to_vec();
        for (i, v) in flips {
            let n = f.len();
            f[i % n] = v;
        }
        let len = f.len();
        f.truncate(cut % (len + 1));
        let f = Bytes::from(f);
        let _ = decode::<ClientHeader>(&f);
        let _ = decode_server(&f);
    }

    #[test]
    fn publish_frames_round_trip(id in any::<u64>(), rk in ".{0,40}", body in prop::collection::vec(any::<u8>(), 0..500)) {
        let h = ClientHeader { id, request: Request::BasicPublish { channel: 7, method: BasicPublish { routing_key: rk, ..Default::default() }, properties: Properties::default() } };
        let (back, b): (ClientHeader, Bytes) = decode(&encode(&h, &body)).unwrap();
        prop_assert_eq!(back, h);
        prop_assert_eq!(&b[..], &body[..]);
    }
}
