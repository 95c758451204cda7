//! The little the Kombu API needs from a runtime: sleeping, reading the clock, and random
//! ids ([`uuid`]).
//!
//! Natively this is tokio's timer (the core must then run inside a tokio runtime, as the
//! gateway and the CLI do); in wasm32 it is the browser's or Node's `setTimeout` through
//! gloo-timers, and `performance.now()` through web-time.

pub use web_time::{Duration, Instant, SystemTime};

/// Sleep for `d`.
#[cfg(not(target_arch = "wasm32"))]
pub async fn sleep(d: Duration) {
    tokio::time::sleep(d).await
}

/// Sleep for `d`.
#[cfg(target_arch = "wasm32")]
pub async fn sleep(d: Duration) {
    // `setTimeout` takes a signed 32-bit delay: a longer one (from 24.8 days) fires at once,
    // after 1 ms — a wait for a message expiring in a month woke every millisecond. A long
    // sleep is a series of shorter ones.
    const MAX: u128 = i32::MAX as u128;
    let mut left = d.as_millis();
    loop {
        let ms = left.min(MAX);
        gloo_timers::future::TimeoutFuture::new(ms as u32).await;
        left -= ms;
        if left == 0 {
            break;
        }
    }
}

/// Sleep until `t` (returns at once when `t` has passed).
pub async fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        sleep(t - now).await
    }
}

/// Marker for values that can move between threads where the platform has threads.
///
/// Natively this is `Send`; in wasm32 (single-threaded, with `!Send` JavaScript values) it
/// holds for every type. Transports and callbacks use it so that one trait serves tokio and
/// the browser.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + ?Sized> MaybeSend for T {}
/// Marker for values that can move between threads where the platform has threads.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSend for T {}

/// `Sync` natively, nothing in wasm32. See [`MaybeSend`].
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSync: Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Sync + ?Sized> MaybeSync for T {}
/// `Sync` natively, nothing in wasm32. See [`MaybeSend`].
#[cfg(target_arch = "wasm32")]
pub trait MaybeSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSync for T {}

/// A boxed future that is `Send` where the platform has threads.
#[cfg(not(target_arch = "wasm32"))]
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
/// A boxed future that is `Send` where the platform has threads.
#[cfg(target_arch = "wasm32")]
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>>;

/// Lock `m`, taking the data even if a panicking thread poisoned the lock: the state guarded
/// in this crate stays consistent between statements, and a panic elsewhere must not turn
/// every later call into a second panic.
pub(crate) fn lock<T: ?Sized>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Read-lock `l`, poison-tolerant as [`lock`].
pub(crate) fn read<T: ?Sized>(l: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

/// Write-lock `l`, poison-tolerant as [`lock`].
pub(crate) fn write<T: ?Sized>(l: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

/// A random UUID version 4 string (Kombu's `uuid()`, also [`crate::common::uuid`]), for
/// consumer tags, correlation ids and unique queue names.
pub fn uuid() -> String {
    let mut b = [0u8; 16];
    let (hi, lo) = (fastrand::u64(..), fastrand::u64(..));
    b[..8].copy_from_slice(&hi.to_be_bytes());
    b[8..].copy_from_slice(&lo.to_be_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let mut s = String::with_capacity(36);
    for (i, x) in b.into_iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(char::from(b"0123456789abcdef"[usize::from(x >> 4)]));
        s.push(char::from(b"0123456789abcdef"[usize::from(x & 15)]));
    }
    s
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    // Sleeps past setTimeout's limit (2^31 - 1 ms) used to end after 1 ms in wasm32.
    #[cfg_attr(not(target_arch = "wasm32"), tokio::test)]
    #[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
    async fn long_sleeps_do_not_end_early() {
        let month = Duration::from_secs(30 * 24 * 3600);
        for d in [Duration::from_millis(1 << 31), Duration::from_millis(u64::from(u32::MAX)), month, Duration::MAX] {
            let (long, short) = (sleep(d), sleep(Duration::from_millis(40)));
            futures::pin_mut!(long, short);
            let first = futures::future::select(long, short).await;
            assert!(matches!(first, futures::future::Either::Right(_)), "sleep({d:?}) ended within 40 ms");
        }
    }

    #[test]
    fn uuid4_shape() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        for (i, c) in u.chars().enumerate() {
            assert_eq!(c == '-', matches!(i, 8 | 13 | 18 | 23), "{u}");
            assert!(c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c), "{u}");
        }
        assert_ne!(uuid(), uuid());
    }
}
