//! How a provider frames its stream, and decoding of each framing into events.

use bytes::{Buf, BytesMut};
use futures::{Stream, StreamExt};

/// One decoded upstream stream event.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    /// Event name (SSE `event:`, or the AWS `:event-type`; `exception:<type>` for AWS exceptions).
    pub event: String,
    /// Event payload.
    pub data: String,
}

/// A provider's stream framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `text/event-stream`.
    Sse,
    /// `application/vnd.amazon.eventstream` binary frames (Bedrock).
    AwsEventStream,
}

/// Decodes AWS event-stream frames from a byte stream; a frame larger than `max_frame` bytes
/// ends the stream with an error instead of being buffered.
pub fn aws_event_stream<S, E>(bytes: S, max_frame: usize) -> impl Stream<Item = Result<RawEvent, String>> + Send
where
    S: Stream<Item = Result<bytes::Bytes, E>> + Send + Unpin + 'static,
    E: std::fmt::Display,
{
    use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
    futures::stream::unfold(
        (bytes, BytesMut::new(), MessageFrameDecoder::new(), false),
        move |(mut input, mut buf, mut decoder, failed)| async move {
            if failed {
                return None;
            }
            loop {
                match decoder.decode_frame(&mut buf) {
                    Ok(DecodedFrame::Complete(message)) => {
                        let header = |name: &str| {
                            message
                                .headers()
                                .iter()
                                .find(|h| h.name().as_str() == name)
                                .and_then(|h| h.value().as_string().ok())
                                .map(|s| s.as_str().to_string())
                                .unwrap_or_default()
                        };
                        let event = if header(":message-type") == "exception" {
                            format!("exception:{}", header(":exception-type"))
                        } else {
                            header(":event-type")
                        };
                        let data = String::from_utf8_lossy(message.payload()).into_owned();
                        return Some((Ok(RawEvent { event, data }), (input, buf, decoder, false)));
                    }
                    Ok(DecodedFrame::Incomplete) if buf.len() > max_frame => {
                        let e =
                            format!("an event of the provider's stream is larger than the limit of {max_frame} bytes");
                        return Some((Err(e), (input, buf, decoder, true)));
                    }
                    Ok(DecodedFrame::Incomplete) => match input.next().await {
                        Some(Ok(chunk)) => buf.extend_from_slice(chunk.chunk()),
                        Some(Err(e)) => return Some((Err(e.to_string()), (input, buf, decoder, true))),
                        None => return None,
                    },
                    Err(e) => {
                        return Some((Err(format!("invalid event-stream frame: {e}")), (input, buf, decoder, true)));
                    }
                }
            }
        },
    )
}
