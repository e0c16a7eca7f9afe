//! Stored configs: sealing plaintext credentials before storage, reading them back, and resolving
//! an external model's credentials (references and sealed literals) into values.

use std::collections::{BTreeMap, HashMap};

use modelgate_core::SecretString;
use modelgate_core::cipher::Cipher;
use modelgate_core::credentials;
use modelgate_core::secret_ref::{self, SecretRef};
use modelgate_store::{ConfigRecord, Store, StoreError};
use modelgate_wire::{EndpointCoreConfigInput, ExternalModel};

use crate::error::ApiError;

/// Associated data for a secret value: binds the ciphertext to its scope and key.
pub fn secret_context(scope: &str, key: &str) -> String {
    format!("secret:{scope}/{key}")
}

/// Associated data for plaintext credentials inside an endpoint's configs.
pub fn credential_context(endpoint_id: &str) -> String {
    format!("endpoint:{endpoint_id}")
}

/// Replaces every `*_plaintext` credential with its sealed form.
pub fn seal_plaintext(
    config: &mut EndpointCoreConfigInput,
    cipher: &Cipher,
    endpoint_id: &str,
) -> Result<(), ApiError> {
    each_plaintext(config, |p| cipher.seal_text(&credential_context(endpoint_id), p).map_err(|e| e.to_string()))
}

/// Replaces every `*_plaintext` credential of `config` with `f` of it.
fn each_plaintext(
    config: &mut EndpointCoreConfigInput,
    f: impl Fn(&str) -> Result<String, String>,
) -> Result<(), ApiError> {
    for e in config.served_entities.iter_mut().flatten() {
        if let Some(m) = e.external_model.as_mut() {
            for slot in credentials::slots(m) {
                if let Some(p) = slot.plaintext.as_mut() {
                    *p = f(p).map_err(ApiError::Internal)?;
                }
            }
        }
    }
    Ok(())
}

/// Parses a stored config (sealed credentials still sealed).
pub fn parse_stored(record: &ConfigRecord) -> Result<EndpointCoreConfigInput, ApiError> {
    serde_json::from_str(&record.config).map_err(|e| {
        ApiError::Internal(format!(
            "stored config {} of endpoint {} does not parse: {e}",
            record.version, record.endpoint_id
        ))
    })
}

/// Opens the sealed plaintext credentials of a stored config (the reverse of [`seal_plaintext`]),
/// to compare it with a config as a client sent it. Never leaves the server.
pub fn unseal_plaintext(
    config: &mut EndpointCoreConfigInput,
    cipher: &Cipher,
    endpoint_id: &str,
) -> Result<(), ApiError> {
    each_plaintext(config, |p| cipher.open_text(&credential_context(endpoint_id), p).map_err(|e| e.to_string()))
}

/// Gives credentials the client left out the values they have in `stored` (unsealed), for an
/// entity of the same name and provider: `get` output, which never shows a plaintext credential,
/// can then be edited and applied back without the keys being lost or asked for again.
pub fn keep_unchanged_credentials(config: &mut EndpointCoreConfigInput, stored: &EndpointCoreConfigInput) {
    for entity in config.served_entities.iter_mut().flatten() {
        let Some(model) = entity.external_model.as_mut() else { continue };
        let before = stored.served_entities.iter().flatten().find(|s| {
            s.name.is_some()
                && s.name == entity.name
                && s.external_model.as_ref().is_some_and(|m| m.provider == model.provider)
        });
        let Some(mut old) = before.and_then(|s| s.external_model.clone()) else { continue };
        let old_slots = credentials::slots(&mut old);
        for slot in credentials::slots(model) {
            if slot.reference.is_some() || slot.plaintext.is_some() {
                continue;
            }
            if let Some(value) =
                old_slots.iter().find(|o| o.plaintext_field == slot.plaintext_field).and_then(|o| o.plaintext.clone())
            {
                *slot.plaintext = Some(value);
            }
        }
    }
}

/// The config as clients may see it: plaintext credentials removed.
pub fn public(mut config: EndpointCoreConfigInput) -> EndpointCoreConfigInput {
    for e in config.served_entities.iter_mut().flatten() {
        if let Some(m) = e.external_model.as_mut() {
            credentials::strip_plaintext(m);
        }
    }
    config
}

/// Every stored secret: its text, or why it has none (it does not decrypt, or is not UTF-8).
pub type SecretValues = HashMap<SecretRef, Result<SecretString, &'static str>>;

/// Reads and decrypts every stored secret.
pub async fn secret_values(store: &dyn Store, cipher: &Cipher) -> Result<SecretValues, StoreError> {
    let mut out = HashMap::new();
    for s in store.all_secrets().await? {
        let value = match cipher.open(&secret_context(&s.scope, &s.key), &s.value) {
            Err(_) => Err("does not decrypt with the master key"),
            Ok(v) => String::from_utf8(v).map(SecretString::new).map_err(|_| "is not UTF-8 text"),
        };
        out.insert(SecretRef { scope: s.scope, key: s.key }, value);
    }
    Ok(out)
}

/// An external model's credentials resolved to values, keyed by reference field
/// (`openai_config.openai_api_key`), and what kept any from resolving (naming fields and
/// references, never values).
pub struct ResolvedCredentials {
    /// The values that resolved.
    pub values: BTreeMap<&'static str, SecretString>,
    /// One line per credential that did not.
    pub problems: Vec<String>,
}

/// Resolves each credential of `model` (an entity of endpoint `endpoint_id`): a reference from
/// `secrets`, if `may_read` allows it (else the refusal it gives); a sealed literal with the
/// master key.
pub fn resolve_credentials(
    model: &ExternalModel,
    endpoint_id: &str,
    cipher: &Cipher,
    secrets: &SecretValues,
    may_read: &dyn Fn(&SecretRef, &str) -> Result<(), String>,
) -> ResolvedCredentials {
    let context = credential_context(endpoint_id);
    let mut out = ResolvedCredentials { values: BTreeMap::new(), problems: Vec::new() };
    for slot in credentials::slots(&mut model.clone()) {
        let field = slot.reference_field;
        let value = match (slot.reference.as_deref(), slot.plaintext.as_deref()) {
            (Some(r), _) => match secret_ref::parse(r) {
                Err(e) => Err(format!("external_model.{field}: {e}")),
                Ok(sr) => match may_read(&sr, field).map(|()| secrets.get(&sr)) {
                    Err(refused) => Err(refused),
                    Ok(None) => Err(format!("secret {sr} referenced by external_model.{field} does not exist")),
                    Ok(Some(Err(why))) => Err(format!("secret {sr} for external_model.{field} {why}")),
                    Ok(Some(Ok(v))) => Ok(v.clone()),
                },
            },
            (None, Some(sealed)) => cipher
                .open_text(&context, sealed)
                .map(SecretString::new)
                .map_err(|_| format!("external_model.{} does not decrypt with the master key", slot.plaintext_field)),
            (None, None) => continue,
        };
        match value {
            Ok(v) => {
                // A value that cannot be a key is reported, but kept: queries then fail saying why.
                if field != "google_cloud_vertex_ai_config.private_key"
                    && let Some(why) = credential_problem(v.expose())
                {
                    let source = slot.reference.as_deref().unwrap_or(slot.plaintext_field);
                    out.problems.push(format!(
                        "the value of {source} for external_model.{field} {why}; a provider would refuse it \
                         (or the request could not be sent): put it again without that"
                    ));
                }
                out.values.insert(field, v);
            }
            Err(problem) => out.problems.push(problem),
        }
    }
    out
}

/// What is wrong with a credential value that goes into an HTTP header (API keys, tokens, client
/// secrets), or `None`. Never echoes the value.
pub fn credential_problem(value: &str) -> Option<&'static str> {
    if value.trim() != value {
        Some("begins or ends with whitespace, such as the newline `echo` adds")
    } else if value.chars().any(char::is_control) {
        Some("contains a control character")
    } else if value.is_empty() {
        Some("is empty")
    } else {
        None
    }
}
