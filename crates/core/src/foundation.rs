//! The catalog of foundation models: models every workspace may serve by name
//! (`entity_name: "system.ai.<model>"`, no registration), run by modelgate from files the operator
//! installs once. The built-in entries ([`builtin`]) need nothing else; an operator adds others
//! (chat models on a process runtime, say) in a catalog file. Their tokens are priced per token
//! under provider `modelgate` in the price table, or by the hour of provisioned throughput.

use serde::Deserialize;

use crate::models::Runtime;
use crate::validate::ValidationError;

/// A foundation model of the catalog.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FoundationModel {
    /// What a served entity names it by: `system.ai.<model>`.
    pub name: String,
    /// What it serves (`llm/v1/chat`, `llm/v1/embeddings`, ...).
    pub task: String,
    /// How it runs.
    #[serde(deserialize_with = "runtime")]
    pub runtime: Runtime,
    /// The directory, under the server's foundation-models directory, that holds its files.
    pub dir: String,
    /// What it is.
    #[serde(default)]
    pub description: String,
    /// The program a `process` model runs, with `$PORT` and `$MODEL_PATH` filled in.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// One unit (band) of provisioned throughput: tokens per second it guarantees.
    pub band_tokens_per_second: u64,
    /// What one band costs an hour, USD.
    pub band_usd_per_hour: f64,
}

fn runtime<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Runtime, D::Error> {
    let s = String::deserialize(d)?;
    Runtime::parse(&s)
        .ok_or_else(|| serde::de::Error::custom(format!("'{s}' is not one of {}", Runtime::ALL.join(", "))))
}

/// The models built into this release.
pub fn builtin() -> Vec<FoundationModel> {
    vec![FoundationModel {
        name: "system.ai.all-minilm-l6-v2".into(),
        task: "llm/v1/embeddings".into(),
        runtime: Runtime::Embedded,
        dir: "all-MiniLM-L6-v2".into(),
        description:
            "Sentence embeddings, 384 dimensions: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), run in-process"
                .into(),
        command: None,
        // About what one CPU core embeds (bench/results/2026-11-29-issue15-hosting.md).
        band_tokens_per_second: 1000,
        band_usd_per_hour: 0.05,
    }]
}

/// Every foundation model a server knows: the built-in ones and the operator's.
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    models: Vec<FoundationModel>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog { models: builtin() }
    }
}

impl Catalog {
    /// The built-in models and `extra` (the operator's), each checked: a `system.ai.` name no
    /// other entry has, a task its runtime serves, a command exactly for `process`, a band.
    /// `path` names where `extra` came from, for the errors.
    pub fn with(extra: Vec<FoundationModel>, path: &str) -> Result<Catalog, ValidationError> {
        let mut models = builtin();
        for (i, m) in extra.into_iter().enumerate() {
            let at = |field: &str| format!("{path}: model[{i}].{field}");
            let e = |field: &str, message: String| ValidationError { path: at(field), message };
            let short = m.name.strip_prefix("system.ai.").unwrap_or_default();
            if short.is_empty() || !short.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)) {
                return Err(e("name", format!("'{}' must be system.ai.<letters, digits, - or _>", m.name)));
            }
            if models.iter().any(|o| o.name == m.name) {
                return Err(e("name", format!("'{}' is already in the catalog", m.name)));
            }
            let (_, task) = crate::models::check_version(m.runtime.as_str(), Some(&m.task), m.command.as_deref(), None)
                .map_err(|v| e(&v.path, v.message))?;
            // Provisioned bands are tokens per second: an image model has no such measure.
            if task == crate::models::SCORING || task == "llm/v1/images" {
                return Err(e(
                    "task",
                    format!("'{task}': a foundation model serves llm/v1/chat, completions or embeddings"),
                ));
            }
            if m.dir.is_empty() || m.dir.contains("..") || m.dir.starts_with('/') {
                return Err(e(
                    "dir",
                    format!("'{}' must be a directory name under the foundation-models directory", m.dir),
                ));
            }
            if m.band_tokens_per_second == 0 {
                return Err(e("band_tokens_per_second", "must be at least 1".into()));
            }
            if !(m.band_usd_per_hour.is_finite() && m.band_usd_per_hour >= 0.0) {
                return Err(e(
                    "band_usd_per_hour",
                    format!("must be a price of 0 or more, got {}", m.band_usd_per_hour),
                ));
            }
            models.push(m);
        }
        Ok(Catalog { models })
    }

    /// The entry named `name`.
    pub fn find(&self, name: &str) -> Option<&FoundationModel> {
        self.models.iter().find(|m| m.name == name)
    }

    /// Every entry, built-in ones first.
    pub fn models(&self) -> &[FoundationModel] {
        &self.models
    }
}

/// How a served entity provisions throughput of a foundation model: bands between a floor and a
/// ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Provisioned {
    /// Bands always held (0: none while idle).
    pub min_bands: u64,
    /// Most bands: the capacity.
    pub max_bands: u64,
}

/// The provisioned throughput a served entity asks for, checked against the model's band:
/// `min/max_provisioned_throughput` in tokens per second (multiples of the band, as Databricks'
/// `throughput_chunk_size`), or `provisioned_model_units` (bands; min and max both). `None` when
/// it asks for none (pay per token). Errors name the field.
pub fn provisioned(
    m: &FoundationModel,
    min_tps: Option<i64>,
    max_tps: Option<i64>,
    units: Option<i64>,
) -> Result<Option<Provisioned>, (&'static str, String)> {
    let band = m.band_tokens_per_second;
    let bands = |field: &'static str, v: i64| -> Result<u64, (&'static str, String)> {
        let v = u64::try_from(v).map_err(|_| (field, format!("must not be negative, got {v}")))?;
        if !v.is_multiple_of(band) {
            return Err((field, format!("{v} tokens/s is not a multiple of {}'s band of {band} tokens/s", m.name)));
        }
        Ok(v / band)
    };
    let p = match (min_tps, max_tps, units) {
        (None, None, None) => return Ok(None),
        (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
            return Err((
                "provisioned_model_units",
                "give either provisioned_model_units or min/max_provisioned_throughput, not both".into(),
            ));
        }
        (None, None, Some(u)) => {
            let u = u64::try_from(u)
                .ok()
                .filter(|u| *u > 0)
                .ok_or(("provisioned_model_units", format!("must be at least 1, got {u}")))?;
            Provisioned { min_bands: u, max_bands: u }
        }
        (min, Some(max), None) => {
            let max_bands = bands("max_provisioned_throughput", max)?;
            let min_bands = min.map(|v| bands("min_provisioned_throughput", v)).transpose()?.unwrap_or(0);
            if max_bands == 0 {
                return Err(("max_provisioned_throughput", format!("must be at least one band ({band} tokens/s)")));
            }
            if min_bands > max_bands {
                return Err(("min_provisioned_throughput", "must not exceed max_provisioned_throughput".into()));
            }
            Provisioned { min_bands, max_bands }
        }
        (Some(_), None, None) => {
            return Err(("max_provisioned_throughput", "is required with min_provisioned_throughput".into()));
        }
    };
    const MOST_BANDS: u64 = 10_000;
    if p.max_bands > MOST_BANDS {
        return Err((
            "max_provisioned_throughput",
            format!("at most {MOST_BANDS} bands ({} tokens/s)", MOST_BANDS * band),
        ));
    }
    Ok(Some(p))
}

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

/// Compares what `tokens` cost paid per token (`pay_per_token_usd`, from the price table) with
/// provisioning enough bands of `m` for the busiest hour (`peak_tokens_per_hour`) for `hours`.
pub fn break_even(
    m: &FoundationModel,
    tokens: u64,
    pay_per_token_usd: f64,
    peak_tokens_per_hour: u64,
    hours: f64,
) -> BreakEven {
    let per_hour = m.band_tokens_per_second.max(1) * 3600;
    let bands = peak_tokens_per_hour.div_ceil(per_hour).max(1);
    let provisioned_usd = bands as f64 * m.band_usd_per_hour * hours;
    let usd_per_token = if tokens > 0 { pay_per_token_usd / tokens as f64 } else { 0.0 };
    let break_even_tokens_per_hour =
        if usd_per_token > 0.0 { m.band_usd_per_hour / usd_per_token } else { f64::INFINITY };
    let cheaper = if provisioned_usd < pay_per_token_usd { "provisioned" } else { "pay-per-token" };
    BreakEven { pay_per_token_usd, bands, provisioned_usd, break_even_tokens_per_hour, cheaper }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_by_name_and_are_foundation_names() {
        let c = Catalog::default();
        assert_eq!(c.find("system.ai.all-minilm-l6-v2").map(|m| m.task.as_str()), Some("llm/v1/embeddings"));
        assert_eq!(c.find("team.models.churn"), None);
        assert!(c.models().iter().all(|m| m.name.starts_with("system.ai.")));
    }

    #[test]
    fn break_even_compares_a_month_of_traffic() {
        let m = &builtin()[0]; // 1000 tokens/s a unit at 0.05 USD an hour
        let month = 720.0;
        // Light traffic: 10M tokens at 0.01/M = 0.10 USD against 36 USD of one unit.
        let light = break_even(m, 10_000_000, 0.10, 100_000, month);
        assert_eq!((light.bands, light.cheaper), (1, "pay-per-token"));
        assert!((light.pay_per_token_usd - 0.10).abs() < 1e-9 && (light.provisioned_usd - 36.0).abs() < 1e-9);
        // One unit pays off above 5M tokens an hour (0.05 / 0.01 per million).
        assert!((light.break_even_tokens_per_hour - 5_000_000.0).abs() < 1e-6);
        // Heavy steady traffic: 3.3M tokens every hour (0.92 of a unit) at 0.02/M.
        let heavy = break_even(m, 3_300_000 * 720, 0.02 * 3.3 * 720.0, 3_300_000, month);
        assert_eq!((heavy.bands, heavy.cheaper), (1, "provisioned"));
        // A peak of 7.3M tokens in one hour needs 3 units (3.6M each).
        assert_eq!(break_even(m, 7_300_000, 0.146, 7_300_000, 1.0).bands, 3);
    }

    fn chat() -> FoundationModel {
        FoundationModel {
            name: "system.ai.tiny-chat".into(),
            task: "llm/v1/chat".into(),
            runtime: Runtime::Process,
            dir: "tiny-chat".into(),
            description: String::new(),
            command: Some(vec!["llama-server".into(), "--port".into(), "$PORT".into()]),
            band_tokens_per_second: 50,
            band_usd_per_hour: 1.5,
        }
    }

    #[test]
    fn an_operator_adds_checked_models() {
        let c = Catalog::with(vec![chat()], "catalog.toml").unwrap();
        assert_eq!(c.find("system.ai.tiny-chat").map(|m| m.band_tokens_per_second), Some(50));
        assert_eq!(c.models().len(), builtin().len() + 1);
        let bad = |f: fn(&mut FoundationModel), field: &str| {
            let mut m = chat();
            f(&mut m);
            let e = Catalog::with(vec![m], "catalog.toml").unwrap_err();
            assert_eq!(e.path, format!("catalog.toml: model[0].{field}"), "{e:?}");
        };
        bad(|m| m.name = "tiny-chat".into(), "name");
        bad(|m| m.name = "system.ai.all-minilm-l6-v2".into(), "name");
        bad(|m| m.command = None, "command");
        bad(|m| m.task = "llm/v1/audio".into(), "task");
        bad(|m| m.task = "llm/v1/images".into(), "task");
        bad(|m| m.dir = "../etc".into(), "dir");
        bad(|m| m.band_tokens_per_second = 0, "band_tokens_per_second");
        bad(|m| m.band_usd_per_hour = -1.0, "band_usd_per_hour");
    }

    #[test]
    fn provisioned_throughput_is_whole_bands() {
        let m = chat(); // a band is 50 tokens/s
        assert_eq!(provisioned(&m, None, None, None), Ok(None));
        assert_eq!(provisioned(&m, Some(0), Some(150), None), Ok(Some(Provisioned { min_bands: 0, max_bands: 3 })));
        assert_eq!(provisioned(&m, None, Some(100), None), Ok(Some(Provisioned { min_bands: 0, max_bands: 2 })));
        assert_eq!(provisioned(&m, None, None, Some(2)), Ok(Some(Provisioned { min_bands: 2, max_bands: 2 })));
        let field = |r: Result<Option<Provisioned>, (&'static str, String)>| r.unwrap_err().0;
        assert_eq!(field(provisioned(&m, None, Some(120), None)), "max_provisioned_throughput");
        assert_eq!(field(provisioned(&m, Some(200), Some(100), None)), "min_provisioned_throughput");
        assert_eq!(field(provisioned(&m, Some(50), None, None)), "max_provisioned_throughput");
        assert_eq!(field(provisioned(&m, None, Some(0), None)), "max_provisioned_throughput");
        assert_eq!(field(provisioned(&m, None, Some(100), Some(1))), "provisioned_model_units");
        assert_eq!(field(provisioned(&m, None, None, Some(0))), "provisioned_model_units");
        assert!(provisioned(&m, None, Some(120), None).unwrap_err().1.contains("multiple of"));
    }
}
