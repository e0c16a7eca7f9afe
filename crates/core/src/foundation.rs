//! The built-in catalog of foundation models: models every workspace may serve by name
//! (`entity_name: "system.ai.<model>"`, no registration), run by modelgate from files the operator
//! installs once. Their tokens are priced per token under provider `modelgate` in the price table.

use crate::models::Runtime;

/// A foundation model of the catalog.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoundationModel {
    /// What a served entity names it by.
    pub name: &'static str,
    /// What it serves.
    pub task: &'static str,
    /// How it runs.
    pub runtime: Runtime,
    /// The directory, under the server's foundation-models directory, that holds its files.
    pub dir: &'static str,
    /// What it is.
    pub description: &'static str,
}

/// Every foundation model this release knows.
pub const CATALOG: [FoundationModel; 1] = [FoundationModel {
    name: "system.ai.all-minilm-l6-v2",
    task: "llm/v1/embeddings",
    runtime: Runtime::Embedded,
    dir: "all-MiniLM-L6-v2",
    description: "Sentence embeddings, 384 dimensions: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), run in-process",
}];

/// The catalog entry named `name`.
pub fn find(name: &str) -> Option<&'static FoundationModel> {
    CATALOG.iter().find(|m| m.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_by_name_and_are_foundation_names() {
        assert_eq!(find("system.ai.all-minilm-l6-v2").map(|m| m.task), Some("llm/v1/embeddings"));
        assert_eq!(find("team.models.churn"), None);
        assert!(CATALOG.iter().all(|m| m.name.starts_with("system.ai.")));
    }
}
