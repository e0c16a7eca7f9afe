//! Token counts for answers whose provider reports none.
//!
//! Counted with OpenAI's o200k_base BPE (the vocabulary ships inside tiktoken-rs; nothing is
//! downloaded). For non-OpenAI models this is an estimate from a real tokenizer, never a
//! character heuristic; provider-reported numbers always win. The vocabulary loads once, on first
//! use.
//!
//! The gateway only ever counts, so it keeps the vocabulary in the smallest form that counting
//! needs: every token's bytes in one buffer and a hash index of ranks, about 4 MB. tiktoken-rs's
//! encoder keeps three tables of the 200,000 tokens (bytes to rank, rank to bytes, sorted bytes),
//! about 30 MB resident for the life of the process. tiktoken-rs stays the source of the
//! vocabulary and the split pattern, and the reference the tests compare every count with.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::BuildHasher;
use std::sync::LazyLock;

use fancy_regex::Regex;
use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// Tokens in `text`.
pub fn count(text: &str) -> u64 {
    match &*O200K {
        Some(vocabulary) => vocabulary.count(text),
        // Every token is at least one byte: an upper bound keeps limits safe.
        None => text.len() as u64,
    }
}

/// The vocabulary compiled into tiktoken-rs does not fail to load in a working build; if it ever
/// did, that is logged once and counts fall back to bytes.
static O200K: LazyLock<Option<Vocabulary>> = LazyLock::new(|| {
    Vocabulary::o200k()
        .inspect_err(|e| tracing::error!("the o200k tokenizer did not load ({e}); token counts are byte counts"))
        .ok()
});

/// A byte-level BPE vocabulary whose ranks are also its merge priorities (lower merges first), as
/// in every tiktoken encoding.
struct Vocabulary {
    /// Every token's bytes, in rank order.
    bytes: Vec<u8>,
    /// Token `r` is `bytes[starts[r]..starts[r + 1]]`.
    starts: Vec<u32>,
    /// Ranks, hashed by their token's bytes.
    index: HashTable<u32>,
    /// Splits text into the pieces BPE merges within (words, numbers, punctuation, spaces).
    split: Regex,
}

impl Vocabulary {
    fn o200k() -> Result<Self, String> {
        let bpe = tiktoken_rs::o200k_base().map_err(|e| e.to_string())?;
        let split = Regex::new(tiktoken_rs::O200K_BASE_PAT_STR).map_err(|e| e.to_string())?;
        // Ordinary ranks are dense from 0; the first rank that does not decode ends them (the
        // special tokens sit above, and counting never produces them).
        let mut bytes = Vec::with_capacity(1 << 21);
        let mut starts = vec![0u32];
        while let Ok(token) = bpe.decode_bytes(&[starts.len() as u32 - 1]) {
            bytes.extend_from_slice(&token);
            starts.push(bytes.len() as u32);
        }
        drop(bpe);
        bytes.shrink_to_fit();
        starts.shrink_to_fit();
        let mut vocabulary = Vocabulary { bytes, starts, index: HashTable::new(), split };
        let tokens = vocabulary.starts.len() as u32 - 1;
        let mut index = HashTable::with_capacity(tokens as usize);
        for rank in 0..tokens {
            index.insert_unique(hash(vocabulary.token(rank)), rank, |&r| hash(vocabulary.token(r)));
        }
        vocabulary.index = index;
        Ok(vocabulary)
    }

    fn token(&self, rank: u32) -> &[u8] {
        let r = rank as usize;
        let (Some(&start), Some(&end)) = (self.starts.get(r), self.starts.get(r + 1)) else { return &[] };
        self.bytes.get(start as usize..end as usize).unwrap_or_default()
    }

    fn rank(&self, bytes: &[u8]) -> Option<u32> {
        self.index.find(hash(bytes), |&r| self.token(r) == bytes).copied()
    }

    fn count(&self, text: &str) -> u64 {
        let mut tokens = 0;
        let mut counted = 0;
        for piece in self.split.find_iter(text) {
            match piece {
                Ok(piece) => {
                    tokens += self.piece_tokens(piece.as_str().as_bytes());
                    counted = piece.end();
                }
                // fancy-regex gives up on a pathological backtrack; the rest is then counted as
                // one piece: still real BPE, merged across the boundaries the split would add.
                Err(_) => return tokens + self.piece_tokens(text.as_bytes().get(counted..).unwrap_or_default()),
            }
        }
        tokens
    }

    /// Tokens BPE makes of one piece: the number of parts left once no adjacent pair is a token.
    fn piece_tokens(&self, piece: &[u8]) -> u64 {
        if piece.len() < 2 || self.rank(piece).is_some() {
            return piece.len().min(1) as u64;
        }
        self.merged_parts(piece)
    }

    /// Merges the lowest-ranked adjacent pair (the leftmost among equals) until none is a token, in
    /// O(n log n): the parts form a linked list over byte offsets and the candidate merges a heap,
    /// whose entries go stale, rather than being removed, when a neighbour merges.
    fn merged_parts(&self, piece: &[u8]) -> u64 {
        let mut parts: Vec<Part> =
            (0..piece.len()).map(|i| Part { end: i + 1, before: i.wrapping_sub(1), pair: NO_TOKEN }).collect();
        let mut heap = BinaryHeap::with_capacity(piece.len());
        for start in 0..piece.len() {
            self.offer(piece, &mut parts, &mut heap, start);
        }
        let mut count = piece.len() as u64;
        while let Some(Reverse((rank, left))) = heap.pop() {
            let Some(&Part { end: right, pair, before }) = parts.get(left) else { break };
            if pair != rank {
                continue;
            }
            let Some(merged) = parts.get_mut(right) else { break };
            merged.pair = NO_TOKEN;
            let end = merged.end;
            if let Some(part) = parts.get_mut(left) {
                part.end = end;
            }
            if let Some(next) = parts.get_mut(end) {
                next.before = left;
            }
            count -= 1;
            self.offer(piece, &mut parts, &mut heap, left);
            self.offer(piece, &mut parts, &mut heap, before);
        }
        count
    }

    /// Records whether the part starting at `start` and the part after it make a token, and if so
    /// offers that merge.
    fn offer(&self, piece: &[u8], parts: &mut [Part], heap: &mut BinaryHeap<Reverse<(u32, usize)>>, start: usize) {
        let next = parts.get(start).map_or(usize::MAX, |p| p.end);
        let stop = parts.get(next).map(|p| p.end);
        let rank = stop.and_then(|stop| piece.get(start..stop)).and_then(|pair| self.rank(pair)).unwrap_or(NO_TOKEN);
        if let Some(part) = parts.get_mut(start) {
            part.pair = rank;
        }
        if rank != NO_TOKEN {
            heap.push(Reverse((rank, start)));
        }
    }
}

/// No rank: the pair is no token, or the part is no longer a part start.
const NO_TOKEN: u32 = u32::MAX;

/// A part of a piece being merged, at its start offset.
#[derive(Clone, Copy)]
struct Part {
    /// Where the part ends (and the next one starts).
    end: usize,
    /// Where the part before starts (`usize::MAX` for the first).
    before: usize,
    /// The rank of this part merged with the next, or [`NO_TOKEN`].
    pair: u32,
}

fn hash(bytes: &[u8]) -> u64 {
    FxBuildHasher.hash_one(bytes)
}

#[cfg(test)]
mod tests {
    use super::{O200K, count};

    fn reference(text: &str) -> u64 {
        tiktoken_rs::o200k_base_singleton().encode_ordinary(text).len() as u64
    }

    #[test]
    fn counts_with_a_real_tokenizer() {
        // Known o200k_base encodings.
        assert_eq!(count("hello world"), 2);
        assert_eq!(count("hello"), 1);
        assert_eq!(count(""), 0);
    }

    #[test]
    fn keeps_every_ordinary_token_and_no_special_one() {
        let vocabulary = O200K.as_ref().expect("the o200k vocabulary loads");
        assert_eq!(vocabulary.starts.len() - 1, 199_998);
        assert_eq!(vocabulary.rank(b"hello"), Some(24912));
        assert_eq!(vocabulary.rank(b"<|endoftext|>"), None);
        // Every byte is a token on its own, so every piece can be counted.
        assert!((0..=255u8).all(|b| vocabulary.rank(&[b]).is_some()));
    }

    #[test]
    fn agrees_with_tiktoken_on_text_of_every_kind() {
        let texts = [
            "Is Santa real? The answer depends on who you ask, and when.",
            "fn main() {\n    println!(\"{}\", 1 + 2);\n}\n\n\n",
            r#"{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100}"#,
            "東京は日本の首都です。Москва — столица России. مرحبا بالعالم",
            "emoji 👩‍👩‍👧‍👦🚀🔥 and combining e\u{301}\u{301} marks",
            "1234567890 3.14159 1,000,000 0x7fffffff 2026-11-30T14:29:36Z",
            "  leading, trailing and   repeated   spaces \t\ttabs\r\n\r\nlines   ",
            "antidisestablishmentarianism supercalifragilisticexpialidocious",
            "I'm you're they'll we've she'd IT'S DON'T Can'T",
            "https://example.com/a/b?c=d&e=f#g user@example.com",
        ];
        for text in texts {
            assert_eq!(count(text), reference(text), "{text:?}");
        }
    }

    #[test]
    fn agrees_with_tiktoken_on_long_pieces() {
        // Pieces of 100 bytes and more take tiktoken's other merge algorithm; ours has one.
        for text in ["a".repeat(300), "xyz".repeat(2000), "ab".repeat(77), " ".repeat(5000), "é".repeat(400)] {
            assert_eq!(count(&text), reference(&text), "{} bytes", text.len());
        }
        let base64ish: String = (0..20_000u32).map(|i| char::from(b"A9z+/q"[(i * 7 % 11 % 6) as usize])).collect();
        assert_eq!(count(&base64ish), reference(&base64ish));
    }

    #[test]
    fn agrees_with_tiktoken_on_generated_text() {
        // A fixed pseudo-random walk over letters, digits, marks, scripts, punctuation and spaces.
        let alphabet: Vec<char> = "aeiounstrlkzAEXQ0179 \n\t.,;'\"-_(){}<>/é日本語ß😀ωπ\u{301}".chars().collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in [1, 2, 3, 10, 50, 200, 1000] {
            for _ in 0..20 {
                let text: String = (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        alphabet[(state % alphabet.len() as u64) as usize]
                    })
                    .collect();
                assert_eq!(count(&text), reference(&text), "{text:?}");
            }
        }
    }
}
