//! Compatibility with the Python library (SPEC §8): a SQLite database it
//! wrote (the fixture) and a PostgreSQL table in its layout open, list,
//! verify, and survive `migrate()` with every row byte-identical.

mod support;

use std::path::{Path, PathBuf};

use keygate::prelude::*;
use keygate::{ApiKeyFilter, ApiKeyService, Error, KeyFormat, Pepper};
use keygate_sqlx::{PostgresRepository, SqlRepository};
use serde_json::Value;
use sqlx::{Connection, Executor, Row};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/keyshield-2.0.1.sqlite3"
);

fn manifest() -> Value {
    let text = std::fs::read_to_string(format!("{FIXTURE}.json")).expect("fixture manifest");
    serde_json::from_str(&text).expect("fixture manifest JSON")
}

/// The fixture copied into a fresh temporary directory (never opened in place).
fn fixture_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("keyshield.sqlite3");
    std::fs::copy(FIXTURE, &path).expect("copy fixture");
    (dir, path)
}

async fn open(path: &Path) -> SqlRepository {
    SqlRepository::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("open fixture copy")
}

fn fixture_service(repo: impl Repository) -> ApiKeyService {
    let m = manifest();
    let format = KeyFormat::new(
        m["global_prefix"].as_str().unwrap(),
        m["separator"].as_str().unwrap(),
    )
    .unwrap();
    ApiKeyService::builder(repo)
        .pepper(Pepper::new(m["pepper"].as_str().unwrap()).unwrap())
        .key_format(format)
        .without_cache()
        .build()
        .unwrap()
}

/// Every key of the manifest lists with its name, scopes and state.
async fn assert_lists_fixture(repo: &dyn Repository) {
    let m = manifest();
    let expected = m["keys"].as_array().unwrap();
    let stored = repo.find(&ApiKeyFilter::default()).await.unwrap();
    assert_eq!(stored.len(), expected.len());
    for want in expected {
        let got = stored
            .iter()
            .find(|k| k.id == want["id"].as_str().unwrap())
            .unwrap_or_else(|| panic!("missing {want}"));
        assert_eq!(got.key_id, want["key_id"].as_str().unwrap());
        assert_eq!(got.name.as_deref(), want["name"].as_str());
        assert_eq!(got.is_active, want["is_active"].as_bool().unwrap());
        let scopes: Vec<&str> = want["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(got.scopes.as_slice(), scopes);
    }
    let one = ApiKeyFilter {
        name_exact: Some("expiring".into()),
        ..ApiKeyFilter::default()
    };
    let expiring = repo.find(&one).await.unwrap();
    assert!(expiring[0].expires_at.is_some());
    let used = ApiKeyFilter {
        never_used: Some(false),
        ..ApiKeyFilter::default()
    };
    assert_eq!(repo.count(&used).await.unwrap(), 1);
    let writers = ApiKeyFilter {
        scopes_contain_any: vec!["write".into()],
        ..ApiKeyFilter::default()
    };
    assert_eq!(repo.count(&writers).await.unwrap(), 2);
}

/// Each plaintext key of the manifest verifies; the disabled one is refused
/// as inactive (after its hash matched).
async fn assert_fixture_keys_verify(service: &ApiKeyService) {
    for want in manifest()["keys"].as_array().unwrap() {
        let key = want["api_key"].as_str().unwrap();
        let result = service.verify(key, &[] as &[&str]).await;
        if want["is_active"].as_bool().unwrap() {
            let verified = result.unwrap_or_else(|e| panic!("{}: {e}", want["name"]));
            assert_eq!(verified.id, want["id"].as_str().unwrap());
        } else {
            assert!(matches!(result, Err(Error::KeyInactive)), "{result:?}");
        }
    }
}

/// Every api_keys row, every column, with SQLite's own quoting (so a type
/// change, e.g. text → integer, shows too).
async fn sqlite_dump(path: &Path) -> Vec<String> {
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    // The Python library's columns: keygate's migrations only add others.
    let columns: Vec<&str> = FIXTURE_COLUMNS.split(", ").collect();
    let select = columns
        .iter()
        .map(|col| format!("quote({col})"))
        .collect::<Vec<_>>()
        .join(" || '|' || ");
    let mut dump: Vec<String> = sqlx::query(&format!("SELECT {select} FROM api_keys ORDER BY id"))
        .fetch_all(&mut c)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    // Their declared types, nullability and keys stay as the Python library made them.
    let ddl: Vec<String> = sqlx::query(
        "SELECT name || ' ' || type || ' ' || \"notnull\" || ' ' || pk \
         FROM pragma_table_info('api_keys') ORDER BY cid",
    )
    .fetch_all(&mut c)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get::<String, _>(0))
    .filter(|line| columns.contains(&line.split(' ').next().unwrap_or_default()))
    .collect();
    dump.extend(ddl);
    dump
}

#[tokio::test]
async fn fixture_lists_all_rows_with_names_and_scopes() {
    let (_dir, path) = fixture_copy();
    let repo = open(&path).await;
    assert_lists_fixture(&repo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_keys_verify_with_the_fixture_pepper() {
    let (_dir, path) = fixture_copy();
    let service = fixture_service(open(&path).await);
    assert_fixture_keys_verify(&service).await;
    // A wrong pepper verifies nothing.
    let wrong = ApiKeyService::builder(open(&path).await)
        .pepper(Pepper::new("another-pepper").unwrap())
        .without_cache()
        .build()
        .unwrap();
    let reader = manifest()["keys"][0]["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(matches!(
        wrong.verify(&reader, &[] as &[&str]).await,
        Err(Error::InvalidKey)
    ));
}

#[tokio::test]
async fn migrate_on_the_fixture_changes_no_row() {
    let (_dir, path) = fixture_copy();
    let before = sqlite_dump(&path).await;
    let repo = open(&path).await;
    repo.migrate().await.unwrap();
    repo.migrate().await.unwrap(); // idempotent
    repo.close().await;
    assert_eq!(sqlite_dump(&path).await, before);
    let repo = open(&path).await;
    assert_lists_fixture(&repo).await;
}

#[tokio::test]
async fn keygate_writes_what_the_python_library_writes() {
    let (_dir, path) = fixture_copy();
    let repo = open(&path).await;
    repo.migrate().await.unwrap();
    let service = support::service(std::sync::Arc::new(repo.clone()));
    let new = keygate::NewApiKey::named("from-rust").with_scopes(["read", "write"]);
    let (created, key) = service.create(new).await.unwrap();
    service.verify(key.expose(), &["read"]).await.unwrap();
    let mut c = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let row = sqlx::query(
        "SELECT typeof(created_at), created_at, last_used_at, typeof(is_active), is_active, \
         typeof(scopes), scopes FROM api_keys WHERE id = ?",
    )
    .bind(&created.id)
    .fetch_one(&mut c)
    .await
    .unwrap();
    assert_eq!(row.get::<String, _>(0), "text");
    let created_at: String = row.get(1);
    let python = sqlx::query_scalar::<_, String>("SELECT created_at FROM api_keys LIMIT 1")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(created_at.len(), python.len(), "{created_at} vs {python}");
    assert_eq!(&created_at[10..11], " ");
    assert_eq!(&created_at[19..20], ".");
    assert_eq!(row.get::<String, _>(2).len(), python.len());
    assert_eq!(row.get::<String, _>(3), "integer");
    assert_eq!(row.get::<i64, _>(4), 1);
    assert_eq!(row.get::<String, _>(5), "text");
    assert_eq!(row.get::<String, _>(6), r#"["read", "write"]"#);
    // Old and new keys side by side, newest first.
    let names: Vec<_> = service
        .list(0, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.name)
        .collect();
    assert_eq!(
        names,
        [Some("from-rust".into()), Some("bcrypt-writer".into())]
    );
}

/// The Python library's PostgreSQL DDL (SQLAlchemy): timestamptz, json.
const PYTHON_PG_DDL: &str = "
CREATE TABLE api_keys (
    id VARCHAR(36) NOT NULL,
    name VARCHAR(128),
    description TEXT,
    is_active BOOLEAN NOT NULL,
    expires_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
    last_used_at TIMESTAMP WITH TIME ZONE,
    key_id VARCHAR(16) NOT NULL,
    key_hash VARCHAR(255) NOT NULL,
    key_secret_first VARCHAR(4) NOT NULL,
    key_secret_last VARCHAR(4) NOT NULL,
    scopes JSON NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (key_hash)
);
CREATE UNIQUE INDEX ix_api_keys_key_id ON api_keys (key_id);
";

const FIXTURE_COLUMNS: &str = "id, name, description, is_active, expires_at, created_at, \
    last_used_at, key_id, key_hash, key_secret_first, key_secret_last, scopes";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_written_postgres_table_reads_verifies_and_survives_migrate() {
    let Some((pool, schema)) = support::postgres_pool().await else {
        return;
    };
    let store = support::postgres_store(pool.clone(), schema);
    pool.execute(PYTHON_PG_DDL).await.unwrap();

    // The fixture's rows, inserted with the value formats the Python
    // library sends (naive UTC text + offset, JSON text).
    let (_dir, path) = fixture_copy();
    let mut lite = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let rows = sqlx::query(&format!("SELECT {FIXTURE_COLUMNS} FROM api_keys"))
        .fetch_all(&mut lite)
        .await
        .unwrap();
    for r in &rows {
        let utc = |c: &str| r.get::<Option<String>, _>(c).map(|t| format!("{t}+00:00"));
        sqlx::query(&format!(
            "INSERT INTO api_keys ({FIXTURE_COLUMNS}) VALUES ($1, $2, $3, $4, \
             $5::timestamptz, $6::timestamptz, $7::timestamptz, $8, $9, $10, $11, $12::json)"
        ))
        .bind(r.get::<String, _>("id"))
        .bind(r.get::<Option<String>, _>("name"))
        .bind(r.get::<Option<String>, _>("description"))
        .bind(r.get::<bool, _>("is_active"))
        .bind(utc("expires_at"))
        .bind(utc("created_at"))
        .bind(utc("last_used_at"))
        .bind(r.get::<String, _>("key_id"))
        .bind(r.get::<String, _>("key_hash"))
        .bind(r.get::<String, _>("key_secret_first"))
        .bind(r.get::<String, _>("key_secret_last"))
        .bind(r.get::<String, _>("scopes"))
        .execute(&pool)
        .await
        .unwrap();
    }

    let dump = || async {
        sqlx::query_scalar::<_, String>(&format!(
            "SELECT ROW({FIXTURE_COLUMNS})::text FROM api_keys ORDER BY id"
        ))
        .fetch_all(&pool)
        .await
        .unwrap()
    };
    let before = dump().await;
    assert_eq!(before.len(), 6);
    let repo = store.sql.clone().unwrap();
    repo.migrate().await.unwrap();
    repo.migrate().await.unwrap();
    assert_eq!(dump().await, before);

    assert_lists_fixture(&repo).await;
    assert_fixture_keys_verify(&fixture_service(PostgresRepository::from_pool(
        pool.clone(),
    )))
    .await;
}

#[tokio::test]
async fn changes_before_migrate_are_refused_with_the_fix() {
    let (_dir, path) = fixture_copy();
    let before = sqlite_dump(&path).await;
    let service = fixture_service(open(&path).await);
    let id = manifest()["keys"][0]["id"].as_str().unwrap().to_owned();
    let refused = service.deactivate(&id).await.unwrap_err();
    assert!(refused.to_string().contains("keygate migrate"), "{refused}");
    // Reads and verification work on the unmigrated table.
    assert_eq!(service.get(&id).await.unwrap().id, id);
    assert_eq!(sqlite_dump(&path).await, before);
}
