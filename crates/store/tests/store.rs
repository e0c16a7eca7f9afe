//! Behaviour of the store on both engines: every test runs against a real SQLite file and against
//! a fresh database on the real PostgreSQL server (`modelgate_store::testing`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking"
)]

use std::sync::Arc;

use modelgate_store::testing::TestDatabase;
use modelgate_store::*;

#[derive(Clone, Copy)]
enum Engine {
    Sqlite,
    Postgres,
}

/// A new empty database of `engine`, kept while this lives.
struct Db {
    _dir: tempfile::TempDir,
    _pg: Option<TestDatabase>,
    /// Where the control plane is.
    control: Location,
    /// Where the usage and inference tables are.
    logs: Location,
}

async fn db(engine: Engine) -> Db {
    let dir = tempfile::tempdir().unwrap();
    match engine {
        Engine::Sqlite => Db {
            control: Location::Sqlite(dir.path().join("state.db")),
            logs: Location::Sqlite(dir.path().join("logs.db")),
            _dir: dir,
            _pg: None,
        },
        Engine::Postgres => {
            let pg = TestDatabase::create().await;
            let at = Location::postgres(&pg.url).unwrap();
            Db { control: at.clone(), logs: at, _dir: dir, _pg: Some(pg) }
        }
    }
}

async fn store(engine: Engine) -> (Db, Arc<dyn Store>) {
    let db = db(engine).await;
    let s = db.control.open_store().await.unwrap();
    assert_eq!(s.get_meta("x").await.unwrap(), None, "meta on an unmigrated database reads as absent");
    s.migrate().await.unwrap();
    (db, s)
}

async fn usage(engine: Engine) -> (Db, UsageDb) {
    let db = db(engine).await;
    let u = db.logs.open_usage().await.unwrap();
    (db, u)
}

async fn ensure_owner(s: &dyn Store) {
    let p = PrincipalRecord {
        id: "owner".into(),
        kind: "user".into(),
        name: "o".into(),
        display_name: "o".into(),
        active: true,
        created_at: 1,
    };
    s.create_principal(&p).await.unwrap();
}

/// Runs each named test on SQLite (`sqlite::name`) and on PostgreSQL (`postgres::name`).
macro_rules! on_both_engines {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Engine::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::$name(super::Engine::Postgres).await
            })*
        }
    };
}

on_both_engines!(
    endpoint_lifecycle_and_conflicts,
    secrets_scopes_and_limits,
    usage_summary_percentiles_are_nearest_rank,
    timeline_buckets_filter_by_entity_and_give_ttft_of_streams_only,
    registered_models_number_versions_once_and_cascade,
    reports_bucket_in_utc_and_group_by_tags_and_usage_context,
    request_log_filters_and_finds_by_client_id,
    meta_initialised_once_and_grants_replaced_or_merged,
    audit_queries_filter_and_retention_deletes,
);

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

async fn endpoint_lifecycle_and_conflicts(engine: Engine) {
    let (_d, s) = store(engine).await;
    let (e, c) = endpoint("chat");
    ensure_owner(s.as_ref()).await;
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

async fn secrets_scopes_and_limits(engine: Engine) {
    let (_d, s) = store(engine).await;
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

async fn usage_summary_percentiles_are_nearest_rank(engine: Engine) {
    let (_d, db) = usage(engine).await;
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

async fn timeline_buckets_filter_by_entity_and_give_ttft_of_streams_only(engine: Engine) {
    let (_d, db) = usage(engine).await;
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

async fn registered_models_number_versions_once_and_cascade(engine: Engine) {
    let (_d, s) = store(engine).await;
    ensure_owner(s.as_ref()).await;
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

/// 2026-11-23 (a Monday) 00:00 UTC, in ms.
const MONDAY: i64 = 1_795_392_000_000;
const HOUR: i64 = 3_600_000;

async fn reports_bucket_in_utc_and_group_by_tags_and_usage_context(engine: Engine) {
    let (_d, db) = usage(engine).await;
    let record = |i: i64, time: i64, endpoint: &str, tags: &str, ctx: Option<&str>, cost: f64| UsageRecord {
        request_id: format!("r{i}"),
        request_time: time,
        endpoint_name: endpoint.into(),
        status_code: if i == 2 { 500 } else { 200 },
        input_tokens: 10,
        output_tokens: i,
        cost_usd: cost,
        tags: Some(tags.into()),
        usage_context: ctx.map(str::to_string),
        ..Default::default()
    };
    db.insert(&[
        record(1, MONDAY + 2 * HOUR, "chat", r#"{"team":"search"}"#, Some(r#"{"app":"bot"}"#), 0.25),
        record(2, MONDAY + 2 * HOUR + 5, "chat", r#"{"team":"search"}"#, None, 0.5),
        // Sunday 23:00: the week before, the month's same day bucket differs.
        record(3, MONDAY - HOUR, "embed", r#"{"team":"ads"}"#, Some(r#"{"app":"bot"}"#), 1.0),
        UsageRecord { billing: billing::BAND.into(), ..record(4, MONDAY + 3 * HOUR, "chat", "{}", None, 2.0) },
    ])
    .await
    .unwrap();
    // A record inserted twice is kept once.
    db.insert(&[record(1, MONDAY + 2 * HOUR, "chat", "{}", None, 9.0)]).await.unwrap();

    let q = |group_by: Vec<Dimension>, bucket: Option<Bucket>| ReportQuery {
        group_by,
        bucket,
        start: MONDAY - 24 * HOUR,
        end: MONDAY + 24 * HOUR,
        endpoints: None,
        requester_id: None,
    };
    let by_tag = db.report(&q(vec![Dimension::Tag("team".into())], None)).await.unwrap();
    let rows: Vec<_> =
        by_tag.iter().map(|r| (r.dimensions[0].clone(), r.requests, r.errors, r.output_tokens)).collect();
    assert_eq!(rows, [(None, 0, 0, 4), (Some("ads".into()), 1, 0, 3), (Some("search".into()), 2, 1, 3)]);
    assert!((by_tag[2].cost_usd - 0.75).abs() < 1e-9 && (by_tag[0].cost_usd - 2.0).abs() < 1e-9);

    for (bucket, labels) in [
        (Bucket::Hour, ["2026-11-22T23:00:00Z", "2026-11-23T02:00:00Z", "2026-11-23T03:00:00Z"].as_slice()),
        (Bucket::Day, &["2026-11-22", "2026-11-23"]),
        (Bucket::Week, &["2026-11-16", "2026-11-23"]),
        (Bucket::Month, &["2026-11"]),
    ] {
        let rows = db.report(&q(vec![], Some(bucket))).await.unwrap();
        let got: Vec<_> = rows.iter().map(|r| r.bucket.clone().unwrap()).collect();
        assert_eq!(got, labels, "{bucket:?}");
    }
    let by_app = db.report(&q(vec![Dimension::UsageContext("app".into()), Dimension::Endpoint], None)).await.unwrap();
    let rows: Vec<_> = by_app.iter().map(|r| (r.dimensions.clone(), r.requests)).collect();
    assert!(rows.contains(&(vec![Some("bot".into()), Some("embed".into())], 1)), "{rows:?}");
    let only_chat = ReportQuery { endpoints: Some(vec!["chat".into()]), ..q(vec![Dimension::Endpoint], None) };
    assert_eq!(db.report(&only_chat).await.unwrap().len(), 1);
    assert!(db.report(&ReportQuery { endpoints: Some(vec![]), ..q(vec![], None) }).await.unwrap().is_empty());

    let spend = |f: SpendFilter| {
        let db = db.clone();
        async move { db.spend(&f, MONDAY - 24 * HOUR).await.unwrap() }
    };
    assert!((spend(SpendFilter { endpoints: vec!["embed".into()], ..Default::default() }).await - 1.0).abs() < 1e-9);
    let by_tag = SpendFilter { tag: Some(("team".into(), "search".into())), ..Default::default() };
    assert!((spend(by_tag).await - 0.75).abs() < 1e-9);
    let by_ctx = SpendFilter { usage_context: Some(("app".into(), "bot".into())), ..Default::default() };
    assert!((spend(by_ctx).await - 1.25).abs() < 1e-9);
    assert_eq!(spend(SpendFilter::default()).await, 0.0, "a filter matching nothing spends nothing");

    let a = db.activity("chat", MONDAY, MONDAY - 24 * HOUR).await.unwrap();
    assert_eq!((a.requests, a.last_request), (2, Some(MONDAY + 2 * HOUR + 5)), "band-time is not a query");
    assert!((a.month_cost_usd - 2.75).abs() < 1e-9);
    assert_eq!(db.delete_before(MONDAY).await.unwrap(), 0, "ids are not time-ordered in this test");
}

async fn request_log_filters_and_finds_by_client_id(engine: Engine) {
    let (_d, db) = usage(engine).await;
    // Ids as the server draws them: UUIDv7 of the arrival.
    let id = |ms: i64, n: u8| format!("{:08x}-{:04x}-7000-8000-0000000000{n:02x}", ms >> 16, ms & 0xffff);
    let record = |n: u8, ms: i64, endpoint: &str, status: i64, requester: &str| UsageRecord {
        request_id: id(ms, n),
        client_request_id: Some(format!("client-{}", n % 2)),
        request_time: ms,
        endpoint_name: endpoint.into(),
        requester: requester.into(),
        requester_id: format!("id-{requester}"),
        status_code: status,
        ..Default::default()
    };
    let t = MONDAY;
    db.insert(&[
        record(1, t, "chat", 200, "ann"),
        record(2, t + 10, "chat", 429, "bob"),
        record(3, t + 20, "embed", 200, "bob"),
        record(4, t + 30, "secret", 502, "cat"),
    ])
    .await
    .unwrap();
    let all = RequestFilter { start: t, end: t + 1000, limit: 10, ..Default::default() };
    let ids = |rs: Vec<UsageRecord>| rs.into_iter().map(|r| r.request_id).collect::<Vec<_>>();
    assert_eq!(ids(db.requests(&all).await.unwrap()), [id(t + 30, 4), id(t + 20, 3), id(t + 10, 2), id(t, 1)]);
    let failed = RequestFilter { failed_only: true, ..all.clone() };
    assert_eq!(ids(db.requests(&failed).await.unwrap()), [id(t + 30, 4), id(t + 10, 2)]);
    let visible =
        RequestFilter { endpoints: Some(vec!["chat".into()]), or_requester_id: Some("id-bob".into()), ..all.clone() };
    assert_eq!(ids(db.requests(&visible).await.unwrap()), [id(t + 20, 3), id(t + 10, 2), id(t, 1)]);
    let none_visible = RequestFilter { endpoints: Some(vec![]), ..all.clone() };
    assert!(db.requests(&none_visible).await.unwrap().is_empty());
    let page = RequestFilter { before_id: Some(id(t + 20, 3)), limit: 1, status: Some((400, 499)), ..all.clone() };
    assert_eq!(ids(db.requests(&page).await.unwrap()), [id(t + 10, 2)]);
    let by_client = db.request("client-1").await.unwrap().unwrap();
    assert_eq!(by_client.request_id, id(t + 20, 3), "the newest with that client id");
    assert_eq!(db.request(&id(t, 1)).await.unwrap().unwrap().requester, "ann");
    assert!(db.request("nope").await.unwrap().is_none());
    assert_eq!(db.records(t, t + 1000, Some("chat")).await.unwrap().len(), 2);
    assert_eq!(db.delete_before(t + 15).await.unwrap(), 2);
    assert_eq!(db.records(t, t + 1000, None).await.unwrap().len(), 2);
}

async fn meta_initialised_once_and_grants_replaced_or_merged(engine: Engine) {
    let (_d, s) = store(engine).await;
    assert_eq!(s.init_meta("workspace_id", "1").await.unwrap(), "1");
    assert_eq!(s.init_meta("workspace_id", "2").await.unwrap(), "1", "the first value holds");
    ensure_owner(s.as_ref()).await;
    let user = |id: &str| PrincipalRecord {
        id: id.into(),
        kind: principal_kind::USER.into(),
        name: id.into(),
        display_name: id.into(),
        active: true,
        created_at: 1,
    };
    s.create_principal(&user("u1")).await.unwrap();
    s.create_principal(&user("u2")).await.unwrap();
    assert!(matches!(s.create_principal(&user("u2")).await, Err(StoreError::AlreadyExists(_))));
    let (e, c) = endpoint("chat");
    s.create_endpoint(&e, &c, "owner").await.unwrap();
    let grant = |p: &str, level: &str| EndpointPermissionRecord {
        endpoint_id: e.id.clone(),
        principal_id: p.into(),
        level: level.into(),
    };
    s.write_endpoint_permissions(&e.id, &[grant("u1", "CAN_QUERY")], false).await.unwrap();
    s.write_endpoint_permissions(&e.id, &[grant("u1", "CAN_VIEW"), grant("u2", "CAN_QUERY")], false).await.unwrap();
    let levels =
        |gs: Vec<EndpointPermissionRecord>| gs.into_iter().map(|g| (g.principal_id, g.level)).collect::<Vec<_>>();
    assert_eq!(
        levels(s.list_endpoint_permissions().await.unwrap()),
        [("owner".into(), "CAN_MANAGE".into()), ("u1".into(), "CAN_VIEW".into()), ("u2".into(), "CAN_QUERY".into())]
    );
    s.write_endpoint_permissions(&e.id, &[grant("u2", "CAN_MANAGE")], true).await.unwrap();
    assert_eq!(levels(s.list_endpoint_permissions().await.unwrap()), [("u2".into(), "CAN_MANAGE".into())]);
    s.delete_principal("u2").await.unwrap();
    assert!(s.list_endpoint_permissions().await.unwrap().is_empty(), "grants go with their principal");
    assert!(matches!(s.set_password("u2", Some("h"), 1).await, Err(StoreError::NotFound(_))));
}

async fn audit_queries_filter_and_retention_deletes(engine: Engine) {
    let (_d, s) = store(engine).await;
    for (at, who, method) in [(10, "ann", "POST"), (20, "bob", "DELETE"), (30, "ann", "PUT")] {
        let r = AuditRecord {
            seq: 0,
            at,
            principal: Some(who.into()),
            principal_id: None,
            token_id: None,
            address: None,
            method: method.into(),
            path: "/api/2.0/serving-endpoints".into(),
            object: Some("serving-endpoint:chat".into()),
            summary: None,
            status: 200,
            error_code: None,
        };
        s.append_audit(&r).await.unwrap();
    }
    let q = AuditQuery { since: None, until: None, principal: None, object: None, method: None, limit: 10 };
    let got = |rs: Vec<AuditRecord>| rs.into_iter().map(|r| r.at).collect::<Vec<_>>();
    assert_eq!(got(s.query_audit(&q).await.unwrap()), [30, 20, 10]);
    let ann = AuditQuery { principal: Some("ann".into()), since: Some(15), ..q.clone() };
    assert_eq!(got(s.query_audit(&ann).await.unwrap()), [30]);
    assert_eq!(s.delete_audit_before(25).await.unwrap(), 2);
    assert_eq!(got(s.query_audit(&q).await.unwrap()), [30]);
}

/// Replicas on one PostgreSQL database changing one endpoint at once: every change lands (the
/// row is locked between the read and the write).
#[tokio::test]
async fn concurrent_updates_from_two_replicas_are_never_lost() {
    let pg = TestDatabase::create().await;
    let a = PostgresStore::connect(&pg.url).await.unwrap();
    a.migrate().await.unwrap();
    let b = PostgresStore::connect(&pg.url).await.unwrap();
    ensure_owner(&a).await;
    let (e, c) = endpoint("chat");
    a.create_endpoint(&e, &c, "owner").await.unwrap();
    let bump = |s: PostgresStore| async move {
        for _ in 0..10 {
            s.update_endpoint(
                "chat",
                Box::new(|e| {
                    e.latest_version += 1;
                    Ok(None)
                }),
            )
            .await
            .unwrap();
        }
    };
    tokio::join!(bump(a.clone()), bump(b.clone()), bump(a.clone()));
    assert_eq!(b.get_endpoint("chat").await.unwrap().unwrap().latest_version, 31);
}
