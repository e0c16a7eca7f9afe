//! The `embedded` runtime: a sentence-embedding model run inside the server. A replica loads the
//! model once and answers the OpenAI embeddings wire format on its own loopback port, so the
//! replica sets and the data plane treat it exactly as a `process` replica (one interface), while
//! no program is started and nothing leaves the process.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use modelgate_embed::Embedder;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use super::runtime::{LogSink, Replica, ReplicaSpec, Runtime};

/// Most inputs one query may embed.
const MAX_INPUTS: usize = 2048;

/// Runs embedding models in this process.
#[derive(Default)]
pub struct EmbeddedRuntime;

/// `input` of an embeddings query: one text or several.
#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

/// The fields of an embeddings query the model reads.
#[derive(Deserialize)]
struct EmbeddingsQuery {
    input: Input,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    encoding_format: Option<String>,
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": {"message": message.into(), "type": "invalid_request_error"}}))).into_response()
}

async fn embeddings(State(model): State<Arc<Embedder>>, body: axum::body::Bytes) -> Response {
    let q: EmbeddingsQuery = match serde_json::from_slice(&body) {
        Ok(q) => q,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("input: {e}")),
    };
    let texts = match q.input {
        Input::One(t) => vec![t],
        Input::Many(list) => list,
    };
    if texts.is_empty() || texts.len() > MAX_INPUTS {
        return refuse(StatusCode::BAD_REQUEST, format!("input: give 1 to {MAX_INPUTS} texts"));
    }
    let run = tokio::task::spawn_blocking(move || model.embed(&texts)).await;
    let embedded = match run {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("the model stopped: {e}")),
    };
    let base64 = q.encoding_format.as_deref() == Some("base64");
    let data: Vec<Value> = embedded
        .vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let usage = json!({"prompt_tokens": embedded.tokens, "total_tokens": embedded.tokens});
    Json(json!({"object": "list", "data": data, "model": q.model.unwrap_or_default(), "usage": usage})).into_response()
}

#[async_trait::async_trait]
impl Runtime for EmbeddedRuntime {
    async fn start(&self, spec: &ReplicaSpec, log: LogSink) -> Result<Arc<dyn Replica>, String> {
        let dir = spec.model_path.clone();
        let loaded = tokio::task::spawn_blocking(move || Embedder::load(&dir))
            .await
            .map_err(|e| format!("loading stopped: {e}"))?
            .map_err(|e| e.to_string())?;
        let dimensions = loaded.dimensions();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("no free port: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let router = axum::Router::new()
            .route("/health", get(|| async { "ok" }))
            .route("/v1/embeddings", post(embeddings))
            .with_state(Arc::new(loaded));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        log(&format!("loaded the embedding model ({dimensions} dimensions) in-process, serving on port {port}"));
        Ok(Arc::new(EmbeddedReplica {
            base_url: format!("http://127.0.0.1:{port}"),
            stop: Mutex::new(Some(stop)),
            task: tokio::sync::Mutex::new(Some(task)),
            finished: Mutex::new(None),
        }))
    }
}

/// One loaded model serving on a loopback port.
struct EmbeddedReplica {
    base_url: String,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    finished: Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl Replica for EmbeddedReplica {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    async fn healthy(&self, _timeout: Duration) -> bool {
        self.exited().is_none()
    }

    fn exited(&self) -> Option<String> {
        if let Some(how) = self.finished.lock().unwrap_or_else(|e| e.into_inner()).clone() {
            return Some(how);
        }
        let task = self.task.try_lock().ok()?;
        let done = task.as_ref().is_none_or(|t| t.is_finished());
        drop(task);
        if done {
            let how = "stopped serving".to_string();
            *self.finished.lock().unwrap_or_else(|e| e.into_inner()) = Some(how.clone());
            return Some(how);
        }
        None
    }

    async fn stop(&self, grace: Duration) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.lock().await.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(grace, task).await.is_err() {
                abort.abort();
            }
        }
        *self.finished.lock().unwrap_or_else(|e| e.into_inner()) = Some("was stopped".into());
    }
}
