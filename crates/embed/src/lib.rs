//! Sentence embeddings in-process: a BERT-family encoder (all-MiniLM, BGE, GTE) loaded from a
//! directory holding `config.json`, `tokenizer.json` and `model.safetensors`, run on the CPU with
//! candle; each text's token vectors are averaged over its real tokens (the attention mask) and
//! scaled to unit length, as sentence-transformers does for these models.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

/// Longest input, in tokens (BERT's position limit for these models); longer texts are cut.
pub const MAX_TOKENS: usize = 512;

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A file is missing or does not parse.
    #[error("cannot load the model: {0}")]
    Load(String),
    /// The forward pass failed.
    #[error("cannot embed: {0}")]
    Run(String),
}

/// A loaded sentence-embedding model.
pub struct Embedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dimensions: usize,
}

/// Embeddings of a batch, with the tokens they read.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    /// One unit-length vector per input, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens read, special tokens included (what usage counts).
    pub tokens: usize,
}

fn load_err(what: &str) -> impl Fn(String) -> EmbedError + '_ {
    move |e| EmbedError::Load(format!("{what}: {e}"))
}

impl Embedder {
    /// Loads the model in `dir` (memory-mapping its weights).
    pub fn load(dir: &Path) -> Result<Embedder, EmbedError> {
        let config =
            std::fs::read_to_string(dir.join("config.json")).map_err(|e| load_err("config.json")(e.to_string()))?;
        let config: Config = serde_json::from_str(&config).map_err(|e| load_err("config.json")(e.to_string()))?;
        let mut tokenizer =
            Tokenizer::from_file(dir.join("tokenizer.json")).map_err(|e| load_err("tokenizer.json")(e.to_string()))?;
        // Shipped tokenizers often pad every input to a fixed length; pad a batch to its longest
        // input instead (the mask keeps pads out of the mean either way).
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..Default::default() }));
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: MAX_TOKENS, ..Default::default() }))
            .map_err(|e| load_err("tokenizer.json")(e.to_string()))?;
        let device = Device::Cpu;
        let weights = dir.join("model.safetensors");
        // SAFETY (of the mapping, inside candle): the file is read-only model weights that
        // nothing rewrites while the server runs.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &device) }
            .map_err(|e| load_err("model.safetensors")(e.to_string()))?;
        let dimensions = config.hidden_size;
        let model = BertModel::load(vb, &config).map_err(|e| load_err("model.safetensors")(e.to_string()))?;
        Ok(Embedder { model, tokenizer, device, dimensions })
    }

    /// The length of its vectors.
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Embeds `texts` as one batch.
    pub fn embed(&self, texts: &[String]) -> Result<Embedded, EmbedError> {
        if texts.is_empty() {
            return Ok(Embedded { vectors: Vec::new(), tokens: 0 });
        }
        let run = |e: candle_core::Error| EmbedError::Run(e.to_string());
        let encodings =
            self.tokenizer.encode_batch(texts.to_vec(), true).map_err(|e| EmbedError::Run(e.to_string()))?;
        let tokens = encodings.iter().map(|e| e.get_attention_mask().iter().filter(|m| **m == 1).count()).sum();
        let rows = |f: &dyn Fn(&tokenizers::Encoding) -> &[u32]| -> Result<Tensor, EmbedError> {
            let rows: Vec<Tensor> =
                encodings.iter().map(|e| Tensor::new(f(e), &self.device)).collect::<Result<_, _>>().map_err(run)?;
            Tensor::stack(&rows, 0).map_err(run)
        };
        let ids = rows(&|e| e.get_ids())?;
        let types = rows(&|e| e.get_type_ids())?;
        let mask = rows(&|e| e.get_attention_mask())?;
        let hidden = self.model.forward(&ids, &types, Some(&mask)).map_err(run)?;
        // Mean over the real tokens: sum(hidden * mask) / sum(mask).
        let mask = mask.to_dtype(DType::F32).map_err(run)?.unsqueeze(2).map_err(run)?;
        let summed = hidden.broadcast_mul(&mask).map_err(run)?.sum(1).map_err(run)?;
        let counts = mask.sum(1).map_err(run)?;
        let mean = summed.broadcast_div(&counts).map_err(run)?;
        let norms = mean.sqr().map_err(run)?.sum_keepdim(1).map_err(run)?.sqrt().map_err(run)?;
        let unit = mean.broadcast_div(&norms).map_err(run)?;
        let vectors = unit.to_vec2::<f32>().map_err(run)?;
        Ok(Embedded { vectors, tokens })
    }
}

/// The cosine similarity of two vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b)).max(f32::EPSILON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_unit_and_opposite_vectors() {
        assert!((cosine(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-6);
        assert!((cosine(&[1.0, 0.0], &[-1.0, 0.0]) + 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn a_directory_without_a_model_is_a_load_error_naming_the_file() {
        let d = std::env::temp_dir();
        let err = Embedder::load(&d.join("no-such-model-dir")).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("config.json"), "{err}");
    }
}
