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
//! Bindings are idempotent: binding the same (key, arguments, destination) twice keeps one
//! binding. Arguments are compared as RabbitMQ stores them: top-level order does not
//! matter, nested tables keep their order, and `1` and `1.0` are different arguments.

use std::collections::BTreeMap;

use crate::namemap::SortedMap;
use std::hash::Hash;

use crate::proto::methods::HashMap;
use crate::value::{Headers, Value};

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
    Direct(HashMap<String, SortedMap<D, usize>>),
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
    bindings: BTreeMap<BindingId<D>, Stored>,
    index: Index<D>,
}

impl<D: Clone + Eq + Hash + Ord> Router<D> {
    /// An empty router for an exchange of the given kind.
    pub fn new(kind: RouteKind) -> Self {
        let index = match kind {
            RouteKind::Direct => Index::Direct(HashMap::default()),
            RouteKind::Fanout => Index::Fanout(SortedMap::new()),
            RouteKind::Topic => Index::Topic(Trie::new()),
            RouteKind::Headers => Index::Headers,
        };
        Router { kind, bindings: BTreeMap::new(), index }
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
                *map.entry(id.key.clone()).or_default().get_or_insert_with(id.dest.clone(), || 0) += 1;
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
            Index::Headers => {
                let mut sorted: Vec<(&str, &Value)> = headers.iter().map(|(k, v)| (k.as_str(), v)).collect();
                crate::sort::sort_by(&mut sorted, |a, b| a.0.cmp(b.0));
                let mut last: Option<&D> = None;
                for (id, stored) in &self.bindings {
                    // Bindings are sorted by destination: skip the rest of a matched one's.
                    if last == Some(&id.dest) {
                        continue;
                    }
                    if stored.spec.as_ref().is_some_and(|spec| spec.matches(&sorted)) {
                        out.push(id.dest.clone());
                        last = Some(&id.dest);
                    }
                }
            }
        }
    }

    /// The bindings of `dest`, which are contiguous in the ordered binding set.
    fn dest_range<'a>(&'a self, dest: &'a D) -> impl Iterator<Item = (&'a BindingId<D>, &'a Stored)> + 'a {
        let start = BindingId { dest: dest.clone(), key: String::new(), args: String::new() };
        self.bindings.range(start..).take_while(move |(id, _)| id.dest == *dest)
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
    let mut s = String::from("{");
    for (i, (k, v)) in pairs.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        // Serializing a string or a `Value` to a `String` cannot fail.
        s.push_str(&serde_json::to_string(k).unwrap_or_default());
        s.push(':');
        s.push_str(&serde_json::to_string(v).unwrap_or_default());
    }
    s.push('}');
    s
}

// ---------------------------------------------------------------------------------------
// Topic

/// The words of a topic key or pattern: the empty string has no words at all; otherwise
/// split on every `.` (so `"."` is two empty words).
fn words(s: &str) -> impl Iterator<Item = &str> {
    let n = if s.is_empty() { 0 } else { usize::MAX };
    s.split('.').take(n)
}

/// True if the topic binding pattern matches the routing key (RabbitMQ semantics).
///
/// Both are split into words on `.`; the empty string is zero words. A `*` word matches
/// exactly one word (possibly the empty word), a `#` word matches zero or more words, and
/// any other word must equal the key's word. Runs in `O(pattern words × key words)`.
///
/// ```
/// use kombu::routing::topic_matches;
/// assert!(topic_matches("a.*.c", "a.b.c"));
/// assert!(topic_matches("a.#", "a"));
/// assert!(topic_matches("*.b", ".b")); // the empty first word is a word
/// assert!(topic_matches("#", ""));
/// assert!(!topic_matches("*", "")); // "" has no words at all
/// ```
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    let pat: Vec<&str> = words(pattern).collect();
    let m = pat.len();
    // cur[i]: the key words read so far can be matched by pat[..i].
    let mut cur = vec![false; m + 1];
    let mut next = vec![false; m + 1];
    cur[0] = true;
    hash_closure(&pat, &mut cur);
    for w in words(key) {
        next.iter_mut().for_each(|b| *b = false);
        let mut any = false;
        for i in 0..m {
            if !cur[i] {
                continue;
            }
            match pat[i] {
                // `#` eats this word and may eat more.
                "#" => next[i] = true,
                "*" => next[i + 1] = true,
                lit if lit == w => next[i + 1] = true,
                _ => continue,
            }
            any = true;
        }
        if !any {
            return false;
        }
        hash_closure(&pat, &mut next);
        std::mem::swap(&mut cur, &mut next);
    }
    cur[m]
}

/// A `#` may match zero words: reaching it means reaching past it too.
fn hash_closure(pat: &[&str], states: &mut [bool]) {
    for i in 0..pat.len() {
        if states[i] && pat[i] == "#" {
            states[i + 1] = true;
        }
    }
}

const ROOT: usize = 0;

/// A node of the topic trie: the patterns that share a prefix of words.
#[derive(Debug, Clone)]
struct TrieNode<D> {
    /// Literal-word edges.
    words: HashMap<Box<str>, usize>,
    /// The `*` edge.
    star: Option<usize>,
    /// The `#` edge.
    hash: Option<usize>,
    /// Reached through a `#` edge: may consume any number of further words.
    is_hash: bool,
    /// Destinations of patterns ending here, with how many bindings (different arguments)
    /// lead to each.
    dests: SortedMap<D, usize>,
}

impl<D> TrieNode<D> {
    fn new(is_hash: bool) -> Self {
        TrieNode { words: HashMap::default(), star: None, hash: None, is_hash, dests: SortedMap::default() }
    }

    fn is_unused(&self) -> bool {
        self.dests.is_empty() && self.words.is_empty() && self.star.is_none() && self.hash.is_none()
    }
}

/// An edge of the trie, as seen from its parent.
#[derive(Debug, Clone, Copy)]
enum Edge<'a> {
    Word(&'a str),
    Star,
    Hash,
}

impl<'a> Edge<'a> {
    fn of(word: &'a str) -> Self {
        match word {
            "*" => Edge::Star,
            "#" => Edge::Hash,
            w => Edge::Word(w),
        }
    }
}

/// The word trie of a topic exchange's binding patterns. Nodes live in an arena; freed
/// slots are reused.
#[derive(Debug, Clone)]
struct Trie<D> {
    nodes: Vec<TrieNode<D>>,
    free: Vec<usize>,
}

impl<D: Clone + Ord> Trie<D> {
    fn new() -> Self {
        Trie { nodes: vec![TrieNode::new(false)], free: Vec::new() }
    }

    fn child(&self, node: usize, edge: Edge<'_>) -> Option<usize> {
        let n = &self.nodes[node];
        match edge {
            Edge::Word(w) => n.words.get(w).copied(),
            Edge::Star => n.star,
            Edge::Hash => n.hash,
        }
    }

    fn alloc(&mut self, is_hash: bool) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.nodes[i] = TrieNode::new(is_hash);
                i
            }
            None => {
                self.nodes.push(TrieNode::new(is_hash));
                self.nodes.len() - 1
            }
        }
    }

    fn insert(&mut self, pattern: &str, dest: &D) {
        let mut node = ROOT;
        for w in words(pattern) {
            let edge = Edge::of(w);
            node = match self.child(node, edge) {
                Some(c) => c,
                None => {
                    let c = self.alloc(matches!(edge, Edge::Hash));
                    let n = &mut self.nodes[node];
                    match edge {
                        Edge::Word(w) => {
                            n.words.insert(w.into(), c);
                        }
                        Edge::Star => n.star = Some(c),
                        Edge::Hash => n.hash = Some(c),
                    }
                    c
                }
            };
        }
        *self.nodes[node].dests.get_or_insert_with(dest.clone(), || 0) += 1;
    }

    fn remove(&mut self, pattern: &str, dest: &D) {
        let mut path: Vec<(usize, Edge<'_>)> = Vec::new();
        let mut node = ROOT;
        for w in words(pattern) {
            let edge = Edge::of(w);
            let Some(c) = self.child(node, edge) else { return };
            path.push((node, edge));
            node = c;
        }
        decrement(&mut self.nodes[node].dests, dest);
        // Prune the branch back up while it leads nowhere.
        while let Some((parent, edge)) = path.pop() {
            if !self.nodes[node].is_unused() {
                break;
            }
            let p = &mut self.nodes[parent];
            match edge {
                Edge::Word(w) => {
                    p.words.remove(w);
                }
                Edge::Star => p.star = None,
                Edge::Hash => p.hash = None,
            }
            self.nodes[node].dests.clear();
            self.free.push(node);
            node = parent;
        }
    }

    /// Add, to `set`, the `#` children of its nodes (transitively: `#.#`), then sort and
    /// deduplicate it.
    fn close(&self, set: &mut Vec<usize>) {
        let mut i = 0;
        while i < set.len() {
            if let Some(h) = self.nodes[set[i]].hash {
                set.push(h);
            }
            i += 1;
        }
        set.sort_unstable();
        set.dedup();
    }

    /// Breadth-first simulation: the set of trie nodes matching the words read so far.
    fn route(&self, key: &str, out: &mut Vec<D>) {
        let mut cur = vec![ROOT];
        let mut next = Vec::new();
        self.close(&mut cur);
        for w in words(key) {
            next.clear();
            for &i in &cur {
                let n = &self.nodes[i];
                if n.is_hash {
                    next.push(i);
                }
                if let Some(&c) = n.words.get(w) {
                    next.push(c);
                }
                if let Some(c) = n.star {
                    next.push(c);
                }
            }
            if next.is_empty() {
                return;
            }
            self.close(&mut next);
            std::mem::swap(&mut cur, &mut next);
        }
        let mut hits = cur.iter().map(|&i| &self.nodes[i].dests).filter(|d| !d.is_empty());
        let Some(first) = hits.next() else { return };
        let start = out.len();
        out.extend(first.keys().cloned());
        let mut merged = false;
        for d in hits {
            out.extend(d.keys().cloned());
            merged = true;
        }
        if merged {
            // Sort and deduplicate only what this call appended.
            let mut tail = out.split_off(start);
            tail.sort_unstable();
            tail.dedup();
            out.append(&mut tail);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Headers

/// The `x-match` modes of a headers binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum XMatch {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

/// A headers binding prepared for routing: the arguments that take part, sorted by key
/// (the way RabbitMQ keeps them), so that a message's sorted headers are merged against
/// them without hashing. Must agree with [`headers_match`].
#[derive(Debug, Clone)]
struct HeadersSpec {
    any: bool,
    args: Vec<(String, Value)>,
}

impl HeadersSpec {
    fn new(binding_args: &Headers) -> Self {
        let mode = x_match(binding_args);
        let with_x = matches!(mode, XMatch::AllWithX | XMatch::AnyWithX);
        let mut args: Vec<(String, Value)> = binding_args
            .iter()
            .filter(|(k, _)| takes_part(k, with_x))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        crate::sort::sort_by(&mut args, |a, b| a.0.cmp(&b.0));
        HeadersSpec { any: matches!(mode, XMatch::Any | XMatch::AnyWithX), args }
    }

    /// `headers` sorted by key.
    fn matches(&self, headers: &[(&str, &Value)]) -> bool {
        let mut j = 0;
        for (key, want) in &self.args {
            while j < headers.len() && headers[j].0 < key.as_str() {
                j += 1;
            }
            let ok = j < headers.len()
                && headers[j].0 == key
                && (want.is_null() || loose_eq(want, headers[j].1));
            if ok == self.any {
                return self.any;
            }
        }
        !self.any
    }
}

fn x_match(binding_args: &Headers) -> XMatch {
    match binding_args.get("x-match") {
        Some(Value::String(s)) => match s.as_str() {
            "any" => XMatch::Any,
            "all-with-x" => XMatch::AllWithX,
            "any-with-x" => XMatch::AnyWithX,
            _ => XMatch::All,
        },
        _ => XMatch::All,
    }
}

/// Whether a binding argument is compared: never `x-match`, other `x-` keys only in the
/// `-with-x` modes.
fn takes_part(key: &str, with_x: bool) -> bool {
    key != "x-match" && (with_x || !key.starts_with("x-"))
}

/// Headers-exchange match of binding arguments against message headers, as RabbitMQ 3.x
/// (`rabbit_exchange_type_headers`) does it.
///
/// * `x-match` (a string) selects the mode: `all` (the default, also for any value
///   RabbitMQ would have rejected), `any`, `all-with-x` or `any-with-x`. The `x-match`
///   argument itself never takes part; other arguments whose key starts with `x-` are
///   ignored by `all`/`any` and compared by the `-with-x` modes.
/// * `all`: every remaining argument matches a header (so no arguments match every
///   message); `any`: at least one does (so no arguments match nothing).
/// * An argument matches when the header of that key exists and either the argument is
///   `null` (AMQP void: presence is enough) or the values are equal the way Erlang's `==`
///   compares the decoded field values: types are *not* compared at the top level, so
///   `1` equals `1.0` (numeric equality), but `1` never equals `"1"` nor `true`, and an
///   empty array equals an empty table. Inside arrays and tables the field types *are*
///   compared (`[1]` is not `[1.0]`) and tables compare in order (`{"p":1,"q":2}` is not
///   `{"q":2,"p":1}`).
pub fn headers_match(binding_args: &Headers, headers: &Headers) -> bool {
    let mode = x_match(binding_args);
    let with_x = matches!(mode, XMatch::AllWithX | XMatch::AnyWithX);
    let any = matches!(mode, XMatch::Any | XMatch::AnyWithX);
    for (key, want) in binding_args {
        if !takes_part(key, with_x) {
            continue;
        }
        let ok = match headers.get(key) {
            None => false,
            Some(have) => want.is_null() || loose_eq(want, have),
        };
        if ok == any {
            // any: the first hit decides; all: the first miss decides.
            return any;
        }
    }
    !any
}

/// Top-level field values: Erlang `==` on the values without their type tags.
fn loose_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => numbers_eq(x, y),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, Value::Null) => true,
        (Value::Array(x), Value::Array(y)) => elements_eq(x, y),
        (Value::Object(x), Value::Object(y)) => tables_eq(x, y),
        // Both decode to Erlang lists: only the empty ones are equal.
        (Value::Array(x), Value::Object(y)) | (Value::Object(y), Value::Array(x)) => {
            x.is_empty() && y.is_empty()
        }
        _ => false,
    }
}

/// Nested field values: `{Type, Value}` pairs, so the types must agree too (an integer is
/// not a float), then the values compare with `==`.
fn typed_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.is_f64() == y.is_f64() && numbers_eq(x, y),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Null, Value::Null) => true,
        (Value::Array(x), Value::Array(y)) => elements_eq(x, y),
        (Value::Object(x), Value::Object(y)) => tables_eq(x, y),
        _ => false,
    }
}

fn elements_eq(x: &[Value], y: &[Value]) -> bool {
    x.len() == y.len() && x.iter().zip(y).all(|(a, b)| typed_eq(a, b))
}

/// Tables are lists of `{Key, Type, Value}`: equal keys and values, in the same order.
fn tables_eq(x: &Headers, y: &Headers) -> bool {
    x.len() == y.len() && x.iter().zip(y).all(|((ka, a), (kb, b))| ka == kb && typed_eq(a, b))
}

/// Exact numeric equality across integers and floats (Erlang compares an integer and a
/// float exactly, as if with unbounded precision).
fn numbers_eq(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    fn int(n: &serde_json::Number) -> Option<i128> {
        n.as_i64().map(i128::from).or_else(|| n.as_u64().map(i128::from))
    }
    match (int(x), int(y)) {
        (Some(a), Some(b)) => a == b,
        (Some(i), None) => y.as_f64().is_some_and(|f| float_eq_int(f, i)),
        (None, Some(i)) => x.as_f64().is_some_and(|f| float_eq_int(f, i)),
        (None, None) => x.as_f64() == y.as_f64(),
    }
}

fn float_eq_int(f: f64, i: i128) -> bool {
    // |i| < 2^64, so a float outside (-2^65, 2^65) cannot equal it and the cast below is
    // exact for the rest (an integral float in that range is an integer in i128's range).
    f.is_finite() && f.fract() == 0.0 && f.abs() < 3.7e19 && f as i128 == i
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use serde_json::json;

    fn h(v: Value) -> Headers {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn none() -> Headers {
        Headers::new()
    }

    fn route<D: Clone + Eq + Hash + Ord>(r: &Router<D>, key: &str, headers: &Headers) -> Vec<D> {
        let mut out = Vec::new();
        r.route(key, headers, &mut out);
        out
    }

    fn topic(bindings: &[(&str, u32)]) -> Router<u32> {
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

    #[test]
    fn topic_basics() {
        let r = topic(&[("a.b.c", 1), ("a.*.c", 2), ("a.#", 3), ("#.c", 4), ("*", 5), ("#", 6)]);
        assert_eq!(route(&r, "a.b.c", &none()), vec![1, 2, 3, 4, 6]);
        assert_eq!(route(&r, "a.x.c", &none()), vec![2, 3, 4, 6]);
        assert_eq!(route(&r, "a", &none()), vec![3, 5, 6]);
        assert_eq!(route(&r, "c", &none()), vec![4, 5, 6]);
        assert_eq!(route(&r, "b.c.d", &none()), vec![6]);
        assert_eq!(route(&r, "", &none()), vec![6]);
    }

    #[test]
    fn topic_dedups_a_destination_bound_many_ways() {
        let r = topic(&[("a.*", 7), ("#", 7), ("a.b", 7), ("*.b", 7), ("#.b", 1)]);
        assert_eq!(route(&r, "a.b", &none()), vec![1, 7]);
        // Appends after what is already in `out`, without touching it.
        let mut out = vec![9, 7];
        r.route("a.b", &none(), &mut out);
        assert_eq!(out, vec![9, 7, 1, 7]);
    }

    #[test]
    fn topic_star_never_matches_zero_words() {
        assert!(!topic_matches("a.*", "a"));
        assert!(!topic_matches("*", ""));
        assert!(!topic_matches("*.#", ""));
        assert!(!topic_matches("#.*", ""));
        assert!(topic_matches("#.*", "a"));
        assert!(!topic_matches("a.*.b", "a.b"));
        assert!(topic_matches("a.*.b", "a..b"));
        let r = topic(&[("a.*", 1), ("*", 2)]);
        assert!(route(&r, "a", &none()) == vec![2]);
        assert!(route(&r, "", &none()).is_empty());
    }

    #[test]
    fn topic_empty_words() {
        // "" is zero words; "." is two empty words.
        assert!(topic_matches("", ""));
        assert!(!topic_matches("", "."));
        assert!(!topic_matches(".", ""));
        assert!(topic_matches(".", "."));
        assert!(topic_matches("*.*", "."));
        assert!(topic_matches("*.*", "a."));
        assert!(topic_matches("*.*", ".a"));
        assert!(!topic_matches("*", "."));
        assert!(topic_matches("a.", "a."));
        assert!(!topic_matches("a.", "a"));
        assert!(topic_matches("a.*", "a."));
        assert!(topic_matches("a.#", "a."));
        assert!(topic_matches("#.a", ".a"));
        assert!(topic_matches("a..b", "a..b"));
        assert!(!topic_matches("a..b", "a.b"));
        assert!(!topic_matches("", "a"));
        let r = topic(&[("", 1), (".", 2), ("*", 3), ("#", 4), ("*.*", 5), ("a.", 6)]);
        assert_eq!(route(&r, "", &none()), vec![1, 4]);
        assert_eq!(route(&r, ".", &none()), vec![2, 4, 5]);
        assert_eq!(route(&r, "a.", &none()), vec![4, 5, 6]);
        assert_eq!(route(&r, "a", &none()), vec![3, 4]);
    }

    #[test]
    fn topic_several_hashes() {
        assert!(topic_matches("#.#", ""));
        assert!(topic_matches("#.#", "a.b.c"));
        assert!(topic_matches("#.a.#", "a"));
        assert!(topic_matches("#.a.#", "x.y.a.z"));
        assert!(!topic_matches("#.a.#", "x.y.z"));
        assert!(topic_matches("a.#.b.#.c", "a.b.c"));
        assert!(topic_matches("a.#.b.#.c", "a.x.b.y.y.c"));
        assert!(!topic_matches("a.#.b.#.c", "a.x.c.b"));
        assert!(topic_matches("#.*.#", "a"));
        assert!(!topic_matches("#.*.#", ""));
        assert!(topic_matches("#.*.*.#", "a.b"));
        assert!(!topic_matches("#.*.*.#", "a"));
        let r = topic(&[("#.#", 1), ("#.a.#", 2), ("a.#.b.#.c", 3), ("#.*.*.#", 4)]);
        assert_eq!(route(&r, "a.b.c", &none()), vec![1, 2, 3, 4]);
        assert_eq!(route(&r, "a", &none()), vec![1, 2]);
        assert_eq!(route(&r, "", &none()), vec![1]);
    }

    #[test]
    fn topic_pathological_hashes_stay_fast() {
        // Naive backtracking is exponential here; the state-set simulation is not.
        let pattern = vec!["#"; 40].join(".") + ".z";
        let key = vec!["a"; 200].join(".");
        assert!(!topic_matches(&pattern, &key));
        let r = topic(&[(&pattern, 1)]);
        assert!(route(&r, &key, &none()).is_empty());
        assert_eq!(route(&r, &(key + ".z"), &none()), vec![1]);
    }

    #[test]
    fn topic_wildcard_words_in_keys_are_plain_words() {
        assert!(topic_matches("*", "#"));
        assert!(topic_matches("#", "*"));
        assert!(!topic_matches("a", "*"));
        assert!(!topic_matches("a.b", "a.#"));
        assert!(!topic_matches("a.b", "*.b"));
        let r = topic(&[("a.b", 1), ("a.*", 2)]);
        assert_eq!(route(&r, "a.#", &none()), vec![2]);
    }

    #[test]
    fn topic_unbind_prunes_and_keeps_siblings() {
        let mut r = topic(&[("a.b.c", 1), ("a.b", 2), ("a.#", 3), ("a.*.c", 4)]);
        assert!(r.unbind("a.b.c", &none(), &1));
        assert_eq!(route(&r, "a.b.c", &none()), vec![3, 4]);
        assert_eq!(route(&r, "a.b", &none()), vec![2, 3]);
        assert!(r.unbind("a.#", &none(), &3));
        assert_eq!(route(&r, "a.b.c", &none()), vec![4]);
        assert!(r.unbind("a.b", &none(), &2));
        assert!(r.unbind("a.*.c", &none(), &4));
        assert!(r.is_empty());
        let Index::Topic(trie) = &r.index else { unreachable!() };
        assert!(trie.nodes[ROOT].is_unused());
        assert_eq!(trie.nodes.len() - 1, trie.free.len());
        // Freed nodes are reused.
        r.bind("x.y", &none(), 5);
        let Index::Topic(trie) = &r.index else { unreachable!() };
        assert_eq!((trie.nodes.len(), trie.free.len()), (7, 4));
        assert_eq!(route(&r, "x.y", &none()), vec![5]);
    }

    #[test]
    fn topic_same_pattern_two_arguments_one_destination() {
        let mut r = Router::new(RouteKind::Topic);
        r.bind("a.*", &none(), 1);
        r.bind("a.*", &h(json!({"v": 1})), 1);
        assert_eq!(route(&r, "a.b", &none()), vec![1]);
        r.unbind("a.*", &none(), &1);
        assert_eq!(route(&r, "a.b", &none()), vec![1]);
        r.unbind("a.*", &h(json!({"v": 1})), &1);
        assert!(route(&r, "a.b", &none()).is_empty());
    }

    #[test]
    fn headers_all_and_any() {
        let all = h(json!({"x-match": "all", "a": 1, "b": "x"}));
        let any = h(json!({"x-match": "any", "a": 1, "b": "x"}));
        assert!(headers_match(&all, &h(json!({"a": 1, "b": "x", "c": 3}))));
        assert!(!headers_match(&all, &h(json!({"a": 1}))));
        assert!(!headers_match(&all, &h(json!({"a": 1, "b": "y"}))));
        assert!(headers_match(&any, &h(json!({"a": 1}))));
        assert!(headers_match(&any, &h(json!({"b": "x", "a": 2}))));
        assert!(!headers_match(&any, &h(json!({"a": 2, "b": "y"}))));
        assert!(!headers_match(&any, &none()));
        // x-match omitted (or unknown) means all.
        assert!(headers_match(&h(json!({"a": 1})), &h(json!({"a": 1}))));
        assert!(!headers_match(&h(json!({"a": 1, "b": 2})), &h(json!({"a": 1}))));
        assert!(!headers_match(&h(json!({"x-match": "bogus", "a": 1, "b": 2})), &h(json!({"a": 1}))));
        assert!(!headers_match(&h(json!({"x-match": 1, "a": 1, "b": 2})), &h(json!({"a": 1}))));
    }

    #[test]
    fn headers_empty_arguments() {
        assert!(headers_match(&none(), &none()));
        assert!(headers_match(&none(), &h(json!({"a": 1}))));
        assert!(headers_match(&h(json!({"x-match": "all"})), &none()));
        assert!(!headers_match(&h(json!({"x-match": "any"})), &h(json!({"a": 1}))));
        assert!(!headers_match(&h(json!({"x-match": "any-with-x"})), &h(json!({"a": 1}))));
        assert!(headers_match(&h(json!({"x-match": "all-with-x"})), &none()));
    }

    #[test]
    fn headers_x_arguments() {
        let plain_all = h(json!({"x-foo": "1"}));
        let plain_any = h(json!({"x-match": "any", "x-foo": "1", "a": 2}));
        let with_all = h(json!({"x-match": "all-with-x", "x-foo": "1"}));
        let with_any = h(json!({"x-match": "any-with-x", "x-foo": "1", "a": 2}));
        // all/any ignore x- arguments: {x-foo} alone is an empty `all`.
        assert!(headers_match(&plain_all, &none()));
        assert!(!headers_match(&plain_any, &h(json!({"x-foo": "1"}))));
        assert!(headers_match(&plain_any, &h(json!({"a": 2}))));
        assert!(headers_match(&with_all, &h(json!({"x-foo": "1"}))));
        assert!(!headers_match(&with_all, &h(json!({"x-foo": "2"}))));
        assert!(!headers_match(&with_all, &none()));
        assert!(headers_match(&with_any, &h(json!({"x-foo": "1"}))));
        assert!(headers_match(&with_any, &h(json!({"a": 2}))));
        assert!(!headers_match(&with_any, &h(json!({"x-foo": 1}))));
        // Only the "x-" prefix, case-sensitively.
        assert!(!headers_match(&h(json!({"X-foo": "1"})), &none()));
        // The x-match header of a message is just another header.
        assert!(headers_match(&h(json!({"x-match": "all-with-x"})), &h(json!({"x-match": "any"}))));
    }

    #[test]
    fn headers_typed_values() {
        let m = |b: Value, v: Value| headers_match(&h(json!({"a": b})), &h(json!({"a": v})));
        assert!(m(json!(1), json!(1)));
        assert!(m(json!(1), json!(1.0)));
        assert!(m(json!(1.0), json!(1)));
        assert!(m(json!(0), json!(-0.0)));
        assert!(m(json!(-3), json!(-3.0)));
        assert!(!m(json!(1), json!(1.5)));
        assert!(!m(json!(1), json!("1")));
        assert!(!m(json!("1"), json!(1)));
        assert!(!m(json!(1), json!(true)));
        assert!(!m(json!(true), json!(1)));
        assert!(!m(json!(false), json!(0)));
        assert!(!m(json!(true), json!("true")));
        assert!(m(json!(true), json!(true)));
        assert!(!m(json!(true), json!(false)));
        assert!(m(json!("x"), json!("x")));
        assert!(!m(json!("x"), json!("X")));
        assert!(m(json!(u64::MAX), json!(u64::MAX)));
        assert!(!m(json!(u64::MAX), json!(-1)));
        assert!(m(json!(9007199254740992_i64), json!(9007199254740992.0)));
        assert!(!m(json!(9007199254740993_i64), json!(9007199254740992.0)));
        // Containers: types matter inside, order matters in tables, [] == {}.
        assert!(m(json!([1, "a"]), json!([1, "a"])));
        assert!(!m(json!([1]), json!([1.0])));
        assert!(!m(json!([1]), json!([1, 1])));
        assert!(m(json!([]), json!({})));
        assert!(m(json!({}), json!([])));
        assert!(!m(json!([1]), json!({"a": 1})));
        assert!(m(json!({"p": 1, "q": [2]}), json!({"p": 1, "q": [2]})));
        assert!(!m(json!({"p": 1, "q": 2}), json!({"q": 2, "p": 1})));
        assert!(!m(json!({"p": 1}), json!({"p": 1.0})));
        assert!(!m(json!([[]]), json!([{}])));
        assert!(!m(json!("a"), json!(["a"])));
    }

    #[test]
    fn headers_void_means_presence() {
        let b = h(json!({"a": null}));
        for v in [json!(null), json!(0), json!(""), json!(false), json!([]), json!({"x": 1})] {
            assert!(headers_match(&b, &h(json!({ "a": v }))));
        }
        assert!(!headers_match(&b, &h(json!({"b": null}))));
        assert!(!headers_match(&b, &none()));
        // A void header only matches a void (or presence) argument.
        assert!(!headers_match(&h(json!({"a": 0})), &h(json!({"a": null}))));
        assert!(!headers_match(&h(json!({"a": "undefined"})), &h(json!({"a": null}))));
        // any: one present key is enough.
        assert!(headers_match(&h(json!({"x-match": "any", "a": null, "b": 1})), &h(json!({"a": 5}))));
    }

    #[test]
    fn headers_router_dedups_in_order() {
        let mut r = Router::new(RouteKind::Headers);
        r.bind("", &h(json!({"a": 1})), 3u32);
        r.bind("", &h(json!({"x-match": "any", "a": 1, "b": 2})), 3);
        r.bind("ignored", &h(json!({"b": 2})), 1);
        r.bind("", &none(), 2);
        r.bind("", &h(json!({"c": null})), 0);
        assert_eq!(route(&r, "any key", &h(json!({"a": 1, "b": 2}))), vec![1, 2, 3]);
        assert_eq!(route(&r, "", &h(json!({"a": 1.0}))), vec![2, 3]);
        assert_eq!(route(&r, "", &h(json!({"c": "v"}))), vec![0, 2]);
        assert_eq!(route(&r, "", &none()), vec![2]);
        assert_eq!(r.unbind_destination(&3), 2);
        assert_eq!(route(&r, "", &h(json!({"a": 1, "b": 2}))), vec![1, 2]);
    }

    #[test]
    fn topic_scales_to_many_bindings() {
        let mut r = Router::new(RouteKind::Topic);
        for i in 0..10_000u32 {
            r.bind(&format!("s{}.k{}.*", i % 100, i), &none(), i);
        }
        r.bind("#", &none(), 10_000);
        assert_eq!(r.len(), 10_001);
        assert_eq!(route(&r, "s7.k107.x", &none()), vec![107, 10_000]);
        assert_eq!(route(&r, "s7.k108.x", &none()), vec![10_000]);
    }
}
