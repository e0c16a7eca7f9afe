//! The credential fields of every provider config.
//!
//! Each credential can be given either as a secret reference (`openai_api_key`) or as a literal
//! (`openai_api_key_plaintext`). This module lists those pairs once, so validation, sealing of
//! literals before storage, stripping them from responses and resolving them at deploy time all
//! agree on which fields hold credentials.

use modelgate_wire::ExternalModel;

/// One credential of a provider config: a reference field and its plaintext twin.
pub struct CredentialSlot<'a> {
    /// Path of the reference field inside `external_model`, e.g. `openai_config.openai_api_key`.
    pub reference_field: &'static str,
    /// Path of the plaintext field inside `external_model`.
    pub plaintext_field: &'static str,
    /// Whether one of the two must be set whenever the provider config is present.
    pub required: bool,
    /// The reference value.
    pub reference: &'a mut Option<String>,
    /// The plaintext value (sealed while stored).
    pub plaintext: &'a mut Option<String>,
}

macro_rules! slot {
    ($cfg:ident, $section:literal, $r:ident, $p:ident, $req:expr) => {
        CredentialSlot {
            reference_field: concat!($section, ".", stringify!($r)),
            plaintext_field: concat!($section, ".", stringify!($p)),
            required: $req,
            reference: &mut $cfg.$r,
            plaintext: &mut $cfg.$p,
        }
    };
}

/// Every credential slot present in `model` (only the provider configs that are set).
pub fn slots(model: &mut ExternalModel) -> Vec<CredentialSlot<'_>> {
    let mut out = Vec::new();
    if let Some(c) = model.openai_config.as_mut() {
        // An OpenAI config authenticates with an API key or with Entra ID client credentials;
        // `validate` decides which of the two is required.
        out.push(slot!(c, "openai_config", openai_api_key, openai_api_key_plaintext, false));
        out.push(slot!(
            c,
            "openai_config",
            microsoft_entra_client_secret,
            microsoft_entra_client_secret_plaintext,
            false
        ));
    }
    if let Some(c) = model.anthropic_config.as_mut() {
        out.push(slot!(c, "anthropic_config", anthropic_api_key, anthropic_api_key_plaintext, true));
    }
    if let Some(c) = model.cohere_config.as_mut() {
        out.push(slot!(c, "cohere_config", cohere_api_key, cohere_api_key_plaintext, true));
    }
    if let Some(c) = model.ai21labs_config.as_mut() {
        out.push(slot!(c, "ai21labs_config", ai21labs_api_key, ai21labs_api_key_plaintext, true));
    }
    if let Some(c) = model.amazon_bedrock_config.as_mut() {
        out.push(slot!(c, "amazon_bedrock_config", aws_access_key_id, aws_access_key_id_plaintext, false));
        out.push(slot!(c, "amazon_bedrock_config", aws_secret_access_key, aws_secret_access_key_plaintext, false));
    }
    if let Some(c) = model.google_cloud_vertex_ai_config.as_mut() {
        out.push(slot!(c, "google_cloud_vertex_ai_config", private_key, private_key_plaintext, true));
    }
    if let Some(c) = model.palm_config.as_mut() {
        out.push(slot!(c, "palm_config", palm_api_key, palm_api_key_plaintext, true));
    }
    if let Some(c) = model.databricks_model_serving_config.as_mut() {
        out.push(slot!(
            c,
            "databricks_model_serving_config",
            databricks_api_token,
            databricks_api_token_plaintext,
            true
        ));
    }
    if let Some(c) = model.custom_provider_config.as_mut() {
        if let Some(a) = c.api_key_auth.as_mut() {
            out.push(slot!(a, "custom_provider_config.api_key_auth", value, value_plaintext, true));
        }
        if let Some(b) = c.bearer_token_auth.as_mut() {
            out.push(slot!(b, "custom_provider_config.bearer_token_auth", token, token_plaintext, true));
        }
    }
    out
}

/// Removes every plaintext credential from `model`, for responses and exported configs.
pub fn strip_plaintext(model: &mut ExternalModel) {
    for slot in slots(model) {
        *slot.plaintext = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelgate_wire::{AnthropicConfig, BearerTokenAuth, CustomProviderConfig};

    #[test]
    fn strips_every_plaintext() {
        let mut m = ExternalModel {
            provider: "anthropic".into(),
            name: "claude".into(),
            task: "llm/v1/chat".into(),
            anthropic_config: Some(AnthropicConfig {
                anthropic_api_key: None,
                anthropic_api_key_plaintext: Some("sk-ant".into()),
            }),
            custom_provider_config: Some(CustomProviderConfig {
                custom_provider_url: Some("http://x".into()),
                api_key_auth: None,
                bearer_token_auth: Some(BearerTokenAuth { token: None, token_plaintext: Some("t".into()) }),
            }),
            ..Default::default()
        };
        assert_eq!(slots(&mut m).len(), 2);
        strip_plaintext(&mut m);
        let json = serde_json::to_string(&m).unwrap();
        assert!(!json.contains("sk-ant") && !json.contains("plaintext"), "{json}");
    }
}
