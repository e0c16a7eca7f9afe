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
    /// One unit of provisioned throughput: tokens per second it guarantees.
    pub band_tokens_per_second: u64,
    /// What one unit costs an hour, USD.
    pub band_usd_per_hour: f64,
}

/// Every foundation model this release knows.
pub const CATALOG: [FoundationModel; 1] = [FoundationModel {
    name: "system.ai.all-minilm-l6-v2",
    task: "llm/v1/embeddings",
    runtime: Runtime::Embedded,
    dir: "all-MiniLM-L6-v2",
    description: "Sentence embeddings, 384 dimensions: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), run in-process",
    // About what one CPU core embeds (bench/results/2026-11-29-issue15-hosting.md).
    band_tokens_per_second: 1000,
    band_usd_per_hour: 0.05,
}];

/// Pay-per-token against provisioned throughput for some traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakEven {
    /// What the traffic cost per token, USD.
    pub pay_per_token_usd: f64,
    /// Units of provisioned throughput the busiest hour needed.
    pub bands: u64,
    /// What those units would have cost over the window, USD.
    pub provisioned_usd: f64,
    /// Tokens per hour above which one unit costs less than paying per token.
    pub break_even_tokens_per_hour: f64,
    /// `pay-per-token` or `provisioned`: the cheaper for this traffic.
    pub cheaper: &'static str,
}

/// Compares paying `usd_per_million` per token for `tokens` with provisioning enough units of
/// `m` for the busiest hour (`peak_tokens_per_hour`) for `hours`.
pub fn break_even(
    m: &FoundationModel,
    tokens: u64,
    usd_per_million: f64,
    peak_tokens_per_hour: u64,
    hours: f64,
) -> BreakEven {
    let pay_per_token_usd = tokens as f64 * usd_per_million / 1e6;
    let per_hour = m.band_tokens_per_second.max(1) * 3600;
    let bands = peak_tokens_per_hour.div_ceil(per_hour).max(1);
    let provisioned_usd = bands as f64 * m.band_usd_per_hour * hours;
    let break_even_tokens_per_hour =
        if usd_per_million > 0.0 { m.band_usd_per_hour / usd_per_million * 1e6 } else { f64::INFINITY };
    let cheaper = if provisioned_usd < pay_per_token_usd { "provisioned" } else { "pay-per-token" };
    BreakEven { pay_per_token_usd, bands, provisioned_usd, break_even_tokens_per_hour, cheaper }
}

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

    #[test]
    fn break_even_compares_a_month_of_traffic() {
        let m = &CATALOG[0]; // 1000 tokens/s a unit at 0.05 USD an hour
        let month = 720.0;
        // Light traffic: 10M tokens at 0.01/M = 0.10 USD against 36 USD of one unit.
        let light = break_even(m, 10_000_000, 0.01, 100_000, month);
        assert_eq!((light.bands, light.cheaper), (1, "pay-per-token"));
        assert!((light.pay_per_token_usd - 0.10).abs() < 1e-9 && (light.provisioned_usd - 36.0).abs() < 1e-9);
        // One unit pays off above 5M tokens an hour (0.05 / 0.01 per million).
        assert!((light.break_even_tokens_per_hour - 5_000_000.0).abs() < 1e-6);
        // Heavy steady traffic: 3.3M tokens every hour (0.92 of a unit) at 0.02/M.
        let heavy = break_even(m, 3_300_000 * 720, 0.02, 3_300_000, month);
        assert_eq!((heavy.bands, heavy.cheaper), (1, "provisioned"));
        // A peak of 7.3M tokens in one hour needs 3 units (3.6M each).
        assert_eq!(break_even(m, 7_300_000, 0.02, 7_300_000, 1.0).bands, 3);
    }
}
