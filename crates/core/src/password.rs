//! Console passwords: Argon2id hashes in PHC strings, and the rule a new password must meet.
//! Hashing is slow on purpose (tens of milliseconds in a release build); callers run it off the
//! async threads. API tokens are not passwords: they are high-entropy and hashed with SHA-256.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

/// Shortest password accepted.
pub const MIN_LEN: usize = 12;
/// Longest password accepted (a bound on the work one sign-in can ask for).
pub const MAX_LEN: usize = 256;

/// Why a new password is refused, in words for the API's error.
pub fn check(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_LEN {
        return Err(format!("must be at least {MIN_LEN} characters"));
    }
    if n > MAX_LEN {
        return Err(format!("must be at most {MAX_LEN} characters"));
    }
    if password.trim() != password {
        return Err("must not start or end with a space".into());
    }
    Ok(())
}

/// The PHC string of `password` with a new random salt.
pub fn hash(password: &str) -> Result<String, String> {
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| e.to_string())
}

/// Whether `password` matches the PHC string `phc` (false for a string that does not parse).
pub fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash no password matches, to verify against when the user does not exist, so that a
/// sign-in takes as long for an unknown name as for a wrong password.
pub fn decoy() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash("decoy password that nobody has, by construction").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_password_and_are_salted() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$") && a != b, "salted: {a} {b}");
        assert!(verify("correct horse battery", &a) && verify("correct horse battery", &b));
        assert!(!verify("correct horse batterY", &a));
        assert!(!verify("anything", "not a phc string"));
        assert!(!verify("decoy", decoy()));
    }

    #[test]
    fn the_rule_names_what_is_wrong() {
        assert_eq!(check("short"), Err("must be at least 12 characters".into()));
        assert!(check(&"x".repeat(257)).unwrap_err().contains("at most 256"));
        assert!(check(" twelve chars ok").unwrap_err().contains("space"));
        assert_eq!(check("twelve chars ok"), Ok(()));
    }
}
