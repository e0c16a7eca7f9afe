//! `{{secrets/<scope>/<key>}}` references.

use crate::names::secret_name_problem;

/// A parsed secret reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SecretRef {
    /// Scope name.
    pub scope: String,
    /// Key within the scope.
    pub key: String,
}

impl std::fmt::Display for SecretRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{{{{secrets/{}/{}}}}}", self.scope, self.key)
    }
}

/// Parses a whole string as a reference, exactly: no spaces inside the braces, one scope and one
/// key, each a valid secret name (so never `.` or `..`). The error says what is wrong with it
/// without echoing the string, which may be a key pasted into the wrong field.
pub fn parse(value: &str) -> Result<SecretRef, String> {
    let inner = value
        .strip_prefix("{{")
        .and_then(|v| v.strip_suffix("}}"))
        .and_then(|v| v.strip_prefix("secrets/"))
        .ok_or_else(|| {
            "must be a secret reference of the form {{secrets/<scope>/<key>}} \
             (use the *_plaintext field for a literal value)"
                .to_string()
        })?;
    let (scope, key) = inner
        .split_once('/')
        .ok_or_else(|| "secret reference must name a scope and a key: {{secrets/<scope>/<key>}}".to_string())?;
    if let Some(p) = secret_name_problem(scope) {
        return Err(format!("secret reference scope {p}"));
    }
    if let Some(p) = secret_name_problem(key) {
        return Err(format!("secret reference key {p}"));
    }
    Ok(SecretRef { scope: scope.to_string(), key: key.to_string() })
}

/// True if the string looks like it is meant to be a reference (used for `environment_vars`,
/// whose values may be references or literals): such a value must then parse exactly, so a
/// mistyped reference is refused instead of being passed on as a literal.
pub fn looks_like_ref(value: &str) -> bool {
    value.trim_start().starts_with("{{") || value.contains("{{secrets/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let r = parse("{{secrets/my_scope/openai.key}}").unwrap();
        assert_eq!(r.scope, "my_scope");
        assert_eq!(r.key, "openai.key");
        assert_eq!(r.to_string(), "{{secrets/my_scope/openai.key}}");
    }

    #[test]
    fn rejects_malformed_without_echoing() {
        let err = parse("sk-abcdef").unwrap_err();
        assert!(!err.contains("sk-abcdef"));
        assert!(parse("{{secrets/only_scope}}").is_err());
        assert!(parse("{{secrets/sc ope/k}}").is_err());
        assert!(parse("{{vault/a/b}}").is_err());
    }

    #[test]
    fn matches_exactly() {
        assert!(parse("{{ secrets/a/b }}").is_err(), "spaces inside the braces");
        assert!(parse(" {{secrets/a/b}}").is_err());
        assert!(parse("{{secrets/../x}}").is_err());
        assert!(parse("{{secrets/a/b/c}}").is_err());
        assert!(parse("{{secrets/a/}}").is_err());
    }
}
