//! Bearer tokens: generation and hashing. Only the hash is ever stored.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

/// Prefix of every token modelgate issues, so secret scanners can recognise them.
pub const TOKEN_PREFIX: &str = "mgt_";

/// Fills `b` from the operating system's generator. Its failing is not recoverable: a token or id
/// must never be weak, so the process stops rather than issue one.
#[allow(clippy::expect_used, reason = "without the OS generator no safe token can be issued")]
fn fill_random(b: &mut [u8]) {
    SystemRandom::new().fill(b).expect("system random generator");
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    fill_random(&mut b);
    b
}

/// A new token: the prefix and 256 random bits.
pub fn generate() -> String {
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// Hex SHA-256 of a token. Tokens carry 256 bits of entropy, so a fast hash is enough: there
/// is nothing to brute-force.
pub fn hash(token: &str) -> String {
    hex(digest(&SHA256, token.as_bytes()).as_ref())
}

/// `n` random bytes as lowercase hex (ids).
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    fill_random(&mut b);
    hex(&b)
}

/// `n` random decimal digits, not starting with 0 (SCIM ids look like this).
pub fn random_digits(n: usize) -> String {
    let mut b = vec![0u8; n];
    fill_random(&mut b);
    b.iter().enumerate().map(|(i, x)| char::from(b'0' + if i == 0 { 1 + x % 9 } else { x % 10 })).collect()
}

/// Bytes as lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    // Every authenticated request hashes its token: a table lookup, not a formatter per byte.
    ::hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_hash_stably() {
        let (a, b) = (generate(), generate());
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert_eq!(hash(&a), hash(&a));
        assert_ne!(hash(&a), hash(&b));
        assert_eq!(hash(&a).len(), 64);
        assert_eq!(random_hex(16).len(), 32);
    }
}
