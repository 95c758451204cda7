//! One sort for the crate's cold paths.

use std::cmp::Ordering;

/// Sort `items` by `cmp`, stably, through the one copy of the standard library's sort that
/// every caller shares (a permutation of indices, compared through a `dyn` comparator). Each
/// `sort_by` with its own closure or element type is a separate copy of the sort, ~4 KB of the
/// wasm module; this is for snapshots, error messages and bind-time work, not for hot paths.
pub(crate) fn sort_by<T>(items: &mut Vec<T>, cmp: impl Fn(&T, &T) -> Ordering) {
    if items.len() < 2 {
        return;
    }
    let mut order: Vec<usize> = (0..items.len()).collect();
    {
        let by: &mut dyn FnMut(&usize, &usize) -> Ordering = &mut |a, b| cmp(&items[*a], &items[*b]).then(a.cmp(b));
        order.sort_unstable_by(by);
    }
    let mut slots: Vec<Option<T>> = items.drain(..).map(Some).collect();
    items.extend(order.into_iter().filter_map(|i| slots[i].take()));
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn sorts_stably() {
        let mut v = vec![(3, "a"), (1, "b"), (3, "c"), (2, "d"), (1, "e")];
        super::sort_by(&mut v, |x, y| x.0.cmp(&y.0));
        assert_eq!(v, [(1, "b"), (1, "e"), (2, "d"), (3, "a"), (3, "c")]);
        let mut empty: Vec<u8> = Vec::new();
        super::sort_by(&mut empty, |x, y| x.cmp(y));
        assert!(empty.is_empty());
    }
}
