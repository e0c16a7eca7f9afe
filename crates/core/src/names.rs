//! Name rules.

/// Longest endpoint or served-entity name accepted.
pub const MAX_ENDPOINT_NAME_LEN: usize = 63;
/// Longest secret scope or key name accepted.
pub const MAX_SECRET_NAME_LEN: usize = 128;

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Why a name is invalid, or `None` if it is valid. Endpoint and served-entity names: letters,
/// digits, `-` and `_`, 1 to 63 characters.
pub fn endpoint_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > MAX_ENDPOINT_NAME_LEN {
        return Some(format!("'{name}' is {} characters long; the limit is {MAX_ENDPOINT_NAME_LEN}", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !is_name_char(*c)) {
        return Some(format!("'{name}' contains '{c}'; only letters, digits, '-' and '_' are allowed"));
    }
    None
}

/// Why a secret scope or key name is invalid, or `None`: letters, digits, `-`, `_` and `.`,
/// 1 to 128 characters.
pub fn secret_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.len() > MAX_SECRET_NAME_LEN {
        return Some(format!("is {} characters long; the limit is {MAX_SECRET_NAME_LEN}", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(is_name_char(*c) || *c == '.')) {
        return Some(format!("'{name}' contains '{c}'; only letters, digits, '-', '_' and '.' are allowed"));
    }
    None
}

/// Default name of a served entity that wraps an external model: the model name with `.` and
/// `:` replaced by `-` (`claude-3.5-sonnet` becomes `claude-3-5-sonnet`).
pub fn default_external_entity_name(model_name: &str) -> String {
    model_name.replace(['.', ':'], "-")
}

/// Default name of a registered-model entity: the last segment of a three-level name, a dash and
/// the version (`main.default.ads` version 2 becomes `ads-2`).
pub fn default_model_entity_name(entity_name: &str, version: &str) -> String {
    let last = entity_name.rsplit('.').next().unwrap_or(entity_name);
    format!("{last}-{version}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names() {
        assert!(endpoint_name_problem("chat-prod_1").is_none());
        assert!(endpoint_name_problem("").is_some());
        assert!(endpoint_name_problem("a.b").unwrap().contains("'.'"));
        assert!(endpoint_name_problem(&"x".repeat(64)).unwrap().contains("63"));
    }

    #[test]
    fn secret_names() {
        assert!(secret_name_problem("team.key-1_a").is_none());
        assert!(secret_name_problem("a/b").is_some());
        assert!(secret_name_problem(&"k".repeat(129)).is_some());
    }

    #[test]
    fn default_names() {
        assert_eq!(default_external_entity_name("claude-3.5-sonnet"), "claude-3-5-sonnet");
        assert_eq!(default_external_entity_name("llama3:8b"), "llama3-8b");
        assert_eq!(default_model_entity_name("cat.sch.readmission_model", "8"), "readmission_model-8");
        assert_eq!(default_model_entity_name("ads1", "1"), "ads1-1");
    }
}
