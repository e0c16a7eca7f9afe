//! The MLflow scoring protocol of a hosted custom model (`POST /invocations` with
//! `dataframe_split`, `dataframe_records`, `instances` or `inputs`, answered with
//! `{"predictions": ...}`), as `mlflow models serve` and Databricks custom models speak it. The
//! body goes as it came and the answer comes back as it is: the model defines both.

use bytes::Bytes;

use crate::{Adapter, Body, ProviderError, ResponseOptions, StreamItem, StreamTranslator, Task};

/// A scoring server at a base URL (a hosted replica).
pub struct MlflowScoring {
    base: String,
}

impl MlflowScoring {
    /// The server at `base` (`http://127.0.0.1:PORT`).
    pub fn new(base: &str) -> Self {
        MlflowScoring { base: base.trim_end_matches('/').to_string() }
    }
}

/// Scoring answers are never streamed (the gateway refuses `stream` first): a stream from one
/// is an error.
struct NoStream;

impl StreamTranslator for NoStream {
    fn on_event(&mut self, _event: &str, _data: &str) -> Vec<StreamItem> {
        vec![StreamItem::Error("a scoring server does not stream".into())]
    }
}

#[async_trait::async_trait]
impl Adapter for MlflowScoring {
    fn provider(&self) -> &'static str {
        "mlflow"
    }

    async fn request(
        &self,
        http: &reqwest::Client,
        task: Task,
        body: Body,
        _stream: bool,
    ) -> Result<reqwest::RequestBuilder, ProviderError> {
        if task != Task::Scoring {
            return Err(ProviderError::Unsupported(format!(
                "this model speaks the MLflow scoring protocol, not {}",
                task.as_task()
            )));
        }
        Ok(http.post(format!("{}/invocations", self.base)).json(&body))
    }

    fn response(&self, _task: Task, body: Bytes, _options: ResponseOptions) -> Result<Bytes, ProviderError> {
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(v) if v.is_object() => Ok(body),
            _ => Err(ProviderError::BadResponse("the scoring server's answer is not a JSON object".into())),
        }
    }

    fn stream(&self, _task: Task, _include_usage: bool) -> Box<dyn StreamTranslator> {
        Box::new(NoStream)
    }

    fn error_message(&self, body: &[u8]) -> String {
        // MLflow answers errors as {"error_code": ..., "message": ...}.
        serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(500).collect())
    }

    fn secrets(&self) -> Vec<String> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_pass_through_and_errors_read_mlflow_messages() {
        let s = MlflowScoring::new("http://127.0.0.1:9/");
        let ok = Bytes::from_static(br#"{"predictions": [1, 2]}"#);
        assert_eq!(s.response(Task::Scoring, ok.clone(), ResponseOptions::default()).unwrap(), ok);
        assert!(s.response(Task::Scoring, Bytes::from_static(b"[1]"), ResponseOptions::default()).is_err());
        assert_eq!(s.error_message(br#"{"error_code": "BAD_REQUEST", "message": "no column x"}"#), "no column x");
        assert_eq!(s.error_message(b"plain"), "plain");
    }
}
