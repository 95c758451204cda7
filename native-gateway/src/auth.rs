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
//!
//! Instead of (or beside) static tokens, a `[jwt]` table accepts HMAC-signed bearer tokens
//! with an expiry: JSON Web Tokens signed with HS256 (any JWT library can mint them, e.g. a
//! Python web backend with PyJWT). The claims carry the identity (`sub`), its expiry (`exp`,
//! required) and its permissions with the same names and defaults as a static identity
//! (`vhosts`, `configure`, `write`, `read`):
//!
//! ```toml
//! [jwt]
//! secret = "at least 32 bytes of random secret......"   # or secret_file = "/run/secrets/jwt"
//! issuer = "https://app.example"        # optional: required `iss`
//! audience = "kombu-gateway"            # optional: required `aud`
//! max_connections = 10                  # optional: per subject
//! leeway = 60                           # seconds of clock skew allowed (default 60)
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kombu::proto::gateway::Request;
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
    jwt: Option<JwtFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JwtFile {
    secret: Option<String>,
    secret_file: Option<std::path::PathBuf>,
    issuer: Option<String>,
    audience: Option<String>,
    max_connections: Option<usize>,
    #[serde(default = "default_leeway")]
    leeway: u64,
}

fn default_leeway() -> u64 {
    60
}

/// The claims of a gateway JWT.
#[derive(Debug, Deserialize, serde::Serialize)]
pub struct Claims {
    /// The identity's name.
    pub sub: String,
    /// Expiry (seconds since the Unix epoch).
    pub exp: u64,
    /// Virtual hosts it may open (default: all).
    #[serde(default = "all_vhosts")]
    pub vhosts: Vec<String>,
    /// Configure permission pattern (default `.*`).
    #[serde(default = "everything")]
    pub configure: String,
    /// Write permission pattern (default `.*`).
    #[serde(default = "everything")]
    pub write: String,
    /// Read permission pattern (default `.*`).
    #[serde(default = "everything")]
    pub read: String,
}

/// How HMAC-signed tokens are checked.
struct Jwt {
    key: jsonwebtoken::DecodingKey,
    validation: jsonwebtoken::Validation,
    max_connections: Option<usize>,
    /// Open connections per subject.
    connections: std::sync::Mutex<HashMap<String, Arc<AtomicUsize>>>,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt").field("max_connections", &self.max_connections).finish_non_exhaustive()
    }
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
    connections: Arc<AtomicUsize>,
}

/// The identities of a token file.
#[derive(Debug, Default)]
pub struct Auth {
    by_token: HashMap<String, Arc<Identity>>,
    jwt: Option<Jwt>,
}

fn anchored(pattern: &str, what: &str, name: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("identity {name:?}: invalid {what} pattern {pattern:?}: {e}"))
}

/// A TOML parse error as its line and reason only: toml's own message quotes the offending
/// line, which in a token file (or a configuration file with a broker URL) is a secret.
pub(crate) fn toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let line = text.get(..span.start).map_or(0, |before| before.matches('\n').count()) + 1;
            format!("line {line}: {}", e.message())
        }
        None => e.message().to_owned(),
    }
}

impl Auth {
    /// Read a token file.
    pub fn load(path: &Path) -> Result<Auth, GatewayError> {
        let refused = |reason: String| GatewayError::Tokens { path: path.to_owned(), reason };
        let text = std::fs::read_to_string(path).map_err(|e| refused(e.to_string()))?;
        Self::parse(&text).map_err(refused)
    }

    /// Parse a token file's text.
    pub fn parse(text: &str) -> Result<Auth, String> {
        let f: TokenFile = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        let jwt = f.jwt.map(Jwt::new).transpose()?;
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
                connections: Arc::new(AtomicUsize::new(0)),
                name: i.name,
            };
            if by_token.insert(i.token, Arc::new(id)).is_some() {
                return Err("two identities share a token".into());
            }
        }
        if by_token.is_empty() && jwt.is_none() {
            return Err("the token file has neither [[identity]] entries nor a [jwt] table: no client could connect".into());
        }
        Ok(Auth { by_token, jwt })
    }

    /// The identity of `token` allowed on `vhost`, holding one of its connection slots until
    /// the returned guard drops.
    pub fn admit(&self, token: Option<&str>, vhost: &str) -> Result<Admitted, (u16, String)> {
        let id = self.identify(token)?;
        if !id.may_open(vhost) {
            return Err((403, format!("ACCESS_REFUSED - identity '{}' may not open virtual host '{vhost}'", id.name)));
        }
        let n = id.connections.fetch_add(1, Ordering::SeqCst) + 1;
        if id.max_connections.is_some_and(|m| n > m) {
            id.connections.fetch_sub(1, Ordering::SeqCst);
            return Err((429, format!("identity '{}' already has its maximum of {} connections", id.name, id.max_connections.unwrap_or(0))));
        }
        Ok(Admitted(id, vhost.to_owned()))
    }
}

impl Jwt {
    fn new(f: JwtFile) -> Result<Jwt, String> {
        let secret = match (f.secret, f.secret_file) {
            (Some(s), None) => s.into_bytes(),
            (None, Some(p)) => {
                let mut s = std::fs::read(&p).map_err(|e| format!("[jwt] secret_file {}: {e}", p.display()))?;
                while s.last().is_some_and(u8::is_ascii_whitespace) {
                    s.pop();
                }
                s
            }
            _ => return Err("[jwt] needs exactly one of secret and secret_file".into()),
        };
        if secret.len() < 32 {
            return Err(format!("[jwt] the HS256 secret must have at least 32 bytes (it has {})", secret.len()));
        }
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = f.leeway;
        validation.set_required_spec_claims(&["exp", "sub"]);
        if let Some(iss) = &f.issuer {
            validation.set_issuer(&[iss]);
            validation.required_spec_claims.insert("iss".into());
        }
        match &f.audience {
            Some(aud) => {
                // Required, not only checked when present: a token minted for no audience in
                // particular is not one for this gateway.
                validation.set_audience(&[aud]);
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        Ok(Jwt { key: jsonwebtoken::DecodingKey::from_secret(&secret), validation, max_connections: f.max_connections, connections: Default::default() })
    }

    fn identity(&self, token: &str) -> Result<Arc<Identity>, (u16, String)> {
        use jsonwebtoken::errors::ErrorKind;
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(|e| {
            let why = match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
                ErrorKind::InvalidSignature => "the token's signature is not valid for this gateway".to_owned(),
                ErrorKind::InvalidAlgorithm => "the token must be signed with HS256".to_owned(),
                ErrorKind::InvalidIssuer => "the token's issuer (iss) is not accepted".to_owned(),
                ErrorKind::InvalidAudience => "the token's audience (aud) is not accepted".to_owned(),
                ErrorKind::MissingRequiredClaim(c) => format!("the token has no {c:?} claim"),
                _ => format!("invalid token: {e}"),
            };
            (401, why)
        })?;
        let c = data.claims;
        let connections = {
            let mut map = crate::lock(&self.connections);
            map.retain(|_, n| Arc::strong_count(n) > 1 || n.load(Ordering::SeqCst) > 0);
            map.entry(c.sub.clone()).or_default().clone()
        };
        let bad = |e: String| (401, format!("the token's claims are not valid: {e}"));
        Ok(Arc::new(Identity {
            configure: anchored(&c.configure, "configure", &c.sub).map_err(bad)?,
            write: anchored(&c.write, "write", &c.sub).map_err(bad)?,
            read: anchored(&c.read, "read", &c.sub).map_err(bad)?,
            vhosts: c.vhosts,
            max_connections: self.max_connections,
            connections,
            name: c.sub,
        }))
    }
}

impl Auth {
    /// The identity a token stands for (a static token or a valid JWT), without taking a
    /// connection slot.
    pub fn identify(&self, token: Option<&str>) -> Result<Arc<Identity>, (u16, String)> {
        let Some(token) = token else {
            return Err((401, "this gateway requires a token".into()));
        };
        match self.by_token.get(token) {
            Some(id) => Ok(id.clone()),
            // Three base64url parts separated by dots: a JWT.
            None if self.jwt.is_some() && token.split('.').count() == 3 => self.jwt.as_ref().map_or_else(|| Err((401, "unknown token".into())), |j| j.identity(token)),
            None => Err((401, "unknown token".into())),
        }
    }
}

/// An admitted identity and the virtual host it opened; its connection slot is freed on drop.
#[derive(Debug)]
pub struct Admitted(pub Arc<Identity>, pub String);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

fn refuse(id: &Identity, vhost: &str, perm: &str, kind: &str, name: &str) -> Error {
    Error::channel(ReplyCode::AccessRefused, format!("ACCESS_REFUSED - {perm} access to {kind} '{name}' in vhost '{vhost}' refused for identity '{}'", id.name))
}

/// The queue argument naming a dead-letter exchange, and the exchange argument naming an
/// alternate exchange: declaring either needs write permission on the exchange named.
const DEAD_LETTER_EXCHANGE: &str = "x-dead-letter-exchange";
const ALTERNATE_EXCHANGE: &str = "alternate-exchange";

/// The name RabbitMQ checks permissions on: the default exchange (`""`) is `amq.default`.
fn resource<'a>(kind: &str, name: &'a str) -> &'a str {
    if kind == "exchange" && name.is_empty() {
        "amq.default"
    } else {
        name
    }
}

/// What a method names and the permission each name needs, as RabbitMQ checks them
/// (`rabbit_channel`): `(permission, kind, name)`, checked in order.
fn needs<'a>(
    method: Method<'a>,
) -> Vec<(Perm, &'static str, std::borrow::Cow<'a, str>)> {
    use std::borrow::Cow;
    let string_arg = |args: &'a kombu::Headers, key: &str| args.get(key).and_then(kombu::Value::as_str).map(Cow::Borrowed);
    match method {
        Method::ExchangeDeclare { exchange, passive: false, arguments } => {
            let mut v = vec![(Perm::Configure, "exchange", Cow::Borrowed(exchange))];
            if let Some(ae) = string_arg(arguments, ALTERNATE_EXCHANGE) {
                v.push((Perm::Read, "exchange", Cow::Borrowed(exchange)));
                v.push((Perm::Write, "exchange", ae));
            }
            v
        }
        Method::ExchangeDelete { exchange } => vec![(Perm::Configure, "exchange", Cow::Borrowed(exchange))],
        Method::QueueDeclare { queue, passive: false, arguments } => {
            // A server-named queue: RabbitMQ checks the name it generates (`amq.gen-` and 22
            // random characters), so the identity's pattern must allow such names.
            let queue = if queue.is_empty() { Cow::Owned(format!("amq.gen-{}", &kombu::uuid().replace('-', "")[..22])) } else { Cow::Borrowed(queue) };
            let mut v = vec![(Perm::Configure, "queue", queue.clone())];
            if let Some(dlx) = string_arg(arguments, DEAD_LETTER_EXCHANGE) {
                v.push((Perm::Read, "queue", queue));
                v.push((Perm::Write, "exchange", dlx));
            }
            v
        }
        Method::QueueDelete { queue } => vec![(Perm::Configure, "queue", Cow::Borrowed(queue))],
        Method::QueueBind { queue, exchange } => vec![(Perm::Write, "queue", Cow::Borrowed(queue)), (Perm::Read, "exchange", Cow::Borrowed(exchange))],
        Method::ExchangeBind { destination, source } => vec![(Perm::Write, "exchange", Cow::Borrowed(destination)), (Perm::Read, "exchange", Cow::Borrowed(source))],
        Method::Publish { exchange } => vec![(Perm::Write, "exchange", Cow::Borrowed(exchange))],
        Method::ReadQueue { queue } => vec![(Perm::Read, "queue", Cow::Borrowed(queue))],
        _ => Vec::new(),
    }
}

/// RabbitMQ's three permissions.
#[derive(Debug, Clone, Copy)]
enum Perm {
    Configure,
    Write,
    Read,
}

/// The methods that name resources, as both protocols carry them.
enum Method<'a> {
    ExchangeDeclare { exchange: &'a str, passive: bool, arguments: &'a kombu::Headers },
    ExchangeDelete { exchange: &'a str },
    QueueDeclare { queue: &'a str, passive: bool, arguments: &'a kombu::Headers },
    QueueDelete { queue: &'a str },
    /// `queue.bind`, `queue.unbind`.
    QueueBind { queue: &'a str, exchange: &'a str },
    /// `exchange.bind`, `exchange.unbind`.
    ExchangeBind { destination: &'a str, source: &'a str },
    Publish { exchange: &'a str },
    /// `basic.consume`, `basic.get`, `queue.purge`.
    ReadQueue { queue: &'a str },
    Other,
}

impl Identity {
    fn check_all(&self, vhost: &str, method: Method<'_>) -> Result<(), Error> {
        for (perm, kind, name) in needs(method) {
            let (re, word) = match perm {
                Perm::Configure => (&self.configure, "configure"),
                Perm::Write => (&self.write, "write"),
                Perm::Read => (&self.read, "read"),
            };
            let name = resource(kind, &name);
            if !re.is_match(name) {
                return Err(refuse(self, vhost, word, kind, name));
            }
        }
        Ok(())
    }

    /// Whether this identity may run the AMQP method `m` on `vhost` (the `/amqp` relay): the
    /// same rules as [`Identity::authorize`].
    pub fn authorize_amqp(&self, vhost: &str, m: &kombu::proto::amqp::Method) -> Result<(), Error> {
        use kombu::proto::amqp::Method as M;
        let method = match m {
            M::ExchangeDeclare { exchange, passive, arguments, .. } => Method::ExchangeDeclare { exchange, passive: *passive, arguments },
            M::ExchangeDelete { exchange, .. } => Method::ExchangeDelete { exchange },
            M::QueueDeclare { queue, passive, arguments, .. } => Method::QueueDeclare { queue, passive: *passive, arguments },
            M::QueueDelete { queue, .. } => Method::QueueDelete { queue },
            M::QueueBind { queue, exchange, .. } | M::QueueUnbind { queue, exchange, .. } => Method::QueueBind { queue, exchange },
            M::ExchangeBind { destination, source, .. } | M::ExchangeUnbind { destination, source, .. } => Method::ExchangeBind { destination, source },
            M::BasicPublish { exchange, .. } => Method::Publish { exchange },
            M::BasicConsume { queue, .. } | M::BasicGet { queue, .. } | M::QueuePurge { queue, .. } => Method::ReadQueue { queue },
            _ => Method::Other,
        };
        self.check_all(vhost, method)
    }

    /// Whether this identity may perform `request` on `vhost` (RabbitMQ's permission model;
    /// the table in docs/gateway-protocol.md §7).
    pub fn authorize(&self, vhost: &str, request: &Request) -> Result<(), Error> {
        let method = match request {
            Request::ExchangeDeclare { method: m, .. } => Method::ExchangeDeclare { exchange: &m.exchange, passive: m.passive, arguments: &m.arguments },
            Request::ExchangeDelete { method: m, .. } => Method::ExchangeDelete { exchange: &m.exchange },
            Request::QueueDeclare { method: m, .. } => Method::QueueDeclare { queue: &m.queue, passive: m.passive, arguments: &m.arguments },
            Request::QueueDelete { method: m, .. } => Method::QueueDelete { queue: &m.queue },
            Request::QueueBind { method: m, .. } | Request::QueueUnbind { method: m, .. } => Method::QueueBind { queue: &m.queue, exchange: &m.exchange },
            Request::ExchangeBind { method: m, .. } | Request::ExchangeUnbind { method: m, .. } => Method::ExchangeBind { destination: &m.destination, source: &m.source },
            Request::BasicPublish { method: m, .. } => Method::Publish { exchange: &m.exchange },
            Request::BasicConsume { method: m, .. } => Method::ReadQueue { queue: &m.queue },
            Request::BasicGet { queue, .. } | Request::QueuePurge { queue, .. } => Method::ReadQueue { queue },
            _ => Method::Other,
        };
        self.check_all(vhost, method)
    }
}

impl Identity {
    /// Whether this identity may open `vhost`.
    pub fn may_open(&self, vhost: &str) -> bool {
        self.vhosts.iter().any(|v| v == "*" || v == vhost)
    }

    /// Whether this identity may see an exchange or queue in a listing (`/api/snapshot`): it
    /// may configure or read it (the default exchange is `amq.default`).
    pub fn may_see(&self, kind: &str, name: &str) -> bool {
        let name = resource(kind, name);
        self.configure.is_match(name) || self.read.is_match(name)
    }
}

impl Admitted {
    /// Whether the admitted identity may perform `request` on its virtual host.
    pub fn authorize(&self, request: &Request) -> Result<(), Error> {
        self.0.authorize(&self.1, request)
    }

    /// Whether the admitted identity may run the AMQP method `m` on its virtual host.
    pub fn authorize_amqp(&self, m: &kombu::proto::amqp::Method) -> Result<(), Error> {
        self.0.authorize_amqp(&self.1, m)
    }
}

#[cfg(test)]
mod tests {
    use kombu::proto::methods::{BasicPublish, ExchangeDeclare, QueueDeclare};

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

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn mint(claims: serde_json::Value, secret: &str) -> String {
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    #[test]
    fn hmac_signed_tokens_with_expiry() {
        let a = Auth::parse(&format!("[jwt]\nsecret = '{SECRET}'\nmax_connections = 1\nleeway = 0")).unwrap();
        let now = jsonwebtoken::get_current_timestamp();
        let good = mint(serde_json::json!({"sub": "alice", "exp": now + 60, "vhosts": ["/"], "read": "alice\\..*"}), SECRET);
        let admitted = a.admit(Some(&good), "/").unwrap();
        assert_eq!(admitted.0.name, "alice");
        assert!(admitted.authorize(&Request::BasicGet { channel: 1, queue: "bob.inbox".into(), no_ack: false }).is_err());
        assert!(admitted.authorize(&Request::BasicGet { channel: 1, queue: "alice.inbox".into(), no_ack: false }).is_ok());
        let again = mint(serde_json::json!({"sub": "alice", "exp": now + 120}), SECRET);
        assert_eq!(a.admit(Some(&again), "/").unwrap_err().0, 429, "one connection per subject");
        drop(admitted);
        assert!(a.admit(Some(&again), "/").is_ok());
        assert_eq!(a.admit(Some(&good), "/other").unwrap_err().0, 403);
        let expired = mint(serde_json::json!({"sub": "alice", "exp": now - 10}), SECRET);
        assert_eq!(a.admit(Some(&expired), "/").unwrap_err(), (401, "the token has expired".into()));
        let forged = mint(serde_json::json!({"sub": "alice", "exp": now + 60}), "another secret of at least 32 bytes!");
        assert!(a.admit(Some(&forged), "/").unwrap_err().1.contains("signature"));
        let no_exp = mint(serde_json::json!({"sub": "alice"}), SECRET);
        assert!(a.admit(Some(&no_exp), "/").unwrap_err().1.contains("exp"));
        assert!(Auth::parse("[jwt]\nsecret = 'short'").unwrap_err().contains("32 bytes"));
        assert!(Auth::parse("").unwrap_err().contains("no client could connect"));
        // A JWT without `aud` while an audience is configured: refused, as a wrong one is.
        let a = Auth::parse(&format!("[jwt]\nsecret = '{SECRET}'\naudience = 'kombu-gateway'")).unwrap();
        let no_aud = mint(serde_json::json!({"sub": "alice", "exp": now + 60}), SECRET);
        assert_eq!(a.admit(Some(&no_aud), "/").unwrap_err(), (401, "the token has no \"aud\" claim".into()));
        let wrong_aud = mint(serde_json::json!({"sub": "alice", "exp": now + 60, "aud": "elsewhere"}), SECRET);
        assert_eq!(a.admit(Some(&wrong_aud), "/").unwrap_err(), (401, "the token's audience (aud) is not accepted".into()));
        let right = mint(serde_json::json!({"sub": "alice", "exp": now + 60, "aud": "kombu-gateway"}), SECRET);
        assert!(a.admit(Some(&right), "/").is_ok());
    }

    #[test]
    fn a_token_file_that_does_not_parse_is_named_by_line_without_its_text() {
        let text = "[[identity]]\nname = \"web\"\ntoken = \"s3cret-token-value\nread = \".*\"\n";
        let e = Auth::parse(text).unwrap_err();
        assert!(e.starts_with("line 3: "), "{e}");
        assert!(!e.contains("s3cret"), "the token is not echoed: {e}");
        let e = Auth::parse("[[identity]]\nname = \"web\"\ntoken = \"s3cret-token-value\"\nwrite = 5\n").unwrap_err();
        assert!(e.starts_with("line 4: ") && !e.contains("s3cret"), "{e}");
    }

    #[test]
    fn permissions_follow_rabbitmq() {
        let a = Auth::parse(FILE).unwrap();
        let id = a.admit(Some("web-token-123"), "/").unwrap();
        let declare = |q: &str| Request::QueueDeclare { channel: 1, method: QueueDeclare { queue: q.into(), ..Default::default() } };
        assert!(id.authorize(&declare("web.jobs")).is_ok());
        let e = id.authorize(&declare("admin.jobs")).unwrap_err();
        assert_eq!(e.name(), "AccessRefused");
        assert!(e.to_string().contains("configure access to queue 'admin.jobs'"), "{e}");
        let publish = |x: &str| Request::BasicPublish { channel: 1, method: BasicPublish { exchange: x.into(), ..Default::default() }, properties: Default::default() };
        assert!(id.authorize(&publish("web.x")).is_ok());
        assert!(id.authorize(&publish("admin")).is_err());
        // The default exchange is `amq.default`, which this identity may not write to.
        let e = id.authorize(&publish("")).unwrap_err();
        assert!(e.to_string().contains("write access to exchange 'amq.default' in vhost '/' refused for identity 'web'"), "{e}");
        // A dead-letter exchange needs write on it and read on the queue; an alternate
        // exchange write on it and read on the exchange.
        let dlx = |q: &str, x: &str| Request::QueueDeclare { channel: 1, method: QueueDeclare { queue: q.into(), arguments: kombu::value::headers([("x-dead-letter-exchange", x)]), ..Default::default() } };
        assert!(id.authorize(&dlx("web.q", "web.dlx")).is_ok());
        assert!(id.authorize(&dlx("web.q", "admin.dlx")).unwrap_err().to_string().contains("write access to exchange 'admin.dlx'"));
        assert!(id.authorize(&dlx("web.q", "")).unwrap_err().to_string().contains("write access to exchange 'amq.default'"));
        let ae = |x: &str, a: &str| Request::ExchangeDeclare { channel: 1, method: ExchangeDeclare { exchange: x.into(), arguments: kombu::value::headers([("alternate-exchange", a)]), ..Default::default() } };
        assert!(id.authorize(&ae("web.x", "web.ae")).is_ok());
        assert!(id.authorize(&ae("web.x", "admin.ae")).unwrap_err().to_string().contains("write access to exchange 'admin.ae'"));
        // A server-named queue: checked as RabbitMQ checks it, on an `amq.gen-` name.
        assert!(id.authorize(&declare("")).unwrap_err().to_string().contains("configure access to queue 'amq.gen-"));
        // Passive declares name nothing they change.
        assert!(id.authorize(&Request::QueueDeclare { channel: 1, method: QueueDeclare { queue: "admin.q".into(), passive: true, ..Default::default() } }).is_ok());
    }

    /// The relay's mapping of AMQP methods onto the table: each row, refused on names outside
    /// the identity's patterns with the permission RabbitMQ checks.
    #[test]
    fn amqp_methods_are_checked_as_the_table_says() {
        use kombu::proto::amqp::Method as M;
        let a = Auth::parse(FILE).unwrap();
        let id = a.admit(Some("web-token-123"), "/").unwrap();
        let h = kombu::Headers::new;
        let rows: Vec<(M, &str)> = vec![
            (M::ExchangeDeclare { exchange: "admin.x".into(), kind: "direct".into(), passive: false, durable: false, auto_delete: false, internal: false, nowait: false, arguments: h() }, "configure access to exchange 'admin.x'"),
            (M::ExchangeDeclare { exchange: "web.x".into(), kind: "direct".into(), passive: false, durable: false, auto_delete: false, internal: false, nowait: false, arguments: kombu::value::headers([("alternate-exchange", "admin.ae")]) }, "write access to exchange 'admin.ae'"),
            (M::ExchangeDelete { exchange: "admin.x".into(), if_unused: false, nowait: false }, "configure access to exchange 'admin.x'"),
            (M::QueueDeclare { queue: "admin.q".into(), passive: false, durable: false, exclusive: false, auto_delete: false, nowait: false, arguments: h() }, "configure access to queue 'admin.q'"),
            (M::QueueDeclare { queue: "web.q".into(), passive: false, durable: false, exclusive: false, auto_delete: false, nowait: false, arguments: kombu::value::headers([("x-dead-letter-exchange", "admin.dlx")]) }, "write access to exchange 'admin.dlx'"),
            (M::QueueDelete { queue: "admin.q".into(), if_unused: false, if_empty: false, nowait: false }, "configure access to queue 'admin.q'"),
            (M::QueuePurge { queue: "admin.q".into(), nowait: false }, "read access to queue 'admin.q'"),
            (M::QueueBind { queue: "admin.q".into(), exchange: "web.x".into(), routing_key: String::new(), nowait: false, arguments: h() }, "write access to queue 'admin.q'"),
            (M::QueueBind { queue: "web.q".into(), exchange: "admin.x".into(), routing_key: String::new(), nowait: false, arguments: h() }, "read access to exchange 'admin.x'"),
            (M::QueueUnbind { queue: "admin.q".into(), exchange: "web.x".into(), routing_key: String::new(), arguments: h() }, "write access to queue 'admin.q'"),
            (M::ExchangeBind { destination: "admin.x".into(), source: "web.x".into(), routing_key: String::new(), nowait: false, arguments: h() }, "write access to exchange 'admin.x'"),
            (M::ExchangeUnbind { destination: "web.x".into(), source: "admin.x".into(), routing_key: String::new(), nowait: false, arguments: h() }, "read access to exchange 'admin.x'"),
            (M::BasicPublish { exchange: String::new(), routing_key: "admin.q".into(), mandatory: false, immediate: false }, "write access to exchange 'amq.default' in vhost '/'"),
            (M::BasicGet { queue: "admin.q".into(), no_ack: true }, "read access to queue 'admin.q'"),
        ];
        for (m, needle) in rows {
            let e = id.authorize_amqp(&m).unwrap_err();
            assert!(e.to_string().contains(needle), "{m:?}: {e}");
        }
        let passive = M::QueueDeclare { queue: "admin.q".into(), passive: true, durable: false, exclusive: false, auto_delete: false, nowait: false, arguments: h() };
        assert!(id.authorize_amqp(&passive).is_ok());
    }
}
