//! [`NameMap`]: the registries' map from names to entries (transports, serializers,
//! compression methods).

/// A map from names to values kept as a sorted `Vec`: for registries of a handful of entries,
/// read far more often than written. Same order and lookups as a `BTreeMap`, a fraction of
/// its code in the WebAssembly module (each `BTreeMap<K, V>` brings several KB).
#[derive(Debug, Clone)]
pub struct NameMap<V> {
    entries: Vec<(String, V)>,
}

impl<V> Default for NameMap<V> {
    fn default() -> Self {
        NameMap { entries: Vec::new() }
    }
}

impl<V> NameMap<V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, name: &str) -> std::result::Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.as_str().cmp(name))
    }

    /// The value under `name`.
    pub fn get(&self, name: &str) -> Option<&V> {
        self.find(name).ok().map(|i| &self.entries[i].1)
    }

    /// True if `name` is in the map.
    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    /// Set `name` to `value`; the value it replaces, if any.
    pub fn insert(&mut self, name: String, value: V) -> Option<V> {
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (name, value));
                None
            }
        }
    }

    /// Take `name` out of the map.
    pub fn remove(&mut self, name: &str) -> Option<V> {
        self.find(name).ok().map(|i| self.entries.remove(i).1)
    }

    /// The names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// The values, in the order of their names.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// `(name, value)` pairs, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::NameMap;

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
    }
}
