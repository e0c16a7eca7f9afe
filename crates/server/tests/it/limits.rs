//! Resource limits: upstream answers are read within a size, slow clients are cut off, connections
//! and requests in flight are bounded and shed with 503, oversized bodies get a JSON 413.

use std::time::{Duration, Instant};

use crate::common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn chat(t: &TestServer, model: &str, content: &str, stream: bool) -> (StatusCode, String) {
    let body = json!({"model": model, "messages": [{"role": "user", "content": content}], "stream": stream});
    let resp = t.http.post(format!("{}/v1/chat/completions", t.base)).bearer_auth(&t.token).json(&body).send().await;
    let resp = resp.expect("the gateway answers");
    let status = resp.status();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test]
async fn oversized_upstream_answers_fail_instead_of_filling_memory() {
    let (_m, url) = mock().await;
    let t = TestServer::start_with(|c| {
        c.limits.max_upstream_body = 1 << 20;
        c.limits.max_stream_event = 64 << 10;
        c.retries.backoff = Duration::from_millis(1);
        c.breaker.failures = 100;
    })
    .await;
    t.secret("llm", "k", "sk-limits-key-0123").await;
    create_ready(&t, json!({"name": "big", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}})).await;

    let (status, body) = chat(&t, "big", "__huge_8__", false).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error_code"], "BAD_GATEWAY");
    assert!(v["message"].as_str().unwrap().contains("larger than the limit of 1048576 bytes"), "{v}");

    let (status, body) = chat(&t, "big", "__huge_event_4__", true).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.len() < 10_000, "the giant event is not relayed: {} bytes", body.len());
    assert!(body.contains("larger than the limit of 65536 bytes") && !body.contains("[DONE]"), "{body}");

    let (status, body) = chat(&t, "big", "__huge_error_8__", false).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{}", &body[..body.len().min(300)]);
    assert!(body.len() < 2_000, "an error body is read only for its message: {} bytes", body.len());

    // The gateway is still fine.
    let (status, body) = chat(&t, "big", "hello", false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn read_all(stream: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// One HTTP/1.1 answer (head and `Content-Length` body) from a connection that stays open.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let within = Instant::now() + Duration::from_secs(5);
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|n| n.trim().to_string()))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
        let left = within.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return String::from_utf8_lossy(&got).into_owned(),
        }
    }
}

fn addr(t: &TestServer) -> std::net::SocketAddr {
    t.server.as_ref().unwrap().addr
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let t = TestServer::start_with(|c| {
        c.limits.body_read_timeout = Duration::from_millis(400);
        c.limits.header_read_timeout = Duration::from_millis(400);
    })
    .await;

    // An authenticated client that stops sending its body gets a 408 and loses the connection.
    let mut s = TcpStream::connect(addr(&t)).await.unwrap();
    let head = format!(
        "POST /api/2.0/secrets/scopes/create HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"sc"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let answer = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("REQUEST_TIMEOUT"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3), "closed after the body timeout");

    // An anonymous one is refused at once: its body is never waited for.
    let mut s = TcpStream::connect(addr(&t)).await.unwrap();
    s.write_all(b"POST /api/2.0/secrets/scopes/create HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 401") && answer.contains("UNAUTHENTICATED"), "{answer}");
    assert!(started.elapsed() < Duration::from_millis(300), "no wait for the body");

    // Headers that never end: the connection is closed after the header timeout.
    let mut s = TcpStream::connect(addr(&t)).await.unwrap();
    s.write_all(b"GET /api/2.0/serving-endpoints HTTP/1.1\r\nHost: x\r\nX-Slow: ").await.unwrap();
    let started = Instant::now();
    let answer = read_all(&mut s, Duration::from_secs(5)).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3), "closed after the header timeout");

    // Well-behaved clients are unaffected.
    let (status, _) = t.get("/api/2.0/serving-endpoints").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn connections_over_the_limit_get_a_503() {
    let t = TestServer::start_with(|c| c.limits.max_connections = 3).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr(&t)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(addr(&t)).await.unwrap();
    let answer = read_all(&mut extra, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("TEMPORARILY_UNAVAILABLE") && answer.contains("retry-after: 1"), "{answer}");

    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = t.get("/api/2.0/serving-endpoints").await;
    assert_eq!(status, StatusCode::OK, "slots are given back when connections close");
    let metrics = t.http.get(format!("{}/metrics", t.base)).bearer_auth(&t.token).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("shed_total{reason=\"connections\"} 1"), "{metrics}");
}

#[tokio::test]
async fn requests_in_flight_are_bounded_and_streams_count() {
    let (_m, url) = mock_with(modelgate_mock_upstream::Options {
        chunk_interval: Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let t = TestServer::start_with(|c| c.limits.max_in_flight = 3).await;
    t.secret("llm", "k", "sk-limits-key-0123").await;
    create_ready(&t, json!({"name": "slow", "config": {"served_entities": [mock_entity("a", &url, json!({}))]}})).await;

    // Two streams whose answers are still coming hold two of the three slots.
    let body =
        json!({"model": "slow", "messages": [{"role": "user", "content": "one two three four"}], "stream": true});
    let mut streams = Vec::new();
    for _ in 0..2 {
        let r = t.http.post(format!("{}/v1/chat/completions", t.base)).bearer_auth(&t.token).json(&body).send().await;
        let r = r.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        streams.push(r);
    }
    // A third is let in (the in-flight request reading /metrics would be the fourth).
    let (status, _) = t.get("/api/2.0/serving-endpoints").await;
    assert_eq!(status, StatusCode::OK);
    let third = t.http.post(format!("{}/v1/chat/completions", t.base)).bearer_auth(&t.token).json(&body).send();
    let third = third.await.unwrap();
    let got = t.get("/api/2.0/serving-endpoints").await;
    assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "TEMPORARILY_UNAVAILABLE", "3 requests in flight");
    let health = t.http.get(format!("{}/healthz", t.base)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "liveness answers while the server sheds load");
    // A shed request whose small body arrived is refused on a connection that stays open for the
    // retry; one whose body does not arrive is refused and its connection closed.
    let mut kept = TcpStream::connect(addr(&t)).await.unwrap();
    let small = format!(
        "POST /api/2.0/serving-endpoints HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: 2\r\n\r\n{{}}",
        t.token
    );
    kept.write_all(small.as_bytes()).await.unwrap();
    let shed = read_response(&mut kept).await;
    assert!(shed.starts_with("HTTP/1.1 503"), "{shed}");
    assert!(shed.to_ascii_lowercase().contains("retry-after: 1"), "{shed}");
    assert!(!shed.to_ascii_lowercase().contains("connection: close"), "{shed}");
    let mut unread = TcpStream::connect(addr(&t)).await.unwrap();
    let big = "POST /api/2.0/serving-endpoints HTTP/1.1\r\nhost: x\r\ncontent-length: 100000\r\n\r\n{";
    unread.write_all(big.as_bytes()).await.unwrap();
    let closed = read_all(&mut unread, Duration::from_secs(5)).await;
    assert!(closed.starts_with("HTTP/1.1 503"), "{closed}");
    assert!(closed.to_ascii_lowercase().contains("connection: close"), "{closed}");

    // When the streams end, their slots come back.
    drop(streams);
    third.text().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = t.get("/api/2.0/serving-endpoints").await;
    assert_eq!(status, StatusCode::OK);
    // The connection the shed request came on serves the retry.
    let retry =
        format!("GET /api/2.0/serving-endpoints HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n", t.token);
    kept.write_all(retry.as_bytes()).await.unwrap();
    let again = read_response(&mut kept).await;
    assert!(again.starts_with("HTTP/1.1 200"), "{again}");
}

#[tokio::test]
async fn a_server_running_late_sheds_new_requests_until_it_catches_up() {
    let t = TestServer::start_with(|c| c.limits.max_queue_delay = Duration::from_millis(30)).await;
    let (status, _) = t.get("/api/2.0/serving-endpoints").await;
    assert_eq!(status, StatusCode::OK);

    // Work that holds the server's runtime 60 ms at a time, as a saturated core would: everything
    // ready waits behind it, the probe included.
    let hog = tokio::spawn(async {
        loop {
            std::thread::sleep(Duration::from_millis(60));
            tokio::task::yield_now().await;
        }
    });
    let mut shed = None;
    for _ in 0..50 {
        let got = t.get("/api/2.0/serving-endpoints").await;
        if got.0 == StatusCode::SERVICE_UNAVAILABLE {
            shed = Some(got);
            break;
        }
    }
    hog.abort();
    let shed = shed.expect("requests are shed while the server runs late");
    assert_error(&shed, StatusCode::SERVICE_UNAVAILABLE, "TEMPORARILY_UNAVAILABLE", "30 ms of queue delay");
    let health = t.http.get(format!("{}/healthz", t.base)).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK, "liveness answers while the server sheds load");

    // Caught up: admitted again, and the sheds were counted.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = t.get("/api/2.0/serving-endpoints").await;
    assert_eq!(status, StatusCode::OK);
    let metrics = t.http.get(format!("{}/metrics", t.base)).bearer_auth(&t.token).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("shed_total{reason=\"queue_delay\"}"), "{metrics}");
    assert!(metrics.contains("queue_delay_seconds "), "{metrics}");
}

#[tokio::test]
async fn oversized_bodies_get_a_json_413_on_both_planes() {
    let t = TestServer::start_with(|c| c.limits.max_request_body = 64 * 1024).await;
    let big = "x".repeat(100 * 1024);
    for path in ["/api/2.0/serving-endpoints", "/v1/chat/completions", "/serving-endpoints/x/invocations"] {
        // With a Content-Length, and chunked without one.
        let sized = t.http.post(format!("{}{path}", t.base)).bearer_auth(&t.token).body(big.clone()).send().await;
        let chunks = futures::stream::iter((0..100).map(|_| Ok::<_, std::io::Error>(vec![b'x'; 1024])));
        let chunked = t
            .http
            .post(format!("{}{path}", t.base))
            .bearer_auth(&t.token)
            .body(reqwest::Body::wrap_stream(chunks))
            .send()
            .await;
        for resp in [sized, chunked] {
            let resp = resp.unwrap();
            assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "{path}");
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["error_code"], "PAYLOAD_TOO_LARGE", "{path}: {v}");
            assert!(v["message"].as_str().unwrap().contains("65536 bytes"), "{v}");
        }
    }
}
