//! Behaviour of the SQLite store against a real database file.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking"
)]

use modelgate_store::*;

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("state.db")).await.unwrap();
    assert_eq!(s.get_meta("x").await.unwrap(), None, "meta on an unmigrated database reads as absent");
    s.migrate().await.unwrap();
    (dir, s)
}

trait Owner {
    async fn ensure_owner(&self);
}

impl Owner for SqliteStore {
    async fn ensure_owner(&self) {
        let p = PrincipalRecord {
            id: "owner".into(),
            kind: "user".into(),
            name: "o".into(),
            display_name: "o".into(),
            active: true,
            created_at: 1,
        };
        self.create_principal(&p).await.unwrap();
    }
}

fn endpoint(name: &str) -> (EndpointRecord, ConfigRecord) {
    let id = format!("id-{name}");
    (
        EndpointRecord {
            id: id.clone(),
            name: name.into(),
            creator: "admin".into(),
            created_at: 1,
            updated_at: 1,
            task: None,
            description: None,
            budget_policy_id: None,
            route_optimized: None,
            tags: "[]".into(),
            ai_gateway: None,
            rate_limits: None,
            email_notifications: None,
            telemetry_config: None,
            deprecation: None,
            config_update: "IN_PROGRESS".into(),
            stopped: false,
            latest_version: 1,
            active_version: None,
            pending_version: Some(1),
            pending_since: Some(1),
        },
        ConfigRecord {
            endpoint_id: id,
            version: 1,
            config: "{}".into(),
            creator: "admin".into(),
            created_at: 1,
            status: config_status::PENDING.into(),
            build_log: String::new(),
        },
    )
}

#[tokio::test]
async fn endpoint_lifecycle_and_conflicts() {
    let (_d, s) = store().await;
    let (e, c) = endpoint("chat");
    s.ensure_owner().await;
    s.create_endpoint(&e, &c, "owner").await.unwrap();
    let dup = s.create_endpoint(&e, &c, "owner").await.unwrap_err();
    assert!(matches!(dup, StoreError::AlreadyExists(_)), "{dup:?}");

    let ready = DeployOutcome::Ready { task: Some("llm/v1/chat".into()), build_log: "ok".into() };
    assert!(s.finish_deployment(&e.id, 1, &ready).await.unwrap());
    assert!(!s.finish_deployment(&e.id, 1, &ready).await.unwrap(), "a version is finished once");
    let got = s.get_endpoint("chat").await.unwrap().unwrap();
    assert_eq!((got.active_version, got.pending_version, got.config_update.as_str()), (Some(1), None, "NOT_UPDATING"));

    // A mutation that fails writes nothing.
    let err = s
        .update_endpoint(
            "chat",
            Box::new(|e| {
                e.description = Some("changed".into());
                Err(StoreError::Conflict("busy".into()))
            }),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    assert_eq!(s.get_endpoint("chat").await.unwrap().unwrap().description, None);

    // Version 2 fails; version 1 keeps serving.
    let id = e.id.clone();
    s.update_endpoint(
        "chat",
        Box::new(move |e| {
            e.latest_version += 1;
            e.pending_version = Some(e.latest_version);
            e.config_update = "IN_PROGRESS".into();
            Ok(Some(ConfigRecord {
                endpoint_id: id,
                version: e.latest_version,
                config: "{}".into(),
                creator: "a".into(),
                created_at: 2,
                status: config_status::PENDING.into(),
                build_log: String::new(),
            }))
        }),
    )
    .await
    .unwrap();
    assert!(s.finish_deployment(&e.id, 2, &DeployOutcome::Failed { build_log: "bad".into() }).await.unwrap());
    let got = s.get_endpoint("chat").await.unwrap().unwrap();
    assert_eq!((got.active_version, got.config_update.as_str()), (Some(1), "UPDATE_FAILED"));
    let versions: Vec<_> = s.list_configs(&e.id).await.unwrap().into_iter().map(|c| (c.version, c.status)).collect();
    assert_eq!(versions, vec![(2, "FAILED".to_string()), (1, "ACTIVE".to_string())]);

    s.delete_endpoint("chat").await.unwrap();
    assert!(s.list_configs(&e.id).await.unwrap().is_empty(), "history goes with the endpoint");
    assert!(matches!(s.delete_endpoint("chat").await, Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn secrets_scopes_and_limits() {
    let (_d, s) = store().await;
    let secret = |key: &str| SecretRecord {
        scope: "team".into(),
        key: key.into(),
        value: vec![1, 2],
        updated_by: "admin".into(),
        updated_at: 5,
    };
    assert!(matches!(s.put_secret(&secret("a"), 2).await, Err(StoreError::NotFound(_))));
    s.create_scope(&ScopeRecord { name: "team".into(), creator: "admin".into(), created_at: 1 }).await.unwrap();
    s.put_secret(&secret("a"), 2).await.unwrap();
    s.put_secret(&secret("b"), 2).await.unwrap();
    s.put_secret(&secret("b"), 2).await.expect("overwriting does not count against the limit");
    assert!(matches!(s.put_secret(&secret("c"), 2).await, Err(StoreError::LimitExceeded(_))));
    assert_eq!(s.list_secrets("team").await.unwrap().len(), 2);
    s.delete_scope("team").await.unwrap();
    assert!(s.all_secrets().await.unwrap().is_empty(), "secrets go with their scope");
}

#[tokio::test]
async fn usage_summary_percentiles_are_nearest_rank() {
    let dir = tempfile::tempdir().unwrap();
    let db = UsageDb::open(&dir.path().join("usage.db")).await.unwrap();
    // Latencies 1..=200 ms, shuffled; the second half on another endpoint, or too old.
    let records: Vec<UsageRecord> = (1..=200)
        .map(|i| UsageRecord {
            request_id: format!("r{i}"),
            request_time: if i % 10 == 0 { 1_000 } else { 10_000 },
            endpoint_name: if i % 3 == 0 { "other".into() } else { "chat".into() },
            status_code: if i % 7 == 0 { 500 } else { 200 },
            latency_ms: ((i * 37) % 200 + 1) as f64,
            ..Default::default()
        })
        .collect();
    db.insert(&records).await.unwrap();
    let mut expected: Vec<f64> =
        records.iter().filter(|r| r.endpoint_name == "chat" && r.request_time >= 5_000).map(|r| r.latency_ms).collect();
    expected.sort_by(f64::total_cmp);
    let n = expected.len();
    let rank = |p: f64| expected[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    let s = db.summary("chat", 5_000).await.unwrap();
    assert_eq!(s.requests as usize, n);
    assert_eq!(
        s.errors as usize,
        records.iter().filter(|r| r.endpoint_name == "chat" && r.request_time >= 5_000 && r.status_code == 500).count()
    );
    assert_eq!((s.p50_ms, s.p95_ms, s.p99_ms), (Some(rank(0.5)), Some(rank(0.95)), Some(rank(0.99))));
    let none = db.summary("chat", 20_000).await.unwrap();
    assert_eq!((none.requests, none.p95_ms), (0, None));
}

#[tokio::test]
async fn timeline_buckets_filter_by_entity_and_give_ttft_of_streams_only() {
    let dir = tempfile::tempdir().unwrap();
    let db = UsageDb::open(&dir.path().join("usage.db")).await.unwrap();
    // Two buckets of 1000 ms: entity "a" streams in the first, "b" answers whole in the second.
    let record = |i: i64, entity: &str, time: i64, ttft: Option<f64>| UsageRecord {
        request_id: format!("r{i}"),
        request_time: time,
        endpoint_name: "chat".into(),
        served_entity: entity.into(),
        status_code: if i == 3 { 429 } else { 200 },
        latency_ms: 10.0 * i as f64,
        ttft_ms: ttft,
        input_tokens: 2,
        output_tokens: 3,
        cost_usd: 0.5,
        ..Default::default()
    };
    let records = vec![
        record(1, "a", 100, Some(4.0)),
        record(2, "a", 900, Some(8.0)),
        record(3, "b", 1_500, None),
        record(4, "b", 1_999, None),
        record(5, "b", 2_000, None), // outside [0, 2000)
    ];
    db.insert(&records).await.unwrap();
    let all = db.timeline("chat", None, 0, 2_000, 2).await.unwrap();
    assert_eq!(
        all.iter().map(|p| (p.start, p.requests, p.errors, p.tokens)).collect::<Vec<_>>(),
        [(0, 2, 0, 10), (1_000, 2, 1, 10)]
    );
    assert_eq!((all[0].p50_ms, all[0].p99_ms, all[1].p50_ms), (Some(10.0), Some(20.0), Some(30.0)));
    assert_eq!((all[0].rate_limited, all[1].rate_limited), (0, 1), "the 429 is a rate-limited query");
    assert_eq!((all[0].ttft_p50_ms, all[0].ttft_p95_ms, all[1].ttft_p50_ms), (Some(4.0), Some(8.0), None));
    assert!((all[1].cost_usd - 1.0).abs() < 1e-9);
    let b = db.timeline("chat", Some("b"), 0, 2_000, 2).await.unwrap();
    assert_eq!(b.iter().map(|p| p.requests).collect::<Vec<_>>(), [0, 2]);
    assert_eq!(b[0].p50_ms, None);
}

#[tokio::test]
async fn registered_models_number_versions_once_and_cascade() {
    let (_d, s) = store().await;
    s.ensure_owner().await;
    let model = |id: &str, name: &str| ModelRecord {
        id: id.into(),
        name: name.into(),
        description: String::new(),
        creator: "o".into(),
        created_at: 1,
        updated_at: 1,
        latest_version: 0,
    };
    s.create_model(&model("m1", "team.models.churn"), "owner").await.unwrap();
    assert!(matches!(
        s.create_model(&model("m2", "team.models.churn"), "owner").await,
        Err(StoreError::AlreadyExists(_))
    ));
    let version = ModelVersionRecord {
        model_id: "m1".into(),
        version: 0,
        source: "/models/churn".into(),
        runtime: "process".into(),
        task: "llm/v1/chat".into(),
        command: Some(r#"["python","serve.py"]"#.into()),
        env: None,
        content_hash: "sha256:00".into(),
        description: String::new(),
        creator: "o".into(),
        created_at: 2,
    };
    assert_eq!(s.add_model_version(&version).await.unwrap().version, 1);
    assert_eq!(s.add_model_version(&version).await.unwrap().version, 2);
    s.delete_model_version("m1", 2).await.unwrap();
    assert_eq!(s.add_model_version(&version).await.unwrap().version, 3, "numbers are never reused");
    let versions: Vec<i64> = s.list_model_versions("m1").await.unwrap().iter().map(|v| v.version).collect();
    assert_eq!(versions, [3, 1], "newest first");
    assert_eq!(s.list_all_model_versions().await.unwrap().len(), 2);
    assert!(matches!(
        s.add_model_version(&ModelVersionRecord { model_id: "nope".into(), ..version.clone() }).await,
        Err(StoreError::NotFound(_))
    ));
    let grants = s.list_model_permissions().await.unwrap();
    assert_eq!((grants.len(), grants[0].level.as_str()), (1, "CAN_MANAGE"), "the owner manages it");
    s.delete_model("team.models.churn").await.unwrap();
    assert!(
        s.list_model_versions("m1").await.unwrap().is_empty() && s.list_model_permissions().await.unwrap().is_empty()
    );
    assert!(matches!(s.delete_model("team.models.churn").await, Err(StoreError::NotFound(_))));
}
