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
/// 1 to 128 characters, and not `.`, `..` or containing `..` (names must never read as paths).
pub fn secret_name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".into());
    }
    if name.chars().all(|c| c == '.') || name.contains("..") {
        return Some("must not be '.' or '..' or contain '..'".into());
    }
    if name.len() > MAX_SECRET_NAME_LEN {
        return Some(format!("is {} characters long; the limit is {MAX_SECRET_NAME_LEN}", name.len()));
    }
    if let Some(c) = name.chars().find(|c| !(is_name_char(*c) || *c == '.')) {
        return Some(format!("'{name}' contains '{c}'; only letters, digits, '-', '_' and '.' are allowed"));
    }
    None
}

/// Longest user name, group name, service principal application id or display name accepted.
pub const MAX_PRINCIPAL_NAME_LEN: usize = 256;
/// Longest free-text field accepted (descriptions, token comments).
pub const MAX_TEXT_LEN: usize = 4096;

/// Characters that change how text around them is displayed without being visible: bidirectional
/// overrides and isolates (the "Trojan Source" characters), marks, zero-width characters and the
/// byte-order mark. A name containing one can look like another name.
fn is_invisible_format(c: char) -> bool {
    // U+200C and U+200D (joiners) are left alone: scripts and emoji sequences need them.
    matches!(c, '\u{061C}' | '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

/// Why a one-line name (user name, display name, application id, tag, policy name) is
/// unacceptable, or `None`: not blank, at most `max` bytes, no control characters, no
/// bidirectional overrides or invisible formatting characters. The message does not echo the
/// text, which may be anything.
pub fn label_problem(text: &str, max: usize) -> Option<String> {
    if text.trim().is_empty() {
        return Some("must not be empty".into());
    }
    text_problem(text, max, false)
}

/// Why a free-text field (a description, a comment) is unacceptable, or `None`: at most `max`
/// bytes; line breaks and tabs are allowed, other control characters and bidirectional overrides
/// are not.
pub fn text_problem(text: &str, max: usize, multiline: bool) -> Option<String> {
    if text.len() > max {
        return Some(format!("is {} bytes long; the limit is {max}", text.len()));
    }
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if let Some((i, c)) = text.char_indices().find(|(_, c)| (c.is_control() && !allowed(*c)) || is_invisible_format(*c))
    {
        let what = if c.is_control() { "a control character" } else { "an invisible formatting character" };
        return Some(format!("contains {what} (U+{:04X}) at byte {i}", c as u32));
    }
    None
}

/// Default name of a served entity that wraps an external model: the model name with `.`, `:`,
/// `@` and `/` replaced by `-` (`claude-3.5-sonnet` becomes `claude-3-5-sonnet`, Vertex AI's
/// `claude-sonnet-4@20250514` becomes `claude-sonnet-4-20250514`).
pub fn default_external_entity_name(model_name: &str) -> String {
    model_name.replace(['.', ':', '@', '/'], "-")
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
        assert!(secret_name_problem("..").is_some());
        assert!(secret_name_problem("a..b").is_some());
        assert!(secret_name_problem("v1.2").is_none());
    }

    #[test]
    fn labels_refuse_controls_and_bidi_overrides() {
        assert!(label_problem("Jane Doe", 256).is_none());
        assert!(label_problem("jane@example.com", 256).is_none());
        assert!(label_problem("  ", 256).unwrap().contains("empty"));
        assert!(label_problem("a\nb", 256).unwrap().contains("control character (U+000A)"));
        assert!(label_problem("admin\u{202E}nimda", 256).unwrap().contains("U+202E"));
        assert!(label_problem("zero\u{200B}width", 256).is_some());
        assert!(label_problem(&"x".repeat(257), 256).unwrap().contains("limit is 256"));
        assert!(text_problem("line one\nline two", 100, true).is_none());
        assert!(text_problem("bell\u{7}", 100, true).is_some());
    }

    #[test]
    fn default_names() {
        assert_eq!(default_external_entity_name("claude-3.5-sonnet"), "claude-3-5-sonnet");
        assert_eq!(default_external_entity_name("llama3:8b"), "llama3-8b");
        assert_eq!(default_external_entity_name("claude-sonnet-4@20250514"), "claude-sonnet-4-20250514");
        assert_eq!(default_model_entity_name("cat.sch.readmission_model", "8"), "readmission_model-8");
        assert_eq!(default_model_entity_name("ads1", "1"), "ads1-1");
    }
}
