//! The external-model providers modelgate can serve, parsed once from `external_model.provider`.

use std::fmt;

/// An `external_model.provider`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// OpenAI and Azure OpenAI.
    OpenAi,
    /// Anthropic.
    Anthropic,
    /// Cohere.
    Cohere,
    /// AI21 Labs (an OpenAI-compatible API).
    Ai21Labs,
    /// Amazon Bedrock.
    AmazonBedrock,
    /// Google Cloud Vertex AI (Gemini).
    GoogleCloudVertexAi,
    /// Another Databricks-compatible serving endpoint.
    DatabricksModelServing,
    /// Any OpenAI-compatible server.
    Custom,
}

impl Provider {
    /// Every provider, in the order the docs list them.
    pub const ALL: [Provider; 8] = [
        Provider::OpenAi,
        Provider::Anthropic,
        Provider::Cohere,
        Provider::Ai21Labs,
        Provider::AmazonBedrock,
        Provider::GoogleCloudVertexAi,
        Provider::DatabricksModelServing,
        Provider::Custom,
    ];

    /// Parses the wire name (`openai`, `amazon-bedrock`, ...).
    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Cohere => "cohere",
            Provider::Ai21Labs => "ai21labs",
            Provider::AmazonBedrock => "amazon-bedrock",
            Provider::GoogleCloudVertexAi => "google-cloud-vertex-ai",
            Provider::DatabricksModelServing => "databricks-model-serving",
            Provider::Custom => "custom",
        }
    }

    /// The config object this provider takes (`openai_config`, ...).
    pub fn config_key(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai_config",
            Provider::Anthropic => "anthropic_config",
            Provider::Cohere => "cohere_config",
            Provider::Ai21Labs => "ai21labs_config",
            Provider::AmazonBedrock => "amazon_bedrock_config",
            Provider::GoogleCloudVertexAi => "google_cloud_vertex_ai_config",
            Provider::DatabricksModelServing => "databricks_model_serving_config",
            Provider::Custom => "custom_provider_config",
        }
    }

    /// The tasks the provider offers, where it does not offer every task.
    pub fn tasks(self) -> Option<&'static [&'static str]> {
        match self {
            Provider::Anthropic => Some(&["llm/v1/chat", "llm/v1/completions"]),
            Provider::Ai21Labs => Some(&["llm/v1/chat"]),
            Provider::Cohere => Some(&["llm/v1/chat", "llm/v1/completions", "llm/v1/embeddings"]),
            _ => None,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.as_str()), Some(p));
        }
        assert_eq!(Provider::parse("palm"), None);
        assert_eq!(Provider::parse("OpenAI"), None, "names are exact");
    }
}
