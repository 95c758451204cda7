//! [`SortedMap`], and [`NameMap`] for the registries (transports, serializers, compression
//! methods).

use std::borrow::Borrow;

/// A map kept as a `Vec` sorted by key: for small maps read far more often than written (the
/// registries, a routing key's destinations). Same order and lookups as a `BTreeMap`, faster
/// to iterate, and a fraction of its code in the WebAssembly module (each `BTreeMap<K, V>`
/// brings several KB); inserting is O(n).
#[derive(Debug, Clone)]
pub struct SortedMap<K, V> {
    entries: Vec<(K, V)>,
}

/// A map from names to values (the registries).
pub type NameMap<V> = SortedMap<String, V>;

impl<K, V> Default for SortedMap<K, V> {
    fn default() -> Self {
        SortedMap { entries: Vec::new() }
    }
}

impl<K: Ord, V> SortedMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> std::result::Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.entries.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    /// The value under `key`.
    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &self.entries[i].1)
    }

    /// True if `key` is in the map.
    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    /// Set `key` to `value`; the value it replaces, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    /// The value under `key`, inserting `make()` first if there is none.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.find(&key) {
            Ok(i) => i,
            Err(i) => {
                self.entries.insert(i, (key, make()));
                i
            }
        };
        &mut self.entries[i].1
    }

    /// The value under `key`, to change.
    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &mut self.entries[i].1)
    }

    /// The entries from the first whose key is not less than `key` on, in order.
    pub fn iter_from<'a, Q: Ord + ?Sized>(&'a self, key: &Q) -> impl Iterator<Item = (&'a K, &'a V)> + 'a
    where
        K: Borrow<Q>,
    {
        let i = self.entries.partition_point(|(k, _)| k.borrow() < key);
        self.entries[i..].iter().map(|(k, v)| (k, v))
    }

    /// The entry of `key`: the key as stored, and its value.
    #[cfg_attr(all(target_arch = "wasm32", not(feature = "memory")), allow(dead_code))] // (the broker's)
    pub fn get_key_value<Q: Ord + ?Sized>(&self, key: &Q) -> Option<(&K, &V)>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| (&self.entries[i].0, &self.entries[i].1))
    }

    /// Take `key` out of the map.
    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| self.entries.remove(i).1)
    }
}

impl<K, V> SortedMap<K, V> {
    /// True if the map is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Remove every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The values, in the order of their keys.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// `(key, value)` pairs, in order, the values to change.
    #[cfg_attr(all(target_arch = "wasm32", not(feature = "memory")), allow(dead_code))] // (the broker's)
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// `(key, value)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

impl<K, V> IntoIterator for SortedMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    /// The entries, in key order.
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::{NameMap, SortedMap};

    #[test]
    fn behaves_like_a_sorted_map() {
        let mut m = NameMap::new();
        for (i, k) in ["zstd", "bzip2", "lzma", "gzip"].iter().enumerate() {
            assert_eq!(m.insert((*k).to_owned(), i), None);
        }
        assert_eq!(m.insert("lzma".into(), 9), Some(2));
        assert_eq!(m.keys().map(String::as_str).collect::<Vec<_>>(), ["bzip2", "gzip", "lzma", "zstd"]);
        assert_eq!(m.values().copied().collect::<Vec<_>>(), [1, 3, 9, 0]);
        assert_eq!((m.get("gzip"), m.get("nope"), m.contains_key("zstd")), (Some(&3), None, true));
        assert_eq!(m.remove("bzip2"), Some(1));
        assert_eq!(m.remove("bzip2"), None);
        assert_eq!(m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(), ["gzip=3", "lzma=9", "zstd=0"]);
        let mut counts: SortedMap<u32, usize> = SortedMap::new();
        for k in [5, 1, 5, 3] {
            *counts.get_or_insert_with(k, || 0) += 1;
        }
        assert_eq!(counts.iter().map(|(k, v)| (*k, *v)).collect::<Vec<_>>(), [(1, 1), (3, 1), (5, 2)]);
        *counts.get_mut(&5).unwrap() -= 1;
        assert_eq!((counts.get(&5), counts.len()), (Some(&1), 3));
        counts.clear();
        assert!(counts.is_empty());
    }
}
