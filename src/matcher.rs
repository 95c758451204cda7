//! Pattern matchers (Kombu's `kombu.matcher`): a registry of named matchers with the built-in
//! `glob` (the default, Python's `fnmatch`) and `pcre` (regular expressions).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use crate::error::{Error, Result};

/// A matcher: `(data, pattern) -> matches`.
pub type MatchFn = Arc<dyn Fn(&str, &str) -> Result<bool> + Send + Sync>;

fn registry() -> &'static RwLock<BTreeMap<String, MatchFn>> {
    static R: OnceLock<RwLock<BTreeMap<String, MatchFn>>> = OnceLock::new();
    R.get_or_init(|| {
        let mut m: BTreeMap<String, MatchFn> = BTreeMap::new();
        m.insert("glob".into(), Arc::new(|data, pattern| Ok(glob_regex(pattern)?.is_match(data))));
        m.insert(
            "pcre".into(),
            Arc::new(|data, pattern| {
                // Python's re.match anchors at the start only.
                let re = regex_lite::Regex::new(&format!("^(?:{pattern})"))
                    .map_err(|e| Error::InvalidPattern { matcher: "pcre", pattern: pattern.to_owned(), reason: e.to_string() })?;
                Ok(re.is_match(data))
            }),
        );
        RwLock::new(m)
    })
}

/// Python's `fnmatch` translation: `*`, `?`, `[seq]`, `[!seq]`, anchored at both ends.
fn glob_regex(pattern: &str) -> Result<regex_lite::Regex> {
    let mut re = String::from("^(?s:");
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '[' => match chars[i + 1..].iter().position(|c| *c == ']').map(|p| p + i + 1) {
                Some(end) if end > i + 1 => {
                    let mut class: String = chars[i + 1..end].iter().collect();
                    if let Some(rest) = class.strip_prefix('!') {
                        class = format!("^{rest}");
                    }
                    re.push('[');
                    re.push_str(&class.replace('\\', "\\\\"));
                    re.push(']');
                    i = end;
                }
                _ => re.push_str("\\["),
            },
            c => re.push_str(&regex_lite::escape(&c.to_string())),
        }
        i += 1;
    }
    re.push_str(")$");
    regex_lite::Regex::new(&re).map_err(|e| Error::InvalidPattern { matcher: "glob", pattern: pattern.to_owned(), reason: e.to_string() })
}

/// Register a matcher under `name`.
pub fn register(name: &str, matcher: MatchFn) {
    crate::rt::write(registry()).insert(name.into(), matcher);
}

/// Remove a matcher; `MatcherNotInstalled` if there is none of that name.
pub fn unregister(name: &str) -> Result<()> {
    let mut r = crate::rt::write(registry());
    match r.remove(name) {
        Some(_) => Ok(()),
        None => Err(Error::MatcherNotInstalled { name: name.into(), known: r.keys().cloned().collect::<Vec<_>>().join(", ") }),
    }
}

/// Match `data` against `pattern` with `matcher` (`glob` when `None`).
pub fn match_(data: &str, pattern: &str, matcher: Option<&str>) -> Result<bool> {
    let name = matcher.unwrap_or("glob");
    let f = {
        let r = crate::rt::read(registry());
        match r.get(name) {
            Some(f) => f.clone(),
            None => return Err(Error::MatcherNotInstalled { name: name.into(), known: r.keys().cloned().collect::<Vec<_>>().join(", ") }),
        }
    };
    f(data, pattern)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn glob_is_fnmatch() {
        for (data, pat, want) in [
            ("worker1@host", "worker*", true),
            ("worker1@host", "worker?@host", true),
            ("worker12@host", "worker?@host", false),
            ("a.b", "a.b", true),
            ("axb", "a.b", false),
            ("w3", "w[0-9]", true),
            ("wx", "w[!0-9]", true),
            ("w3", "w[!0-9]", false),
            ("[x", "[x", true),
        ] {
            assert_eq!(match_(data, pat, None).unwrap(), want, "{data} ~ {pat}");
        }
    }

    #[test]
    fn pcre_and_registry() {
        assert!(match_("celery@host", "cel.*@", Some("pcre")).unwrap());
        assert!(!match_("xcelery", "cel", Some("pcre")).unwrap());
        let e = match_("x", "(", Some("pcre")).unwrap_err();
        assert!(e.to_string().contains("invalid pcre pattern"), "{e}");
        let e = match_("x", "x", Some("nope")).unwrap_err();
        assert_eq!(e.name(), "MatcherNotInstalled");
        assert!(e.to_string().contains("glob, pcre"), "{e}");
        register("prefix-test", Arc::new(|d, p| Ok(d.starts_with(p))));
        assert!(match_("abc", "ab", Some("prefix-test")).unwrap());
        unregister("prefix-test").unwrap();
        assert_eq!(unregister("prefix-test").unwrap_err().name(), "MatcherNotInstalled");
    }
}
