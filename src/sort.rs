//! One sort for the crate's cold paths.

use std::cmp::Ordering;

/// Sort `items` by `cmp`, stably, through the one copy of the standard library's sort that
/// every caller shares (a permutation of indices, compared through a `dyn` comparator). Each
/// `sort_by` with its own closure or element type is a separate copy of the sort, ~4 KB of the
/// wasm module; this is for snapshots, error messages and bind-time work, not for hot paths.
pub(crate) fn sort_by<T>(items: &mut [T], cmp: impl Fn(&T, &T) -> Ordering) {
    if items.len() < 2 {
        return;
    }
    let mut order = order_by(items.len(), &mut |a, b| cmp(&items[a], &items[b]));
    permute(&mut order, &mut |a, b| items.swap(a, b));
}

/// The indices `0..n` sorted stably by `cmp` (not generic: one copy for every caller).
fn order_by(n: usize, cmp: &mut dyn FnMut(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_unstable_by(|a, b| cmp(*a, *b).then(a.cmp(b)));
    order
}

/// `items[k]` takes the item at `order[k]`, by `swap`s (not generic either: only the swap
/// depends on the items' type): follow each cycle of the permutation, marking each place done
/// (`order[k] = k`) as it is filled.
fn permute(order: &mut [usize], swap: &mut dyn FnMut(usize, usize)) {
    for start in 0..order.len() {
        let mut k = start;
        loop {
            let from = order[k];
            order[k] = k;
            if from == start {
                break;
            }
            swap(k, from);
            k = from;
        }
    }
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

    #[test]
    fn agrees_with_the_standard_stable_sort() {
        // Long cycles, fixed points and runs of equal keys in one permutation.
        let v: Vec<(u32, usize)> = (0..200).map(|i| ((i * 7919 % 23) as u32, i)).collect();
        let mut ours = v.clone();
        super::sort_by(&mut ours, |x, y| x.0.cmp(&y.0));
        let mut std = v;
        std.sort_by_key(|x| x.0);
        assert_eq!(ours, std);
    }
}
