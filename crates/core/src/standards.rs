//! Workspace standards: which rules of a [`WorkspacePolicy`] an endpoint breaks. Pure: the
//! server and the CLI's bundle checks apply the same rules.

use std::collections::BTreeMap;

use modelgate_wire::WorkspacePolicy;

/// What the rules look at.
pub struct Facts<'a> {
    /// Endpoint name.
    pub name: &'a str,
    /// Its tags.
    pub tags: &'a BTreeMap<String, String>,
    /// Provider and model of each served entity (external models), first one first.
    pub entities: &'a [(String, String)],
}

/// The policy's environment tag.
pub fn environment_tag(p: &WorkspacePolicy) -> &str {
    p.environment_tag.as_deref().unwrap_or("environment")
}

/// `s` with every character an endpoint name cannot hold replaced by `-`.
fn name_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '-' }).collect()
}

/// The regular expression a naming template stands for, for these facts.
fn template_regex(template: &str, f: &Facts<'_>, env: Option<&str>) -> String {
    let mut out = String::from("^");
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&regex::escape(&rest[..open]));
        let Some(close) = rest[open..].find('}') else { break };
        let word = &rest[open + 1..open + close];
        let known = match word {
            "provider" => f.entities.first().map(|(p, _)| name_safe(p)),
            "model" => f.entities.first().map(|(_, m)| name_safe(m)),
            "environment" => env.map(name_safe),
            _ => None,
        };
        match known {
            Some(v) => out.push_str(&regex::escape(&v)),
            None => out.push_str("[A-Za-z0-9_]+"),
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(&regex::escape(rest));
    out.push('$');
    out
}

/// Checks that a policy is usable: a known mode, a pattern that compiles.
pub fn validate(p: &WorkspacePolicy) -> Result<(), (String, String)> {
    if let Some(m) = &p.mode
        && !["enforce", "warn", "off"].contains(&m.as_str())
    {
        return Err(("mode".into(), format!("'{m}' is not one of enforce, warn, off")));
    }
    if let Some(pattern) = p.naming.as_ref().and_then(|n| n.pattern.as_deref())
        && let Err(e) = regex::Regex::new(pattern)
    {
        return Err(("naming.pattern".into(), format!("is not a regular expression: {e}")));
    }
    if let Some(d) = p.min_deprecation_notice_days
        && !(0..=3650).contains(&d)
    {
        return Err(("min_deprecation_notice_days".into(), "must be 0 to 3650".into()));
    }
    Ok(())
}

/// The rules `f` breaks, as `(rule, message)`; none when the policy is off.
pub fn violations(p: &WorkspacePolicy, f: &Facts<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if p.mode.as_deref() == Some("off") {
        return out;
    }
    let env_tag = environment_tag(p);
    let env = f.tags.get(env_tag).map(String::as_str);
    if let Some(n) = &p.naming {
        if let Some(t) = &n.template {
            let re = template_regex(t, f, env);
            if !regex::Regex::new(&re).is_ok_and(|r| r.is_match(f.name)) {
                out.push(("naming".into(), format!("'{}' does not follow the naming template {t}", f.name)));
            }
        }
        if let Some(pattern) = &n.pattern
            && !regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|r| r.is_match(f.name))
        {
            out.push(("naming".into(), format!("'{}' does not match the naming pattern {pattern}", f.name)));
        }
    }
    let missing: Vec<&str> =
        p.required_tags.iter().flatten().filter(|t| !f.tags.contains_key(t.as_str())).map(String::as_str).collect();
    if !missing.is_empty() {
        out.push(("required_tags".into(), format!("the tags {} are required", missing.join(", "))));
    }
    if let Some(rules) = env.and_then(|e| p.environments.as_ref()?.get(e)) {
        let env = env.unwrap_or_default();
        for (provider, model) in f.entities {
            if let Some(allowed) = &rules.allowed_providers
                && !allowed.contains(provider)
            {
                out.push((
                    "allowed_providers".into(),
                    format!("provider '{provider}' is not allowed in {env} (allowed: {})", allowed.join(", ")),
                ));
            }
            if let Some(allowed) = &rules.allowed_models
                && !allowed.contains(model)
            {
                out.push((
                    "allowed_models".into(),
                    format!("model '{model}' is not allowed in {env} (allowed: {})", allowed.join(", ")),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate_wire::{EnvironmentRules, NamingRule};

    fn facts<'a>(name: &'a str, tags: &'a BTreeMap<String, String>, entities: &'a [(String, String)]) -> Facts<'a> {
        Facts { name, tags, entities }
    }

    #[test]
    fn naming_templates_bind_provider_model_and_environment() {
        let p = WorkspacePolicy {
            naming: Some(NamingRule {
                template: Some("{provider}-{model}-{environment}-{purpose}".into()),
                pattern: None,
            }),
            ..Default::default()
        };
        let tags: BTreeMap<String, String> = [("environment".to_string(), "prod".to_string())].into();
        let entities = [("openai".to_string(), "gpt-4o.mini".to_string())];
        assert!(violations(&p, &facts("openai-gpt-4o-mini-prod-support", &tags, &entities)).is_empty());
        let wrong = violations(&p, &facts("anthropic-gpt-4o-mini-prod-support", &tags, &entities));
        assert_eq!(wrong.len(), 1, "{wrong:?}");
        assert!(!violations(&p, &facts("openai-gpt-4o-mini-dev-support", &tags, &entities)).is_empty());
    }

    #[test]
    fn tags_and_environment_allow_lists() {
        let mut envs = BTreeMap::new();
        envs.insert(
            "prod".to_string(),
            EnvironmentRules {
                allowed_providers: Some(vec!["openai".into()]),
                allowed_models: Some(vec!["gpt-4o".into()]),
                default_rate_limits: None,
            },
        );
        let p = WorkspacePolicy {
            required_tags: Some(vec!["team".into(), "environment".into()]),
            environments: Some(envs),
            ..Default::default()
        };
        let tags: BTreeMap<String, String> = [("environment".to_string(), "prod".to_string())].into();
        let entities = [("anthropic".to_string(), "claude".to_string())];
        let rules: Vec<String> = violations(&p, &facts("x", &tags, &entities)).into_iter().map(|(r, _)| r).collect();
        assert_eq!(rules, vec!["required_tags", "allowed_providers", "allowed_models"]);
        let off = WorkspacePolicy { mode: Some("off".into()), ..p };
        assert!(violations(&off, &facts("x", &tags, &entities)).is_empty());
    }
}
