//! `kombu-gateway`: the native server (being built; see docs/gateway-protocol.md).

fn main() {
    println!("kombu-gateway {}", env!("CARGO_PKG_VERSION"));
}
