//! Token counts for answers whose provider reports none.
//!
//! Counted with OpenAI's o200k_base BPE (the tokenizer files ship inside the crate; nothing is
//! downloaded). For non-OpenAI models this is an estimate from a real tokenizer, never a
//! character heuristic; provider-reported numbers always win. The tables load once, on first use.

/// Tokens in `text`.
pub fn count(text: &str) -> u64 {
    tiktoken_rs::o200k_base_singleton().encode_ordinary(text).len() as u64
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_with_a_real_tokenizer() {
        // Known o200k_base encodings.
        assert_eq!(super::count("hello world"), 2);
        assert_eq!(super::count("hello"), 1);
        assert_eq!(super::count(""), 0);
    }
}
