//! `kombu-gateway`: serve the gateway protocol, the playground and metrics.

use clap::Parser;
use kombu_gateway::config::Args;
use kombu_gateway::server;

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    if args.log_format() == "json" {
        tracing_subscriber::fmt().with_env_filter(filter).json().init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    kombu_gateway::register_transports();
    let (cfg, embedded) = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("kombu-gateway: {e}");
            std::process::exit(2);
        }
    };
    if let Some(dir) = &embedded.data_dir {
        if let Err(e) = kombu_gateway::store::attach(dir) {
            eprintln!("kombu-gateway: {e}");
            std::process::exit(1);
        }
    }
    // After recovery, which restores whatever was kept whatever the limits.
    kombu::transport::memory::MemoryBroker::global().with(|b| b.set_limits(embedded.limits));
    let tls = cfg.tls.is_some();
    let running = match server::start(cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kombu-gateway: {e}");
            std::process::exit(1);
        }
    };
    let (http, ws) = if tls { ("https", "wss") } else { ("http", "ws") };
    println!("kombu-gateway {} listening on {http}://{}/ (gateway: {ws}://{}/gateway)", env!("CARGO_PKG_VERSION"), running.addr, running.addr);
    let stop = async {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("signal handler");
            tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
    };
    stop.await;
    tracing::info!("shutting down: closing client connections (unacked deliveries return to the broker)");
    running.shutdown().await;
    if embedded.data_dir.is_some() {
        kombu_gateway::store::flush(std::time::Duration::from_secs(5));
    }
}
