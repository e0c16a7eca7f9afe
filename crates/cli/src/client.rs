//! HTTP client for the modelgate API.

use crate::commands::at;
use reqwest::Method;
use serde_json::Value;

use crate::CliError;

/// A connection to one server.
pub struct Client {
    http: reqwest::Client,
    host: String,
    token: String,
}

impl Client {
    /// A client for `host` authenticating with `token`.
    pub fn new(host: String, token: String) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("modelgate-cli/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| CliError::Usage(format!("cannot build HTTP client: {e}")))?;
        Ok(Self { http, host, token })
    }

    /// The server's URL.
    pub fn host(&self) -> &str {
        &self.host
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<reqwest::Response, CliError> {
        let url = format!("{}{path}", self.host);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token).query(query);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| CliError::Connect(format!("{}: {e}", self.host)))?;
        // The server's warnings (`Warning: 299 modelgate "..."`) go to standard error.
        for w in resp.headers().get_all(reqwest::header::WARNING) {
            if let Ok(text) = w.to_str() {
                let text = text.strip_prefix("299 modelgate ").unwrap_or(text).trim_matches('"');
                eprintln!("warning: {text}");
            }
        }
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let parsed: Option<Value> = serde_json::from_str(&text).ok();
        let code = parsed.as_ref().and_then(|v| at(v, "/error_code").as_str()).unwrap_or("HTTP_ERROR").to_string();
        let message = parsed
            .as_ref()
            .and_then(|v| at(v, "/message").as_str().map(str::to_string))
            .unwrap_or_else(|| format!("HTTP {status}: {text}"));
        Err(CliError::Api { code, message })
    }

    /// A JSON call.
    pub async fn json(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
        self.json_query(method, path, &[], body).await
    }

    /// A POST whose answer is streamed back: each `data:` payload of a server-sent-event answer
    /// is handed to `each` as it arrives; a JSON answer is handed over whole.
    pub async fn post_streaming(&self, path: &str, body: &Value, mut each: impl FnMut(&str)) -> Result<(), CliError> {
        use futures::StreamExt;
        let resp = self.send(Method::POST, path, &[], Some(body)).await?;
        let sse = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        if !sse {
            let text = resp.text().await.map_err(|e| CliError::Connect(e.to_string()))?;
            each(&text);
            return Ok(());
        }
        let mut pending = String::new();
        let mut chunks = resp.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| CliError::Connect(format!("the stream broke: {e}")))?;
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                if let Some(data) = line.trim_end().strip_prefix("data:") {
                    each(data.trim_start());
                }
            }
        }
        Ok(())
    }

    /// A JSON call with query parameters.
    pub async fn json_query(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let resp = self.send(method, path, query, body).await?;
        let text = resp.text().await.map_err(|e| CliError::Connect(e.to_string()))?;
        if text.trim().is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        serde_json::from_str(&text).map_err(|e| CliError::Connect(format!("the server sent invalid JSON: {e}")))
    }

    /// A call whose answer is shown as text.
    pub async fn text(&self, method: Method, path: &str) -> Result<String, CliError> {
        let resp = self.send(method, path, &[], None).await?;
        resp.text().await.map_err(|e| CliError::Connect(e.to_string()))
    }
}
