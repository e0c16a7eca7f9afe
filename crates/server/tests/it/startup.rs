//! Startup safety: a broken database is named, loose permissions on secrets are not accepted
//! silently.

use std::os::unix::fs::PermissionsExt;

use crate::common::*;
use modelgate_server::Server;

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn start_err(dir: &std::path::Path, tweak: impl FnOnce(&mut modelgate_server::ServerConfig)) -> String {
    let mut cfg = config(dir.to_path_buf());
    tweak(&mut cfg);
    match Server::start(cfg).await {
        Ok(s) => {
            s.shutdown().await.unwrap();
            panic!("the server started");
        }
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_corrupted_database_is_named() {
    // Database files: SQLite whatever store the suite runs on.
    let mut t = TestServer::start_with(|c| c.database_url = None).await;
    let data = t.data_dir();
    t.server.take().unwrap().shutdown().await.unwrap();
    for (file, what) in [("usage.db", "usage database"), ("modelgate.db", "control-plane database")] {
        let path = data.join(file);
        let good = std::fs::read(&path).unwrap();
        for side in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(data.join(format!("{file}{side}")));
        }
        std::fs::write(&path, vec![0x42u8; 8192]).unwrap();
        let e = start_err(&data, |_| {}).await;
        assert!(e.contains(what) && e.contains(&path.display().to_string()), "{e}");
        std::fs::write(&path, good).unwrap();
    }
}

#[tokio::test]
async fn a_key_file_others_can_read_stops_the_start_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut cfg = config(data.clone());
    cfg.admin_token = Some(ADMIN_TOKEN.into());
    Server::start(cfg.clone()).await.unwrap().shutdown().await.unwrap();
    let key = data.join("master.key");
    assert_eq!(mode(&key), 0o600);

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = start_err(&data, |_| {}).await;
    assert!(e.contains("can be read by other users (mode 644)") && e.contains("chmod 600"), "{e}");
    assert!(e.contains("--allow-insecure-key-file"), "{e}");

    cfg.allow_insecure_key_file = true;
    Server::start(cfg).await.expect("starts with the override").shutdown().await.unwrap();
}

#[tokio::test]
async fn a_data_directory_others_can_read_is_tightened() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Server::start(config(data.clone())).await.unwrap().shutdown().await.unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(data.join("inference.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
    Server::start(config(data.clone())).await.unwrap().shutdown().await.unwrap();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("inference.db")), 0o600);
}

#[tokio::test]
async fn a_database_url_that_is_not_postgres_stops_the_start_without_showing_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let e = start_err(&dir.path().join("data"), |c| c.database_url = Some("mysql://mg:s3cret@db/mg".into())).await;
    assert!(e.contains("postgres://") && !e.contains("s3cret"), "{e}");
}
