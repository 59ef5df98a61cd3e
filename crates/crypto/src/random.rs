//! Randomness: every key byte and nonce in brine comes from the operating system through
//! `getrandom`, and from nowhere else.

use zeroize::Zeroizing;

/// Fills `buf` with random bytes from the operating system.
///
/// # Panics
/// When the operating system's generator fails, which on Linux means `getrandom(2)` is missing
/// or forbidden (seccomp). Nothing sensible can continue without randomness.
pub(crate) fn fill(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random number generator failed");
}

/// 32 fresh random bytes for a secret key, wiped when dropped.
pub(crate) fn secret32() -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    fill(&mut key[..]);
    key
}
