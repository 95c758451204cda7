//! Header and argument values.
//!
//! Kombu headers, exchange/queue/binding arguments and consumer arguments are JSON-like
//! tables: [`serde_json::Value`] with insertion order preserved. Integers, floats, strings,
//! booleans, null, arrays and tables keep their type, which is what headers-exchange routing
//! and the AMQP field-table encoding need.

pub use serde_json::Value;

/// An ordered table of header or argument values (Kombu's `dict`).
pub type Headers = serde_json::Map<String, Value>;

/// Build a [`Headers`] table from `(key, value)` pairs.
pub fn headers<K, V, I>(pairs: I) -> Headers
where
    K: Into<String>,
    V: Into<Value>,
    I: IntoIterator<Item = (K, V)>,
{
    pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect()
}
