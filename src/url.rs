//! Broker URLs: Kombu's grammar `transport://userid:password@hostname:port/virtual_host?options`.
//!
//! Parsing follows `kombu.utils.url.url_to_parts`: everything after the scheme is read with
//! HTTP URL rules, each part is percent-decoded, and the first `/` of the path is dropped,
//! so `amqp://host//` names the virtual host `/`, `amqp://host//foo` names `/foo` and
//! `amqp://host/foo` names `foo`. An empty part is "not given" (the connection's default
//! applies). Several URLs separated by `;` form a failover list.
//!
//! Errors name the part that is wrong and never echo the password.

use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};
use crate::value::{Headers, Value};

/// Transport aliases, as Kombu's `TRANSPORT_ALIASES`, mapped to the transport that
/// implements them here.
const ALIASES: &[(&str, &str)] = &[
    ("amqp", "amqp"),
    ("pyamqp", "amqp"),
    ("librabbitmq", "amqp"),
    ("amqps", "amqps"),
    ("pyamqps", "amqps"),
    ("memory", "memory"),
    ("redis", "redis"),
    ("rediss", "rediss"),
    ("redis+socket", "redis+socket"),
    ("sqs", "sqs"),
    ("SQS", "sqs"),
    ("ws", "ws"),
    ("wss", "wss"),
];

/// The transport a scheme or alias names (`pyamqp` → `amqp`, `SQS` → `sqs`). Unknown names
/// are returned unchanged; the transport registry reports them.
pub fn resolve_alias(name: &str) -> &str {
    ALIASES.iter().find(|(a, _)| *a == name).map_or(name, |(_, t)| t)
}

/// The default port of a transport, when it has one.
pub fn default_port(transport: &str) -> Option<u16> {
    match resolve_alias(transport) {
        "amqp" => Some(5672),
        "amqps" => Some(5671),
        "redis" | "rediss" => Some(6379),
        _ => None,
    }
}

/// The parts of a broker URL. Absent parts are `None`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UrlParts {
    /// The scheme, as written (`amqp`, `pyamqp`, `memory`, ...).
    pub transport: String,
    /// Host name or address (IPv6 without brackets), percent-decoded.
    pub hostname: Option<String>,
    /// Port.
    pub port: Option<u16>,
    /// User name, percent-decoded.
    pub userid: Option<String>,
    /// Password, percent-decoded.
    pub password: Option<String>,
    /// Virtual host (the path without its first `/`), percent-decoded.
    pub virtual_host: Option<String>,
    /// The whole path as written after the authority (Redis sockets, SQS queue URLs...).
    pub path: Option<String>,
    /// Query options, in order, percent-decoded.
    pub query: Vec<(String, String)>,
}

impl UrlParts {
    fn query_value(&self, key: &str) -> Option<&str> {
        self.query.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `ssl` from the query (`ssl=1`, `ssl=true`, ...).
    pub fn ssl(&self) -> Option<bool> {
        self.query_value("ssl").map(truthy)
    }

    /// `connect_timeout` from the query, in seconds.
    pub fn connect_timeout(&self) -> Option<f64> {
        self.query_value("connect_timeout").and_then(crate::value::parse_float)
    }

    /// `heartbeat` from the query, in seconds.
    pub fn heartbeat(&self) -> Option<f64> {
        self.query_value("heartbeat").and_then(crate::value::parse_float)
    }

    /// `login_method` from the query.
    pub fn login_method(&self) -> Option<String> {
        self.query_value("login_method").map(str::to_owned)
    }

    /// The query options that are not connection arguments, as transport options. Values
    /// that read as integers, floats or booleans get that type.
    pub fn transport_options(&self) -> Headers {
        const CONNECTION_ARGS: &[&str] = &["ssl", "connect_timeout", "heartbeat", "login_method", "insist"];
        let mut options = Headers::new();
        for (k, v) in &self.query {
            if !CONNECTION_ARGS.contains(&k.as_str()) {
                options.insert(k.clone(), typed(v));
            }
        }
        options
    }
}

fn truthy(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on" | "y")
}

fn typed(v: &str) -> Value {
    if let Ok(i) = v.parse::<i64>() {
        return Value::from(i);
    }
    if let Some(f) = crate::value::parse_float(v) {
        if f.is_finite() {
            return Value::from(f);
        }
    }
    match v {
        "true" | "True" => Value::Bool(true),
        "false" | "False" => Value::Bool(false),
        _ => Value::String(v.to_owned()),
    }
}

fn decode(part: &str, what: &str, url: &str) -> Result<String> {
    percent_decode_str(part)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| invalid(url, format!("the {what} is not valid UTF-8 after percent-decoding")))
}

fn invalid(url: &str, reason: impl Into<String>) -> Error {
    Error::InvalidUrl { url: sanitize(url, "**"), reason: reason.into() }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// `url.split_once("://")`, searched bytewise: `str`'s substring search is ~2 KB of wasm the
/// WebSocket module needs nowhere else.
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let i = url.as_bytes().windows(3).position(|w| w == b"://")?;
    let (scheme, rest) = url.split_at_checked(i)?;
    Some((scheme, rest.get(3..)?))
}

/// Parse one broker URL.
pub fn parse_url(url: &str) -> Result<UrlParts> {
    let url = url.trim();
    let Some((scheme, rest)) = split_scheme(url) else {
        return Err(invalid(url, "missing '://' after the transport name (expected transport://host/...)"));
    };
    if scheme.is_empty() {
        return Err(invalid(url, "the transport name before '://' is empty"));
    }
    if !scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_')) {
        return Err(invalid(url, format!("the transport name {scheme:?} has characters other than letters, digits, '+', '-', '.', '_'")));
    }
    // Split off the fragment and query, then the authority from the path.
    let rest = rest.split_once('#').map_or(rest, |(r, _)| r);
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = match rest.find('/').and_then(|i| rest.split_at_checked(i)) {
        Some((authority, path)) => (authority, Some(path)),
        None => (rest, None),
    };
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };
    let (userid, password) = match userinfo {
        None => (None, None),
        Some(ui) => {
            let (u, p) = match ui.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (ui, None),
            };
            let u = non_empty(decode(u, "user name", url)?);
            let p = match p {
                Some(p) => non_empty(decode(p, "password", url)?),
                None => None,
            };
            (u, p)
        }
    };
    let (host, port) = if let Some(h) = hostport.strip_prefix('[') {
        let Some((h, after)) = h.split_once(']') else {
            return Err(invalid(url, "the IPv6 host address has no closing ']'"));
        };
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| invalid(url, format!("unexpected {p:?} after the IPv6 host address")))?),
        };
        (h.to_owned(), port)
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (decode(h, "host name", url)?, Some(p)),
            None => (decode(hostport, "host name", url)?, None),
        }
    };
    if host.chars().any(|c| c.is_whitespace() || c == '/' || c == '@') {
        return Err(invalid(url, format!("the host name {host:?} contains a space, '/' or '@'")));
    }
    let port = match port {
        None | Some("") => None,
        Some(p) => match p.parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Some(n as u16),
            Ok(n) => return Err(invalid(url, format!("the port {n} is out of range (1-65535)"))),
            Err(_) => return Err(invalid(url, format!("the port {p:?} is not a number"))),
        },
    };
    let virtual_host = match path {
        Some(p) => non_empty(decode(p.strip_prefix('/').unwrap_or(p), "virtual host", url)?),
        None => None,
    };
    let mut pairs = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(&k.replace('+', " "), "query", url)?;
        let v = decode(&v.replace('+', " "), "query", url)?;
        pairs.push((k, v));
    }
    Ok(UrlParts {
        transport: scheme.to_owned(),
        hostname: non_empty(host),
        port,
        userid,
        password,
        virtual_host,
        path: path.map(str::to_owned),
        query: pairs,
    })
}

/// Split a `;`-separated failover list into its URLs (empty entries are dropped).
pub fn split_failover(urls: &str) -> Vec<String> {
    let mut out = Vec::new();
    for u in urls.split(';') {
        let u = u.trim();
        if !u.is_empty() {
            out.push(u.to_owned());
        }
    }
    out
}

/// Replace the password of `url` with `mask` (Kombu's `sanitize_url`). URLs that do not parse
/// are returned with everything between `://` and the last `@` masked.
pub fn sanitize(url: &str, mask: &str) -> String {
    let Some((scheme, rest)) = split_scheme(url) else {
        return url.to_owned();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let Some((userinfo, _)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    // From the '@' on.
    let from_at = rest.split_at_checked(userinfo.len()).map_or("", |(_, r)| r);
    match userinfo.split_once(':') {
        Some((user, pw)) if !pw.is_empty() => format!("{scheme}://{user}:{mask}{from_at}"),
        _ => url.to_owned(),
    }
}

/// The URL as Kombu's `Connection.as_uri` prints it: the password masked with `mask` unless
/// `include_password`.
pub fn as_uri_str(url: &str, include_password: bool, mask: &str) -> String {
    if include_password {
        url.to_owned()
    } else {
        sanitize(url, mask)
    }
}

/// The error for a transport name nobody registered: lists the known transports and
/// suggests the closest one.
pub fn unknown_transport(name: &str, known: &[&str]) -> Error {
    let mut known: Vec<&str> = known.to_vec();
    crate::sort::sort_by(&mut known, |a, b| a.cmp(b));
    known.dedup();
    let lower = name.to_ascii_lowercase();
    // The nearest close enough (the first in order on a tie).
    let mut best: Option<(usize, &str)> = None;
    for &k in &known {
        let d = edit_distance(&lower, k);
        if d <= 2.max(k.len() / 3) && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, k));
        }
    }
    let mut listed = known.join(", ");
    if let Some((_, k)) = best {
        listed.push_str(&format!("; did you mean {k:?}?"));
    }
    Error::UnknownTransport { name: name.to_owned(), known: listed }
}

/// Levenshtein distance with adjacent transpositions, for suggestions. The table is one flat
/// vector, row `i` at `i * w` (a vector of rows costs the module a clone of `Vec<usize>` and
/// more).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; w * (a.len() + 1)];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d[..w].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..w {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1).min(d[i * w + j - 1] + 1).min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn full_url() {
        let p = parse_url("amqp://user:p%40ss@rabbit.example:5673/my%2Fvhost?ssl=1&heartbeat=10&x=5").unwrap();
        assert_eq!(p.transport, "amqp");
        assert_eq!(p.hostname.as_deref(), Some("rabbit.example"));
        assert_eq!(p.port, Some(5673));
        assert_eq!(p.userid.as_deref(), Some("user"));
        assert_eq!(p.password.as_deref(), Some("p@ss"));
        assert_eq!(p.virtual_host.as_deref(), Some("my/vhost"));
        assert_eq!(p.ssl(), Some(true));
        assert_eq!(p.heartbeat(), Some(10.0));
        assert_eq!(p.transport_options().get("x"), Some(&Value::from(5)));
        assert!(!p.transport_options().contains_key("ssl"));
    }

    #[test]
    fn scheme_ends_at_the_first_separator() {
        assert_eq!(split_scheme("a:b://c:d://e"), Some(("a:b", "c:d://e")));
        assert_eq!(split_scheme("\u{e9}://x"), Some(("\u{e9}", "x")));
        assert_eq!(split_scheme("://"), Some(("", "")));
        assert_eq!(split_scheme("amqp:/x"), None);
        let s = parse_url("a:b://h").unwrap_err().to_string();
        assert!(s.contains("the transport name \"a:b\" has characters other than"), "{s}");
        let s = parse_url("r\u{e9}dis://h").unwrap_err().to_string();
        assert!(s.contains("the transport name \"r\u{e9}dis\" has characters other than"), "{s}");
    }

    #[test]
    fn virtual_host_slash_rule() {
        // The seed: `amqp://localhost//foo` is vhost '/foo', `amqp://localhost/foo` is 'foo'.
        let vh = |u: &str| parse_url(u).unwrap().virtual_host;
        assert_eq!(vh("amqp://localhost//foo").as_deref(), Some("/foo"));
        assert_eq!(vh("amqp://localhost/foo").as_deref(), Some("foo"));
        assert_eq!(vh("amqp://localhost//").as_deref(), Some("/"));
        assert_eq!(vh("amqp://localhost/"), None);
        assert_eq!(vh("amqp://"), None);
        assert_eq!(vh("redis://localhost:6379/2").as_deref(), Some("2"));
    }

    #[test]
    fn empty_parts_are_absent() {
        let p = parse_url("amqp://").unwrap();
        assert_eq!(p, UrlParts { transport: "amqp".into(), ..Default::default() });
        let p = parse_url("memory://").unwrap();
        assert_eq!(p.hostname, None);
        let p = parse_url("redis+socket:///tmp/redis.sock").unwrap();
        assert_eq!(p.transport, "redis+socket");
        assert_eq!(p.path.as_deref(), Some("/tmp/redis.sock"));
        let p = parse_url("amqp://guest@localhost").unwrap();
        assert_eq!((p.userid.as_deref(), p.password), (Some("guest"), None));
    }

    #[test]
    fn ipv6_hosts() {
        let p = parse_url("amqp://[::1]:5672//").unwrap();
        assert_eq!(p.hostname.as_deref(), Some("::1"));
        assert_eq!(p.port, Some(5672));
        assert!(parse_url("amqp://[::1:5672//").is_err());
    }

    #[test]
    fn errors_name_the_bad_part_and_hide_the_password() {
        let e = parse_url("amqp://guest:secret@localhost:70000//").unwrap_err();
        let s = e.to_string();
        assert_eq!(e.name(), "InvalidURL");
        assert!(s.contains("70000") && s.contains("port"), "{s}");
        assert!(!s.contains("secret"), "{s}");
        let s = parse_url("amqp://localhost:abc//").unwrap_err().to_string();
        assert!(s.contains("\"abc\" is not a number"), "{s}");
        let s = parse_url("localhost:5672").unwrap_err().to_string();
        assert!(s.contains("://"), "{s}");
        let s = parse_url("am qp://x").unwrap_err().to_string();
        assert!(s.contains("transport name"), "{s}");
        let s = parse_url("amqp://u:p@ho st/").unwrap_err().to_string();
        assert!(s.contains("host name"), "{s}");
    }

    #[test]
    fn failover_lists() {
        assert_eq!(split_failover("amqp://a//;amqp://b//; ;"), vec!["amqp://a//", "amqp://b//"]);
        assert!(split_failover("").is_empty());
    }

    #[test]
    fn password_masking() {
        assert_eq!(as_uri_str("amqp://u:pw@h:1//", false, "**"), "amqp://u:**@h:1//");
        assert_eq!(as_uri_str("amqp://u:pw@h:1//", true, "**"), "amqp://u:pw@h:1//");
        assert_eq!(as_uri_str("amqp://u@h//", false, "**"), "amqp://u@h//");
        assert_eq!(as_uri_str("memory://", false, "**"), "memory://");
        assert_eq!(sanitize("redis://:secret@h:6379/0", "xx"), "redis://:xx@h:6379/0");
    }

    #[test]
    fn aliases_and_ports() {
        assert_eq!(resolve_alias("pyamqp"), "amqp");
        assert_eq!(resolve_alias("librabbitmq"), "amqp");
        assert_eq!(resolve_alias("SQS"), "sqs");
        assert_eq!(resolve_alias("nope"), "nope");
        assert_eq!(default_port("pyamqp"), Some(5672));
        assert_eq!(default_port("amqps"), Some(5671));
        assert_eq!(default_port("redis"), Some(6379));
        assert_eq!(default_port("memory"), None);
    }

    #[test]
    fn unknown_transport_suggests() {
        let e = unknown_transport("memroy", &["memory", "amqp", "redis"]);
        let s = e.to_string();
        assert!(s.contains("amqp, memory, redis") && s.contains("did you mean \"memory\""), "{s}");
        let s = unknown_transport("zzzzzz", &["memory"]).to_string();
        assert!(!s.contains("did you mean"), "{s}");
    }
}
