//! The gateway's counters, exposed at `/metrics` in Prometheus' text format.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Counters exposed at `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub(crate) connections: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) channels: AtomicU64,
    pub(crate) consumers: AtomicU64,
    pub(crate) published: AtomicU64,
    pub(crate) published_bytes: AtomicU64,
    pub(crate) delivered: AtomicU64,
    pub(crate) acked: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    /// TCP connections open (HTTP, WebSocket and those in a TLS handshake).
    pub(crate) tcp_connections: AtomicU64,
    /// TCP connections refused by `--max-connections` or `--max-connections-per-address`.
    pub(crate) refused_connections: AtomicU64,
    /// Client connections closed by a timeout (hello, idle) or the ping limit.
    pub(crate) timed_out: AtomicU64,
    requests: AtomicU64,
    /// Request latency histogram buckets (seconds): counts of requests at or below each.
    latency: [AtomicU64; 8],
    latency_sum_us: AtomicU64,
}

const BUCKETS: [f64; 8] = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 1.0];

impl Metrics {
    pub(crate) fn observe(&self, started: Instant) {
        let s = started.elapsed().as_secs_f64();
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add((s * 1e6) as u64, Ordering::Relaxed);
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.latency[i].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut s = String::new();
        for (name, help, kind, v) in [
            ("kombu_gateway_connections", "Open client connections.", "gauge", g(&self.connections)),
            ("kombu_gateway_connections_total", "Client connections accepted.", "counter", g(&self.connections_total)),
            ("kombu_gateway_channels", "Open channels.", "gauge", g(&self.channels)),
            ("kombu_gateway_consumers", "Active consumers.", "gauge", g(&self.consumers)),
            ("kombu_gateway_published_total", "Messages published.", "counter", g(&self.published)),
            ("kombu_gateway_published_bytes_total", "Body bytes published.", "counter", g(&self.published_bytes)),
            ("kombu_gateway_delivered_total", "Messages delivered to clients.", "counter", g(&self.delivered)),
            ("kombu_gateway_acked_total", "Acknowledgements received (an ack with multiple counts once).", "counter", g(&self.acked)),
            ("kombu_gateway_rejected_total", "Rejections and nacks.", "counter", g(&self.rejected)),
            ("kombu_gateway_errors_total", "Requests that failed.", "counter", g(&self.errors)),
            ("kombu_gateway_protocol_errors_total", "Malformed frames (the connection is closed).", "counter", g(&self.protocol_errors)),
            ("kombu_gateway_tcp_connections", "Open TCP connections (HTTP, WebSocket, TLS handshakes).", "gauge", g(&self.tcp_connections)),
            ("kombu_gateway_refused_connections_total", "TCP connections refused by --max-connections or --max-connections-per-address.", "counter", g(&self.refused_connections)),
            ("kombu_gateway_timed_out_total", "Client connections closed by the hello or idle timeout or the ping limit.", "counter", g(&self.timed_out)),
        ] {
            s.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"));
        }
        s.push_str("# HELP kombu_gateway_request_seconds Request latency.\n# TYPE kombu_gateway_request_seconds histogram\n");
        for (i, b) in BUCKETS.iter().enumerate() {
            s.push_str(&format!("kombu_gateway_request_seconds_bucket{{le=\"{b}\"}} {}\n", g(&self.latency[i])));
        }
        s.push_str(&format!("kombu_gateway_request_seconds_bucket{{le=\"+Inf\"}} {}\n", g(&self.requests)));
        s.push_str(&format!("kombu_gateway_request_seconds_sum {}\n", g(&self.latency_sum_us) as f64 / 1e6));
        s.push_str(&format!("kombu_gateway_request_seconds_count {}\n", g(&self.requests)));
        s
    }
}
