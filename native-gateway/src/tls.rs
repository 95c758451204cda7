//! TLS (rustls, ring provider) for the native transports and the gateway server.
//!
//! Clients (`amqps://`, `gateway+wss://`) trust the Mozilla roots (webpki-roots) plus the
//! PEM file named by the `ssl_ca_certs` transport option, and present a client certificate
//! when `ssl_certfile` and `ssl_keyfile` are given — the option names of Python kombu's
//! `ssl` settings (`?ssl_ca_certs=/path/ca.pem` in the URL, or `transport_options`). The
//! server name checked is the URL's host name (`ssl_server_hostname` overrides it).
//! The gateway serves TLS when given a certificate chain and a private key (PEM).

use std::path::Path;
use std::sync::Arc;

use kombu::transport::ConnectInfo;
use kombu::{Error, Result, Value};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// A byte stream a transport runs on: plain TCP or TLS over it.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Stream for T {}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn option<'a>(info: &'a ConnectInfo, name: &str) -> Option<&'a str> {
    info.options.get(name).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn certs(path: &str, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| Error::Value(format!("{what} {path}: cannot read PEM certificates: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Value(format!("{what} {path}: no certificate in the file")));
    }
    Ok(certs)
}

fn key(path: &str, what: &str) -> Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| Error::Value(format!("{what} {path}: cannot read a PEM private key: {e}")))
}

/// The rustls client configuration for `info` (its `ssl_*` options).
pub fn client_config(info: &ConnectInfo) -> Result<Arc<rustls::ClientConfig>> {
    if let Some(reqs) = option(info, "ssl_cert_reqs") {
        if !matches!(reqs.to_ascii_lowercase().as_str(), "required" | "cert_required") {
            return Err(Error::NotImplemented(format!(
                "ssl_cert_reqs={reqs}: this client always verifies the server's certificate; give its CA with ssl_ca_certs"
            )));
        }
    }
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(ca) = option(info, "ssl_ca_certs") {
        for c in certs(ca, "ssl_ca_certs")? {
            roots.add(c).map_err(|e| Error::Value(format!("ssl_ca_certs {ca}: {e}")))?;
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Value(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let config = match (option(info, "ssl_certfile"), option(info, "ssl_keyfile")) {
        (Some(cert), Some(k)) => builder
            .with_client_auth_cert(certs(cert, "ssl_certfile")?, key(k, "ssl_keyfile")?)
            .map_err(|e| Error::Value(format!("ssl_certfile/ssl_keyfile: {e}")))?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err(Error::Value("ssl_certfile and ssl_keyfile go together".into())),
    };
    Ok(Arc::new(config))
}

/// Open a TCP connection to `info`'s host and port, with TLS when `tls` is set.
pub async fn connect(info: &ConnectInfo, port: u16, tls: bool) -> Result<Box<dyn Stream>> {
    let addr = format!("{}:{port}", info.hostname);
    let tcp = TcpStream::connect(&addr).await.map_err(|e| Error::RecoverableConnection(format!("cannot connect to {addr}: {e}")))?;
    let _ = tcp.set_nodelay(true);
    if !tls {
        return Ok(Box::new(tcp));
    }
    let config = client_config(info)?;
    let host = option(info, "ssl_server_hostname").unwrap_or(&info.hostname).to_owned();
    let name = ServerName::try_from(host.clone()).map_err(|e| Error::Value(format!("TLS server name {host:?}: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| Error::RecoverableConnection(format!("TLS handshake with {addr} failed: {e}")))?;
    Ok(Box::new(stream))
}

/// The rustls server configuration from a PEM certificate chain and private key.
pub fn server_config(cert: &Path, key_file: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let chain = certs(&cert.display().to_string(), "TLS certificate")?;
    let key = key(&key_file.display().to_string(), "TLS key")?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Value(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| Error::Value(format!("TLS certificate {} and key {}: {e}", cert.display(), key_file.display())))?;
    Ok(Arc::new(config))
}
