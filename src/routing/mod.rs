//! Exchange routing with RabbitMQ 3.x semantics: direct, fanout, topic and headers.
//!
//! A [`Router`] holds the bindings of one exchange and answers "which destinations does a
//! message with this routing key and these headers reach?". Destinations are generic (`D`):
//! the in-memory broker uses queues and exchanges (exchange-to-exchange bindings).
//!
//! The rules follow RabbitMQ 3.x, checked against a live RabbitMQ 3.10.8 (see
//! `tests/routing_rabbitmq.rs` and its fixture):
//!
//! * **direct** — the routing key must equal the binding key byte for byte; binding
//!   arguments take no part in routing.
//! * **fanout** — every bound destination, whatever the key.
//! * **topic** — keys and patterns are split on `.` into words. The *empty* string is
//!   **zero** words (not one empty word), while `"."` is two empty words and `"a."`,
//!   `".a"`, `"a..b"` contain empty words. `*` matches exactly one word (which may be
//!   empty) and never zero; `#` matches zero or more words and may appear anywhere, several
//!   times. So `""` is matched by the patterns `""`, `"#"`, `"#.#"`... but not by `"*"`,
//!   and the empty pattern matches only the empty key. Matching runs over a trie of
//!   pattern words (like RabbitMQ's), simulated breadth-first so that its cost is bounded
//!   by `trie nodes visited × key words` and never explodes with many `#`.
//! * **headers** — see [`headers_match`].
//!
//! This file holds the [`Router`] and its per-kind indexes (direct and fanout are a map
//! each); `topic.rs` the topic word trie and [`topic_matches`]; `headers.rs` the headers
//! matching ([`headers_match`] and the prepared form the router uses).
//!
//! Bindings are idempotent: binding the same (key, arguments, destination) twice keeps one
//! binding. Arguments are compared as RabbitMQ stores them: top-level order does not
//! matter, nested tables keep their order, and `1` and `1.0` are different arguments.

mod headers;
mod topic;

use std::hash::Hash;

use crate::namemap::SortedMap;
use crate::value::{Headers, Value};

use headers::HeadersSpec;
use topic::Trie;

pub use headers::headers_match;
pub use topic::topic_matches;

/// The routing algorithm of an exchange type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// Routing key equals binding key.
    Direct,
    /// Every bound destination.
    Fanout,
    /// Dotted-word patterns with `*` (one word) and `#` (zero or more words).
    Topic,
    /// Message headers against binding arguments (`x-match`).
    Headers,
}

/// The identity of one binding. Field order matters: bindings sort by destination first,
/// so that all bindings of one destination are contiguous.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct BindingId<D> {
    dest: D,
    key: String,
    /// Canonical form of the arguments (see [`canonical_args`]).
    args: String,
}

/// What is kept of a binding besides its identity.
#[derive(Debug, Clone)]
struct Stored {
    /// The arguments as given.
    args: Headers,
    /// For headers exchanges: the arguments prepared for matching.
    spec: Option<HeadersSpec>,
}

/// Per-kind lookup structure kept in step with the binding set.
#[derive(Debug, Clone)]
enum Index<D> {
    /// Binding key → destination → number of bindings (different arguments) to it.
    Direct(SortedMap<String, SortedMap<D, usize>>),
    /// Destination → number of bindings to it.
    Fanout(SortedMap<D, usize>),
    /// Word trie of the patterns.
    Topic(Trie<D>),
    /// Headers routing scans the binding set itself.
    Headers,
}

/// The bindings of one exchange and the index that routes messages through them.
///
/// `D` is a destination (for the broker: a queue or an exchange name).
#[derive(Debug, Clone)]
pub struct Router<D> {
    kind: RouteKind,
    /// Every binding with its arguments as given, ordered by (destination, key, arguments).
    bindings: SortedMap<BindingId<D>, Stored>,
    index: Index<D>,
}

impl<D: Clone + Eq + Hash + Ord> Router<D> {
    /// An empty router for an exchange of the given kind.
    pub fn new(kind: RouteKind) -> Self {
        let index = match kind {
            RouteKind::Direct => Index::Direct(SortedMap::new()),
            RouteKind::Fanout => Index::Fanout(SortedMap::new()),
            RouteKind::Topic => Index::Topic(Trie::new()),
            RouteKind::Headers => Index::Headers,
        };
        Router { kind, bindings: SortedMap::new(), index }
    }

    /// The kind of exchange this router implements.
    pub fn kind(&self) -> RouteKind {
        self.kind
    }

    /// Add a binding (routing/binding key, binding arguments, destination).
    ///
    /// Returns `false` if an identical binding (same key, same arguments, same destination)
    /// already existed: as in RabbitMQ, binding is idempotent. The key and arguments are
    /// stored for every kind (they are part of the binding's identity) even where routing
    /// ignores them.
    pub fn bind(&mut self, routing_key: &str, arguments: &Headers, dest: D) -> bool {
        let id = BindingId { dest, key: routing_key.to_owned(), args: canonical_args(arguments) };
        if self.bindings.contains_key(&id) {
            return false;
        }
        match &mut self.index {
            Index::Direct(map) => {
                *map.get_or_insert_with(id.key.clone(), SortedMap::new).get_or_insert_with(id.dest.clone(), || 0) += 1;
            }
            Index::Fanout(set) => *set.get_or_insert_with(id.dest.clone(), || 0) += 1,
            Index::Topic(trie) => trie.insert(&id.key, &id.dest),
            Index::Headers => {}
        }
        let spec = (self.kind == RouteKind::Headers).then(|| HeadersSpec::new(arguments));
        self.bindings.insert(id, Stored { args: arguments.clone(), spec });
        true
    }

    /// Remove that exact binding (same key, same arguments, same destination); `false` if
    /// there was none.
    pub fn unbind(&mut self, routing_key: &str, arguments: &Headers, dest: &D) -> bool {
        let id = BindingId {
            dest: dest.clone(),
            key: routing_key.to_owned(),
            args: canonical_args(arguments),
        };
        if self.bindings.remove(&id).is_none() {
            return false;
        }
        self.unindex(&id);
        true
    }

    /// Remove every binding to `dest`; returns how many were removed.
    pub fn unbind_destination(&mut self, dest: &D) -> usize {
        let ids: Vec<BindingId<D>> = self.dest_range(dest).map(|(id, _)| id.clone()).collect();
        for id in &ids {
            self.bindings.remove(id);
            self.unindex(id);
        }
        ids.len()
    }

    /// Whether at least one binding leads to `dest`.
    pub fn has_destination(&self, dest: &D) -> bool {
        self.dest_range(dest).next().is_some()
    }

    /// Whether there are no bindings.
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// The number of bindings.
    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    /// Every binding as (key, arguments, destination), ordered by destination, then key,
    /// then arguments.
    pub fn bindings(&self) -> impl Iterator<Item = (&str, &Headers, &D)> + '_ {
        self.bindings.iter().map(|(id, stored)| (id.key.as_str(), &stored.args, &id.dest))
    }

    /// Append every destination that a message with this routing key and these headers
    /// reaches to `out`.
    ///
    /// Each destination is appended at most once even when several bindings match it, and
    /// the destinations appended by one call come in ascending `Ord` order of `D`.
    /// (Destinations already in `out` are left alone and not looked at.) The routing key is
    /// ignored by fanout and headers exchanges, the headers by all but headers exchanges.
    pub fn route(&self, routing_key: &str, headers: &Headers, out: &mut Vec<D>) {
        match &self.index {
            Index::Direct(map) => {
                if let Some(dests) = map.get(routing_key) {
                    out.extend(dests.keys().cloned());
                }
            }
            Index::Fanout(set) => out.extend(set.keys().cloned()),
            Index::Topic(trie) => trie.route(routing_key, out),
            Index::Headers => headers::route(&self.bindings, headers, out),
        }
    }

    /// The bindings of `dest`, which are contiguous in the ordered binding set.
    fn dest_range<'a>(&'a self, dest: &'a D) -> impl Iterator<Item = (&'a BindingId<D>, &'a Stored)> + 'a {
        let start = BindingId { dest: dest.clone(), key: String::new(), args: String::new() };
        self.bindings.iter_from(&start).take_while(move |(id, _)| id.dest == *dest)
    }

    /// Drop a binding that was just removed from the set from the kind's index.
    fn unindex(&mut self, id: &BindingId<D>) {
        match &mut self.index {
            Index::Direct(map) => {
                if let Some(dests) = map.get_mut(&id.key) {
                    decrement(dests, &id.dest);
                    if dests.is_empty() {
                        map.remove(&id.key);
                    }
                }
            }
            Index::Fanout(set) => decrement(set, &id.dest),
            Index::Topic(trie) => trie.remove(&id.key, &id.dest),
            Index::Headers => {}
        }
    }
}

/// Count one binding fewer to `dest`, forgetting it at zero.
fn decrement<D: Ord>(counts: &mut SortedMap<D, usize>, dest: &D) {
    if let Some(n) = counts.get_mut(dest) {
        *n -= 1;
        if *n == 0 {
            counts.remove(dest);
        }
    }
}

/// The identity of a binding's arguments: RabbitMQ sorts the top level of the table (so
/// `{a, b}` and `{b, a}` are the same binding) but keeps nested tables as they are, and
/// keeps types (`1` is not `1.0`). Empty arguments, the common case, cost no allocation.
fn canonical_args(args: &Headers) -> String {
    if args.is_empty() {
        return String::new();
    }
    let mut pairs: Vec<(&String, &Value)> = args.iter().collect();
    crate::sort::sort_by(&mut pairs, |a, b| a.0.cmp(b.0));
    let mut s = vec![b'{'];
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            s.push(b',');
        }
        crate::json_print::compact_str(&mut s, k);
        s.push(b':');
        crate::json_print::compact(&mut s, v);
    }
    s.push(b'}');
    // (JSON text of `&str`s: UTF-8.)
    String::from_utf8(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use serde_json::json;

    pub(super) fn h(v: Value) -> Headers {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    pub(super) fn none() -> Headers {
        Headers::new()
    }

    pub(super) fn route<D: Clone + Eq + Hash + Ord>(r: &Router<D>, key: &str, headers: &Headers) -> Vec<D> {
        let mut out = Vec::new();
        r.route(key, headers, &mut out);
        out
    }

    pub(super) fn topic(bindings: &[(&str, u32)]) -> Router<u32> {
        let mut r = Router::new(RouteKind::Topic);
        for (k, d) in bindings {
            r.bind(k, &none(), *d);
        }
        r
    }

    #[test]
    fn kind_is_kept() {
        for k in [RouteKind::Direct, RouteKind::Fanout, RouteKind::Topic, RouteKind::Headers] {
            assert_eq!(Router::<u32>::new(k).kind(), k);
        }
    }

    #[test]
    fn direct_exact_key_only() {
        let mut r = Router::new(RouteKind::Direct);
        assert!(r.bind("a", &none(), 2));
        assert!(r.bind("a", &none(), 1));
        assert!(r.bind("b", &none(), 3));
        assert!(r.bind("", &none(), 4));
        assert_eq!(route(&r, "a", &none()), vec![1, 2]);
        assert_eq!(route(&r, "b", &none()), vec![3]);
        assert_eq!(route(&r, "", &none()), vec![4]);
        assert!(route(&r, "A", &none()).is_empty());
        assert!(route(&r, "a ", &none()).is_empty());
        assert!(route(&r, "*", &none()).is_empty());
    }

    #[test]
    fn direct_arguments_are_identity_not_routing() {
        let mut r = Router::new(RouteKind::Direct);
        assert!(r.bind("k", &none(), 1));
        assert!(r.bind("k", &h(json!({"x": 1})), 1));
        assert!(!r.bind("k", &h(json!({"x": 1})), 1));
        assert_eq!(r.len(), 2);
        // Two bindings, one destination: delivered once.
        assert_eq!(route(&r, "k", &h(json!({"y": 2}))), vec![1]);
        assert!(r.unbind("k", &none(), &1));
        assert_eq!(route(&r, "k", &none()), vec![1]);
        assert!(r.unbind("k", &h(json!({"x": 1})), &1));
        assert!(route(&r, "k", &none()).is_empty());
        assert!(r.is_empty());
    }

    #[test]
    fn fanout_routes_everywhere_once() {
        let mut r = Router::new(RouteKind::Fanout);
        r.bind("x", &none(), 3);
        r.bind("y", &none(), 1);
        r.bind("z", &none(), 3);
        assert_eq!(route(&r, "anything", &none()), vec![1, 3]);
        assert_eq!(route(&r, "", &none()), vec![1, 3]);
        assert_eq!(r.unbind_destination(&3), 2);
        assert_eq!(route(&r, "", &none()), vec![1]);
        assert!(!r.has_destination(&3));
        assert!(r.has_destination(&1));
    }

    #[test]
    fn bind_is_idempotent_and_unbind_exact() {
        let mut r = Router::new(RouteKind::Topic);
        assert!(r.bind("a.*", &none(), 1));
        assert!(!r.bind("a.*", &none(), 1));
        assert_eq!(r.len(), 1);
        assert!(!r.unbind("a.#", &none(), &1));
        assert!(!r.unbind("a.*", &none(), &2));
        assert!(!r.unbind("a.*", &h(json!({"q": 1})), &1));
        assert!(r.unbind("a.*", &none(), &1));
        assert!(!r.unbind("a.*", &none(), &1));
        assert!(r.is_empty());
        assert!(route(&r, "a.b", &none()).is_empty());
    }

    #[test]
    fn argument_identity_ignores_top_level_order_but_not_types() {
        let mut r = Router::new(RouteKind::Headers);
        assert!(r.bind("", &h(json!({"a": 1, "b": 2})), 1));
        assert!(!r.bind("", &h(json!({"b": 2, "a": 1})), 1));
        assert!(r.bind("", &h(json!({"a": 1.0, "b": 2})), 1));
        assert!(r.bind("", &h(json!({"a": "1", "b": 2})), 1));
        assert!(r.bind("", &h(json!({"n": {"p": 1, "q": 2}})), 1));
        assert!(r.bind("", &h(json!({"n": {"q": 2, "p": 1}})), 1));
        assert_eq!(r.len(), 5);
        assert!(r.unbind("", &h(json!({"b": 2, "a": 1})), &1));
        assert_eq!(r.len(), 4);
    }

    #[test]
    fn bindings_listing_and_unbind_destination() {
        let mut r = Router::new(RouteKind::Topic);
        r.bind("b", &none(), 2);
        r.bind("a", &none(), 2);
        r.bind("#", &h(json!({"k": "v"})), 1);
        r.bind("c", &none(), 3);
        let listed: Vec<(String, Headers, u32)> =
            r.bindings().map(|(k, a, d)| (k.to_owned(), a.clone(), *d)).collect();
        assert_eq!(
            listed,
            vec![
                ("#".into(), h(json!({"k": "v"})), 1),
                ("a".into(), none(), 2),
                ("b".into(), none(), 2),
                ("c".into(), none(), 3),
            ]
        );
        assert_eq!(r.unbind_destination(&2), 2);
        assert_eq!(r.unbind_destination(&2), 0);
        assert_eq!(r.len(), 2);
        assert_eq!(route(&r, "a", &none()), vec![1]);
        assert_eq!(route(&r, "c", &none()), vec![1, 3]);
        assert_eq!(r.unbind_destination(&1), 1);
        assert_eq!(route(&r, "c", &none()), vec![3]);
        assert_eq!(r.unbind_destination(&3), 1);
        assert!(r.is_empty());
    }

}
