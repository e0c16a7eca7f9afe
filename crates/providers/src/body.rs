//! Reading upstream answers within bounds: a whole body up to a size, and a stream whose single
//! events may not grow past a size. An upstream (or whatever a URL points at) must not be able to
//! make the gateway buffer without limit.

use bytes::{Bytes, BytesMut};
use futures::{Stream, StreamExt};

use crate::ProviderError;

/// Why a bounded read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The body is larger than the limit.
    #[error("the answer is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The connection failed while reading.
    #[error("{0}")]
    Transport(String),
}

impl From<ReadError> for ProviderError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::TooLarge { .. } => ProviderError::TooLarge(e.to_string()),
            ReadError::Transport(m) => ProviderError::Connect(m),
        }
    }
}

/// The whole body of `resp`, or [`ReadError::TooLarge`] as soon as it passes `limit` bytes (a
/// `Content-Length` over the limit fails before anything is read).
pub async fn read_capped(resp: reqwest::Response, limit: usize) -> Result<Bytes, ReadError> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(ReadError::TooLarge { limit });
    }
    let capacity = resp.content_length().map_or(0, |n| n as usize);
    let mut stream = resp.bytes_stream();
    // A body that arrives as one chunk is passed on without a copy.
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut total = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ReadError::Transport(crate::entra::without_url(&e)))?;
        total += chunk.len();
        if total > limit {
            return Err(ReadError::TooLarge { limit });
        }
        match (&first, &mut joined) {
            (None, _) => first = Some(chunk),
            (Some(f), None) => {
                let mut b = BytesMut::with_capacity(capacity.max(total));
                b.extend_from_slice(f);
                b.extend_from_slice(&chunk);
                joined = Some(b);
            }
            (Some(_), Some(b)) => b.extend_from_slice(&chunk),
        }
    }
    Ok(match (joined, first) {
        (Some(b), _) => b.freeze(),
        (None, Some(f)) => f,
        (None, None) => Bytes::new(),
    })
}

/// The beginning of an error body, up to `limit` bytes; the rest is not read. An error answer is
/// only read for its message.
pub async fn read_prefix(resp: reqwest::Response, limit: usize) -> Bytes {
    let mut stream = resp.bytes_stream();
    let mut out = BytesMut::new();
    while let Some(Ok(chunk)) = stream.next().await {
        let room = limit.saturating_sub(out.len());
        out.extend_from_slice(chunk.get(..chunk.len().min(room)).unwrap_or_default());
        if out.len() >= limit {
            break;
        }
    }
    out.freeze()
}

/// Passes a server-sent-event byte stream through, failing it once more than `max_event` bytes
/// arrive without an event boundary (a blank line), so one endless event or line cannot grow the
/// parser's buffer without limit.
pub fn bounded_events<S, E>(bytes: S, max_event: usize) -> impl Stream<Item = Result<Bytes, String>> + Send
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: std::fmt::Display,
{
    // Bytes since the last boundary, and the last two bytes seen (a boundary may straddle chunks).
    let mut pending = 0usize;
    let mut tail = [0u8; 2];
    bytes.map(move |chunk| {
        let chunk = chunk.map_err(|e| e.to_string())?;
        let mut since = pending;
        let [mut prev2, mut prev] = tail;
        for &b in chunk.iter() {
            since += 1;
            if b == b'\n' && (prev == b'\n' || (prev == b'\r' && prev2 == b'\n')) {
                since = 0;
            }
            (prev2, prev) = (prev, b);
        }
        if since > max_event {
            return Err(format!("an event of the provider's stream is larger than the limit of {max_event} bytes"));
        }
        pending = since;
        tail = [prev2, prev];
        Ok(chunk)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&str], max: usize) -> Result<usize, String> {
        let items: Vec<Result<Bytes, String>> = chunks.iter().map(|c| Ok(Bytes::from(c.to_string()))).collect();
        futures::executor::block_on(async {
            let mut s = Box::pin(bounded_events(futures::stream::iter(items), max));
            let mut n = 0;
            while let Some(r) = s.next().await {
                n += r?.len();
            }
            Ok(n)
        })
    }

    #[test]
    fn events_within_the_bound_pass() {
        assert_eq!(run(&["data: 12345\n\n", "data: 12345\n\n"], 16), Ok(26));
        // A boundary split across chunks resets the count.
        assert_eq!(run(&["data: 1234567\n", "\ndata: 1234567\n\n"], 16), Ok(30));
        assert_eq!(run(&["data: 12345\r\n\r", "\ndata: 12345\r\n\r\n"], 16), Ok(30));
    }

    #[test]
    fn one_endless_event_fails() {
        assert!(run(&["data: ", &"x".repeat(100)], 64).unwrap_err().contains("limit of 64 bytes"));
        // Many small lines without a blank line are one event too.
        let lines: Vec<String> = (0..20).map(|_| "data: x\n".to_string()).collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        assert!(run(&refs, 64).is_err());
    }
}
