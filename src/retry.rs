//! Retry policies and failover strategies (Kombu's `retry_policy` keys and
//! `failover_strategy`).

use serde::{Deserialize, Serialize};

/// How often and how long to retry (the keys `Connection.ensure`, `ensure_connection`,
/// `Producer.publish(retry_policy=...)` and `maybe_declare` accept).
///
/// The sleep between attempts follows Kombu's `retry_over_time`: it starts at
/// `interval_start`, grows by `interval_step` each retry while it is at most
/// `interval_start + interval_max`, then stays at its last value.
///
/// Deserializes from Kombu's names or the npm package's camelCase ones (`intervalStart`, ...);
/// unknown keys are refused, missing ones are [`RetryPolicy::ensure_default`]'s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Seconds to sleep before the first retry.
    #[serde(alias = "intervalStart")]
    pub interval_start: f64,
    /// Seconds added to the sleep at each retry.
    #[serde(alias = "intervalStep")]
    pub interval_step: f64,
    /// The sleep stops growing past `interval_start + interval_max`.
    #[serde(alias = "intervalMax")]
    pub interval_max: f64,
    /// Give up after this many retries; `None` retries forever.
    #[serde(alias = "maxRetries")]
    pub max_retries: Option<u32>,
    /// Give up once this many seconds have passed (connection retries only).
    pub timeout: Option<f64>,
}

impl Default for RetryPolicy {
    /// `Connection.ensure`'s defaults.
    fn default() -> Self {
        Self::ensure_default()
    }
}

impl RetryPolicy {
    /// `Connection.ensure` / `Producer.publish(retry=True)` defaults: start 1, step 1, max 1,
    /// retry forever.
    pub fn ensure_default() -> Self {
        RetryPolicy { interval_start: 1.0, interval_step: 1.0, interval_max: 1.0, max_retries: None, timeout: None }
    }

    /// `Connection.ensure_connection` defaults: start 2, step 2, max 30, retry forever.
    pub fn ensure_connection_default() -> Self {
        RetryPolicy { interval_start: 2.0, interval_step: 2.0, interval_max: 30.0, max_retries: None, timeout: None }
    }

    /// Set `max_retries`.
    #[must_use]
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// Set `interval_start`, `interval_step` and `interval_max` (seconds).
    #[must_use]
    pub fn intervals_of(mut self, start: f64, step: f64, max: f64) -> Self {
        self.interval_start = start;
        self.interval_step = step;
        self.interval_max = max;
        self
    }

    /// Set `timeout` (seconds).
    #[must_use]
    pub fn timeout(mut self, seconds: f64) -> Self {
        self.timeout = Some(seconds);
        self
    }

    /// The sleeps between attempts, in seconds: an endless iterator (Kombu's
    /// `fxrange(interval_start, interval_start + interval_max, interval_step, repeatlast=True)`).
    pub fn intervals(&self) -> Intervals {
        Intervals {
            cur: self.interval_start.max(0.0),
            stop: self.interval_start.max(0.0) + self.interval_max.max(0.0),
            step: self.interval_step.max(0.0),
            last: None,
        }
    }
}

/// The sleeps of a [`RetryPolicy`]; never ends.
#[derive(Debug, Clone)]
pub struct Intervals {
    cur: f64,
    stop: f64,
    step: f64,
    last: Option<f64>,
}

impl Iterator for Intervals {
    type Item = f64;

    fn next(&mut self) -> Option<f64> {
        if self.cur <= self.stop {
            let v = self.cur;
            self.cur += self.step;
            self.last = Some(v);
            Some(v)
        } else {
            Some(self.last.unwrap_or(self.stop))
        }
    }
}

/// How a connection goes through its failover URLs (Kombu's `failover_strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FailoverStrategy {
    /// `round-robin`: the URLs in order, then again from the first.
    #[default]
    #[serde(rename = "round-robin")]
    RoundRobin,
    /// `shuffle`: a random URL each time.
    #[serde(rename = "shuffle")]
    Shuffle,
}

impl FailoverStrategy {
    /// Kombu's name of the strategy.
    pub fn as_str(self) -> &'static str {
        match self {
            FailoverStrategy::RoundRobin => "round-robin",
            FailoverStrategy::Shuffle => "shuffle",
        }
    }

    /// Parse Kombu's name (`round-robin`, `shuffle`).
    pub fn parse(s: &str) -> crate::Result<Self> {
        match s {
            "round-robin" | "round_robin" | "roundrobin" => Ok(FailoverStrategy::RoundRobin),
            "shuffle" => Ok(FailoverStrategy::Shuffle),
            other => Err(crate::Error::InvalidOption {
                option: "failover_strategy",
                value: format!("{other:?}"),
                expected: "one of round-robin, shuffle",
            }),
        }
    }
}

/// The sequence of failover URL indices a strategy produces. The first URL is used first;
/// each switch asks for the next index.
#[derive(Debug, Clone)]
pub struct FailoverCycle {
    len: usize,
    pos: usize,
    strategy: FailoverStrategy,
}

impl FailoverCycle {
    /// A cycle over `len` URLs (at least one).
    pub fn new(len: usize, strategy: FailoverStrategy) -> Self {
        FailoverCycle { len: len.max(1), pos: 0, strategy }
    }

    /// The index of the URL to switch to.
    pub fn next_index(&mut self) -> usize {
        self.pos = match self.strategy {
            FailoverStrategy::RoundRobin => (self.pos + 1) % self.len,
            FailoverStrategy::Shuffle => fastrand::usize(..self.len),
        };
        self.pos
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn intervals_follow_kombu_fxrange() {
        let take = |p: RetryPolicy, n| p.intervals().take(n).collect::<Vec<_>>();
        // ensure_connection: fxrange(2, 32, 2, repeatlast=True)
        let v = take(RetryPolicy::ensure_connection_default(), 18);
        assert_eq!(&v[..4], &[2.0, 4.0, 6.0, 8.0]);
        assert_eq!(v[15], 32.0);
        assert_eq!(v[16], 32.0);
        assert_eq!(v[17], 32.0);
        // ensure: fxrange(1, 2, 1, repeatlast=True)
        assert_eq!(take(RetryPolicy::ensure_default(), 4), vec![1.0, 2.0, 2.0, 2.0]);
        // the seed's example: interval_start 0, step 2, max 30
        assert_eq!(take(RetryPolicy::default().intervals_of(0.0, 2.0, 30.0), 3), vec![0.0, 2.0, 4.0]);
        assert_eq!(take(RetryPolicy::default().intervals_of(0.0, 0.0, 0.0), 3), vec![0.0, 0.0, 0.0]);
    }

    #[test]
    fn policy_serde_uses_kombu_keys() {
        let p: RetryPolicy = serde_json::from_str(r#"{"interval_start": 0, "max_retries": 3}"#).unwrap();
        assert_eq!(p.interval_start, 0.0);
        assert_eq!(p.interval_step, 1.0);
        assert_eq!(p.max_retries, Some(3));
        // The npm package's names read the same; unknown keys are refused.
        let camel: RetryPolicy = serde_json::from_str(r#"{"intervalStart": 0, "maxRetries": 3}"#).unwrap();
        assert_eq!(camel, p);
        assert!(serde_json::from_str::<RetryPolicy>(r#"{"max_retires": 3}"#).is_err());
    }

    #[test]
    fn round_robin_cycles() {
        let mut c = FailoverCycle::new(3, FailoverStrategy::RoundRobin);
        let v: Vec<_> = (0..5).map(|_| c.next_index()).collect();
        assert_eq!(v, vec![1, 2, 0, 1, 2]);
        let mut one = FailoverCycle::new(1, FailoverStrategy::RoundRobin);
        assert_eq!(one.next_index(), 0);
    }

    #[test]
    fn shuffle_stays_in_range_and_visits_all() {
        let mut c = FailoverCycle::new(4, FailoverStrategy::Shuffle);
        let mut seen = [false; 4];
        for _ in 0..500 {
            seen[c.next_index()] = true;
        }
        assert!(seen.iter().all(|s| *s));
        assert_eq!(FailoverStrategy::parse("shuffle").unwrap().as_str(), "shuffle");
        assert!(FailoverStrategy::parse("random").unwrap_err().to_string().contains("round-robin, shuffle"));
    }
}
