//! Authentication and permissions (static token file), in the style of RabbitMQ: each identity
//! has a token, the virtual hosts it may open, and `configure`/`write`/`read` regular
//! expressions matched against exchange and queue names.
//!
//! ```toml
//! [[identity]]
//! name = "web"
//! token = "s3cret"
//! vhosts = ["/"]
//! configure = "^(web\\..*|amq\\.gen-.*)$"   # declare/delete
//! write = ".*"                               # publish to an exchange; bind a queue (destination)
//! read = ".*"                                # consume/get/purge a queue; bind from an exchange
//! max_connections = 10
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kombu::gateway::Request;
use kombu::{Error, ReplyCode};
use regex_lite::Regex;
use serde::Deserialize;

use crate::GatewayError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityFile {
    name: String,
    token: String,
    #[serde(default = "all_vhosts")]
    vhosts: Vec<String>,
    #[serde(default = "everything")]
    configure: String,
    #[serde(default = "everything")]
    write: String,
    #[serde(default = "everything")]
    read: String,
    #[serde(default)]
    max_connections: Option<usize>,
}

fn all_vhosts() -> Vec<String> {
    vec!["*".into()]
}

fn everything() -> String {
    ".*".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    #[serde(default)]
    identity: Vec<IdentityFile>,
}

/// One identity and its permissions.
#[derive(Debug)]
pub struct Identity {
    /// Name (for logs and errors).
    pub name: String,
    vhosts: Vec<String>,
    configure: Regex,
    write: Regex,
    read: Regex,
    max_connections: Option<usize>,
    connections: AtomicUsize,
}

/// The identities of a token file.
#[derive(Debug, Default)]
pub struct Auth {
    by_token: HashMap<String, Arc<Identity>>,
}

fn anchored(pattern: &str, what: &str, name: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("identity {name:?}: invalid {what} pattern {pattern:?}: {e}"))
}

impl Auth {
    /// Read a token file.
    pub fn load(path: &Path) -> Result<Auth, GatewayError> {
        let text = std::fs::read_to_string(path).map_err(|e| GatewayError::Config(path.display().to_string(), e.to_string()))?;
        Self::parse(&text).map_err(|e| GatewayError::Config(path.display().to_string(), e))
    }

    /// Parse a token file's text.
    pub fn parse(text: &str) -> Result<Auth, String> {
        let f: TokenFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut by_token = HashMap::new();
        for i in f.identity {
            if i.token.len() < 8 {
                return Err(format!("identity {:?}: the token must have at least 8 characters", i.name));
            }
            let id = Identity {
                configure: anchored(&i.configure, "configure", &i.name)?,
                write: anchored(&i.write, "write", &i.name)?,
                read: anchored(&i.read, "read", &i.name)?,
                vhosts: i.vhosts,
                max_connections: i.max_connections,
                connections: AtomicUsize::new(0),
                name: i.name,
            };
            if by_token.insert(i.token, Arc::new(id)).is_some() {
                return Err("two identities share a token".into());
            }
        }
        Ok(Auth { by_token })
    }

    /// The identity of `token` allowed on `vhost`, holding one of its connection slots until
    /// the returned guard drops.
    pub fn admit(&self, token: Option<&str>, vhost: &str) -> Result<Admitted, (u16, String)> {
        let Some(token) = token else {
            return Err((401, "this gateway requires a token: pass it in the URL (?token=...) or as the password".into()));
        };
        let Some(id) = self.by_token.get(token) else {
            return Err((401, "unknown token".into()));
        };
        if !id.vhosts.iter().any(|v| v == "*" || v == vhost) {
            return Err((403, format!("ACCESS_REFUSED - identity '{}' may not open virtual host '{vhost}'", id.name)));
        }
        let n = id.connections.fetch_add(1, Ordering::SeqCst) + 1;
        if id.max_connections.is_some_and(|m| n > m) {
            id.connections.fetch_sub(1, Ordering::SeqCst);
            return Err((429, format!("identity '{}' already has its maximum of {} connections", id.name, id.max_connections.unwrap_or(0))));
        }
        Ok(Admitted(id.clone()))
    }
}

/// An admitted identity; its connection slot is freed on drop.
#[derive(Debug)]
pub struct Admitted(pub Arc<Identity>);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

fn refuse(id: &Identity, perm: &str, kind: &str, name: &str) -> Error {
    Error::channel(ReplyCode::AccessRefused, format!("ACCESS_REFUSED - {perm} access to {kind} '{name}' refused for identity '{}'", id.name))
}

impl Identity {
    fn check(&self, re: &Regex, perm: &str, kind: &str, name: &str) -> Result<(), Error> {
        // The default exchange is always writable and readable, as in RabbitMQ.
        if kind == "exchange" && name.is_empty() && perm != "configure" {
            return Ok(());
        }
        if re.is_match(name) {
            Ok(())
        } else {
            Err(refuse(self, perm, kind, name))
        }
    }

    /// Whether this identity may perform `request` (RabbitMQ's permission model).
    pub fn authorize(&self, request: &Request) -> Result<(), Error> {
        match request {
            Request::ExchangeDeclare { method, .. } if !method.passive => self.check(&self.configure, "configure", "exchange", &method.exchange),
            Request::ExchangeDelete { method, .. } => self.check(&self.configure, "configure", "exchange", &method.exchange),
            Request::QueueDeclare { method, .. } if !method.passive && !method.queue.is_empty() => self.check(&self.configure, "configure", "queue", &method.queue),
            Request::QueueDelete { method, .. } => self.check(&self.configure, "configure", "queue", &method.queue),
            Request::QueueBind { method, .. } | Request::QueueUnbind { method, .. } => {
                self.check(&self.write, "write", "queue", &method.queue)?;
                self.check(&self.read, "read", "exchange", &method.exchange)
            }
            Request::ExchangeBind { method, .. } | Request::ExchangeUnbind { method, .. } => {
                self.check(&self.write, "write", "exchange", &method.destination)?;
                self.check(&self.read, "read", "exchange", &method.source)
            }
            Request::BasicPublish { method, .. } => self.check(&self.write, "write", "exchange", &method.exchange),
            Request::BasicConsume { method, .. } => self.check(&self.read, "read", "queue", &method.queue),
            Request::BasicGet { queue, .. } | Request::QueuePurge { queue, .. } => self.check(&self.read, "read", "queue", queue),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use kombu::spec::{BasicPublish, QueueDeclare};

    use super::*;

    const FILE: &str = r#"
[[identity]]
name = "web"
token = "web-token-123"
vhosts = ["/"]
configure = "web\\..*"
write = "web\\..*"
read = "web\\..*"
max_connections = 1
"#;

    #[test]
    fn tokens_vhosts_and_limits() {
        let a = Auth::parse(FILE).unwrap();
        assert_eq!(a.admit(None, "/").unwrap_err().0, 401);
        assert_eq!(a.admit(Some("nope"), "/").unwrap_err().0, 401);
        assert_eq!(a.admit(Some("web-token-123"), "/other").unwrap_err().0, 403);
        let first = a.admit(Some("web-token-123"), "/").unwrap();
        assert_eq!(a.admit(Some("web-token-123"), "/").unwrap_err().0, 429);
        drop(first);
        assert!(a.admit(Some("web-token-123"), "/").is_ok());
        assert!(Auth::parse("[[identity]]\nname='x'\ntoken='short'").unwrap_err().contains("8 characters"));
        assert!(Auth::parse("[[identity]]\nname='x'\ntoken='long-enough'\nread='('").unwrap_err().contains("invalid read pattern"));
    }

    #[test]
    fn permissions_follow_rabbitmq() {
        let a = Auth::parse(FILE).unwrap();
        let id = a.admit(Some("web-token-123"), "/").unwrap();
        let declare = |q: &str| Request::QueueDeclare { channel: 1, method: QueueDeclare { queue: q.into(), ..Default::default() } };
        assert!(id.0.authorize(&declare("web.jobs")).is_ok());
        let e = id.0.authorize(&declare("admin.jobs")).unwrap_err();
        assert_eq!(e.name(), "AccessRefused");
        assert!(e.to_string().contains("configure access to queue 'admin.jobs'"), "{e}");
        let publish = |x: &str| Request::BasicPublish { channel: 1, method: BasicPublish { exchange: x.into(), ..Default::default() }, properties: Default::default() };
        assert!(id.0.authorize(&publish("")).is_ok(), "the default exchange");
        assert!(id.0.authorize(&publish("admin")).is_err());
    }
}
