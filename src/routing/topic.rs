//! Topic exchanges: the word trie the router keeps of its binding patterns, and
//! [`topic_matches`], the same rules for one pattern.

use crate::namemap::SortedMap;

use super::decrement;

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
    words: SortedMap<Box<str>, usize>,
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
        TrieNode { words: SortedMap::default(), star: None, hash: None, is_hash, dests: SortedMap::default() }
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
pub(super) struct Trie<D> {
    nodes: Vec<TrieNode<D>>,
    free: Vec<usize>,
}

impl<D: Clone + Ord> Trie<D> {
    pub(super) fn new() -> Self {
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

    pub(super) fn insert(&mut self, pattern: &str, dest: &D) {
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

    pub(super) fn remove(&mut self, pattern: &str, dest: &D) {
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
    pub(super) fn route(&self, key: &str, out: &mut Vec<D>) {
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

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::routing::tests::{h, none, route, topic};
    use crate::routing::{Index, RouteKind, Router};
    use serde_json::json;

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
