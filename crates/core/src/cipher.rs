//! Encryption at rest: AES-256-GCM under a 32-byte master key.
//!
//! Each value is sealed with a fresh random nonce and with associated data naming where the value
//! lives (for example `secret:scope/key`), so a ciphertext copied to another row does not open.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// Length of a master key in bytes.
pub const KEY_LEN: usize = 32;

/// Errors of the cipher.
#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    /// The master key text is not base64 (or hex) of 32 bytes.
    #[error("the master key must be 32 bytes, given as base64 or 64 hex digits")]
    BadKey,
    /// Authentication failed: wrong key, wrong context or tampered data.
    #[error("data does not decrypt with this master key")]
    Open,
    /// The system random generator failed.
    #[error("system random generator failed")]
    Random,
}

/// The AEAD cipher holding the master key.
pub struct Cipher {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(***)")
    }
}

impl Cipher {
    /// Builds a cipher from raw key bytes.
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        #[allow(clippy::expect_used, reason = "the key is a [u8; 32]: AES-256 cannot refuse its length")]
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("AES-256 key length is constant");
        Self { key: LessSafeKey::new(unbound), rng: SystemRandom::new() }
    }

    /// Parses a key given as base64 (standard or URL-safe) or as 64 hex digits.
    pub fn parse_key(text: &str) -> Result<[u8; KEY_LEN], CipherError> {
        let text = text.trim();
        let bytes = if text.len() == 2 * KEY_LEN && text.chars().all(|c| c.is_ascii_hexdigit()) {
            (0..KEY_LEN)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|_| CipherError::BadKey)?
        } else {
            B64.decode(text)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text))
                .map_err(|_| CipherError::BadKey)?
        };
        bytes.try_into().map_err(|_| CipherError::BadKey)
    }

    /// A new random key, base64-encoded, for the key file written on first start.
    pub fn generate_key_text() -> Result<String, CipherError> {
        let mut key = [0u8; KEY_LEN];
        SystemRandom::new().fill(&mut key).map_err(|_| CipherError::Random)?;
        Ok(B64.encode(key))
    }

    /// Encrypts `plaintext`; the output is nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, CipherError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| CipherError::Random)?;
        let mut buf = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| CipherError::Open)?;
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        Ok(out)
    }

    /// Decrypts what [`Cipher::seal`] produced under the same context.
    pub fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, CipherError> {
        if sealed.len() < NONCE_LEN {
            return Err(CipherError::Open);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CipherError::Open)?;
        let mut buf = body.to_vec();
        let plain =
            self.key.open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf).map_err(|_| CipherError::Open)?;
        Ok(plain.to_vec())
    }

    /// Seals a string into a printable form (`mgenc:v1:<base64>`) that can sit inside JSON.
    pub fn seal_text(&self, context: &str, plaintext: &str) -> Result<String, CipherError> {
        Ok(format!("{SEALED_PREFIX}{}", B64.encode(self.seal(context, plaintext.as_bytes())?)))
    }

    /// Opens what [`Cipher::seal_text`] produced.
    pub fn open_text(&self, context: &str, sealed: &str) -> Result<String, CipherError> {
        let body = sealed.strip_prefix(SEALED_PREFIX).ok_or(CipherError::Open)?;
        let bytes = B64.decode(body).map_err(|_| CipherError::Open)?;
        String::from_utf8(self.open(context, &bytes)?).map_err(|_| CipherError::Open)
    }
}

/// Marks a sealed string inside stored JSON.
pub const SEALED_PREFIX: &str = "mgenc:v1:";

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Cipher {
        Cipher::new(&Cipher::parse_key(&Cipher::generate_key_text().unwrap()).unwrap())
    }

    #[test]
    fn round_trip_and_context_binding() {
        let c = cipher();
        let sealed = c.seal("secret:a/b", b"hello").unwrap();
        assert_ne!(&sealed[NONCE_LEN..NONCE_LEN + 5], b"hello");
        assert_eq!(c.open("secret:a/b", &sealed).unwrap(), b"hello");
        assert!(c.open("secret:a/c", &sealed).is_err(), "other context must not open");
        assert!(cipher().open("secret:a/b", &sealed).is_err(), "other key must not open");
    }

    #[test]
    fn text_form() {
        let c = cipher();
        let t = c.seal_text("ctx", "sk-123").unwrap();
        assert!(t.starts_with(SEALED_PREFIX) && !t.contains("sk-123"));
        assert_eq!(c.open_text("ctx", &t).unwrap(), "sk-123");
    }

    #[test]
    fn key_formats() {
        assert!(Cipher::parse_key(&"ab".repeat(32)).is_ok());
        assert!(Cipher::parse_key("too-short").is_err());
        assert!(Cipher::parse_key(&B64.encode([1u8; 16])).is_err());
    }
}
