//! Stored configs: sealing plaintext credentials before storage, and reading them back.

use modelgate_core::cipher::Cipher;
use modelgate_core::credentials;
use modelgate_store::ConfigRecord;
use modelgate_wire::EndpointCoreConfigInput;

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
    let context = credential_context(endpoint_id);
    for e in config.served_entities.iter_mut().flatten() {
        if let Some(m) = e.external_model.as_mut() {
            for slot in credentials::slots(m) {
                if let Some(p) = slot.plaintext.as_mut() {
                    *p = cipher.seal_text(&context, p).map_err(|e| ApiError::Internal(e.to_string()))?;
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

/// The config as clients may see it: plaintext credentials removed.
pub fn public(mut config: EndpointCoreConfigInput) -> EndpointCoreConfigInput {
    for e in config.served_entities.iter_mut().flatten() {
        if let Some(m) = e.external_model.as_mut() {
            credentials::strip_plaintext(m);
        }
    }
    config
}
