//! The price table: what a provider charges per million tokens (and per image, for image models),
//! and the cost of one request.
//!
//! A built-in table ships with each release ([`PriceTable::builtin`], versioned by date). A
//! deployment can override or extend it with a file of the same shape
//! ([`PriceTable::with_overrides`]); the version then names both. Every usage record stores the
//! version it was priced with, so a correction can be re-applied to past records.

use std::collections::HashMap;

use serde::Deserialize;

const BUILTIN: &str = include_str!("../prices/builtin.json");

/// Prices of one model, in USD per million tokens (and USD per image).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Input tokens.
    #[serde(default)]
    pub input: f64,
    /// Input tokens read from the provider's prompt cache (default: the input price).
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// Input tokens written to the prompt cache (Anthropic, Bedrock; default: the input price).
    #[serde(default)]
    pub cache_write: Option<f64>,
    /// Output tokens, reasoning tokens included.
    #[serde(default)]
    pub output: f64,
    /// Each image generated, in USD (image models priced per image rather than by tokens).
    #[serde(default)]
    pub per_image: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    provider: String,
    model: String,
    #[serde(flatten)]
    price: Price,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: String,
    #[serde(default)]
    #[allow(dead_code)]
    unit: Option<String>,
    prices: Vec<Entry>,
}

/// Token counts to price.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    /// All input tokens, cached and cache-written ones included.
    pub input: u64,
    /// Of which read from the cache.
    pub cached_input: u64,
    /// Of which written to the cache.
    pub cache_write: u64,
    /// All output tokens, reasoning included.
    pub output: u64,
    /// Images generated.
    pub images: u64,
}

/// A versioned price table.
#[derive(Debug, Clone)]
pub struct PriceTable {
    version: String,
    /// provider → model → price; nested so a lookup borrows its keys instead of allocating.
    prices: HashMap<String, HashMap<String, Price>>,
}

impl PriceTable {
    /// The table built into this release.
    pub fn builtin() -> PriceTable {
        let mut t = PriceTable { version: String::new(), prices: HashMap::new() };
        // The built-in file is part of the source and checked by a unit test.
        if let Ok(v) = t.merge(BUILTIN) {
            t.version = v;
        }
        t
    }

    fn merge(&mut self, text: &str) -> Result<String, String> {
        let file: File = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for (i, e) in file.prices.iter().enumerate() {
            let p = &e.price;
            let values = [Some(p.input), p.cached_input, p.cache_write, Some(p.output), p.per_image];
            if values.into_iter().flatten().any(|v| !v.is_finite() || v < 0.0) {
                return Err(format!(
                    "prices[{i}] ({}/{}): prices must be zero or positive numbers",
                    e.provider, e.model
                ));
            }
        }
        for e in file.prices {
            self.prices.entry(e.provider).or_default().insert(e.model, e.price);
        }
        Ok(file.version)
    }

    /// This table with the prices of an override file (JSON of the same shape as the built-in
    /// one) replacing or adding entries. The version becomes `<built-in>+<file version>`.
    pub fn with_overrides(mut self, text: &str) -> Result<PriceTable, String> {
        let v = self.merge(text)?;
        self.version = format!("{}+{v}", self.version);
        Ok(self)
    }

    /// The version to store with each priced record.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The price of `model` at `provider`: an exact entry, else the longest entry the model name
    /// starts with at a `-`, `:`, `@` or `.` boundary (dated and regional variants such as
    /// `gpt-4o-2024-08-06` or `anthropic.claude-3-5-haiku-20241022-v1:0`). Bedrock's
    /// cross-region prefixes (`us.`, `eu.`, `apac.`, `global.`) are ignored.
    pub fn lookup(&self, provider: &str, model: &str) -> Option<&Price> {
        let mut name = model;
        if provider == "amazon-bedrock" {
            for region in ["us.", "eu.", "apac.", "global."] {
                name = name.strip_prefix(region).unwrap_or(name);
            }
        }
        let models = self.prices.get(provider)?;
        if let Some(p) = models.get(name) {
            return Some(p);
        }
        models
            .iter()
            .filter(|(m, _)| {
                name.len() > m.len()
                    && name.starts_with(m.as_str())
                    && name[m.len()..].starts_with(['-', ':', '@', '.'])
            })
            .max_by_key(|(m, _)| m.len())
            .map(|(_, p)| p)
    }

    /// The cost in USD, or `None` when the table has no price for the model.
    pub fn cost(&self, provider: &str, model: &str, t: Tokens) -> Option<f64> {
        let p = self.lookup(provider, model)?;
        let cached = t.cached_input.min(t.input);
        let written = t.cache_write.min(t.input - cached);
        let plain = t.input - cached - written;
        let usd = plain as f64 * p.input
            + cached as f64 * p.cached_input.unwrap_or(p.input)
            + written as f64 * p.cache_write.unwrap_or(p.input)
            + t.output as f64 * p.output;
        Some(usd / 1e6 + t.images as f64 * p.per_image.unwrap_or(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_table_parses_and_has_a_version() {
        let t = PriceTable::builtin();
        assert!(t.version().starts_with("builtin-"), "{}", t.version());
        assert!(t.prices.values().map(HashMap::len).sum::<usize>() > 40);
    }

    #[test]
    fn cached_reasoning_and_cache_writes_are_priced_as_billed() {
        let t = PriceTable::builtin();
        // gpt-4o: 2.50 in, 1.25 cached, 10.00 out per million.
        let c = t.cost(
            "openai",
            "gpt-4o",
            Tokens { input: 1_000_000, cached_input: 400_000, output: 100_000, ..Default::default() },
        );
        assert!((c.unwrap() - (0.6 * 2.5 + 0.4 * 1.25 + 0.1 * 10.0)).abs() < 1e-9);
        // Reasoning tokens are part of output and priced as output.
        let c = t.cost("openai", "o3", Tokens { input: 0, output: 2_000_000, ..Default::default() });
        assert!((c.unwrap() - 16.0).abs() < 1e-9);
        // Anthropic: reads at 0.1×, writes at 1.25× the input price.
        let c = t.cost(
            "anthropic",
            "claude-sonnet-4-5",
            Tokens { input: 1_000_000, cached_input: 500_000, cache_write: 250_000, output: 0, images: 0 },
        );
        assert!((c.unwrap() - (0.25 * 3.0 + 0.5 * 0.3 + 0.25 * 3.75)).abs() < 1e-9);
    }

    #[test]
    fn images_are_priced_per_image_or_by_their_tokens() {
        let t = PriceTable::builtin();
        let per_image =
            t.cost("amazon-bedrock", "amazon.titan-image-generator-v2:0", Tokens { images: 3, ..Default::default() });
        assert!((per_image.unwrap() - 0.03).abs() < 1e-9);
        // GPT image models report tokens: text in at 5, image out at 40 per million.
        let tokens =
            t.cost("openai", "gpt-image-1", Tokens { input: 100, output: 4_000, images: 1, ..Default::default() });
        assert!((tokens.unwrap() - (100.0 * 5.0 + 4_000.0 * 40.0) / 1e6).abs() < 1e-12);
        assert_eq!(t.cost("openai", "gpt-4o", Tokens { images: 5, ..Default::default() }), Some(0.0));
        let bad = r#"{"version": "x", "prices": [{"provider": "openai", "model": "m", "per_image": -0.1}]}"#;
        assert!(PriceTable::builtin().with_overrides(bad).is_err());
    }

    #[test]
    fn dated_and_regional_variants_resolve_to_their_family() {
        let t = PriceTable::builtin();
        assert_eq!(t.lookup("openai", "gpt-4o-2024-08-06"), t.lookup("openai", "gpt-4o"));
        assert_eq!(t.lookup("openai", "gpt-4o-mini-2024-07-18"), t.lookup("openai", "gpt-4o-mini"));
        assert_eq!(
            t.lookup("amazon-bedrock", "us.anthropic.claude-3-5-haiku-20241022-v1:0"),
            t.lookup("amazon-bedrock", "anthropic.claude-3-5-haiku")
        );
        assert!(t.lookup("openai", "gpt-4oz").is_none(), "no match without a boundary");
        // Claude on Vertex AI: dated with '@', at Anthropic's list price.
        assert_eq!(
            t.lookup("google-cloud-vertex-ai", "claude-sonnet-4@20250514"),
            t.lookup("anthropic", "claude-sonnet-4")
        );
        assert!(t.lookup("custom", "gpt-4o").is_none(), "self-hosted models have no list price");
    }

    #[test]
    fn overrides_replace_and_add_and_bad_files_are_refused() {
        let file = r#"{"version": "acme-1", "prices": [
            {"provider": "openai", "model": "gpt-4o", "input": 2.0, "output": 8.0},
            {"provider": "custom", "model": "llama-3-70b", "input": 0.5, "output": 0.5}]}"#;
        let t = PriceTable::builtin().with_overrides(file).unwrap();
        assert!(t.version().ends_with("+acme-1"));
        assert_eq!(t.lookup("openai", "gpt-4o").unwrap().input, 2.0);
        assert!(t.lookup("custom", "llama-3-70b").is_some());
        let bad = r#"{"version": "x", "prices": [{"provider": "openai", "model": "m", "input": -1, "output": 1}]}"#;
        assert!(PriceTable::builtin().with_overrides(bad).unwrap_err().contains("prices[0]"));
        assert!(PriceTable::builtin().with_overrides(r#"{"version": "x", "prices": [{"model": "m"}]}"#).is_err());
    }
}
