//! A database made for one test, on PostgreSQL or MySQL/MariaDB: created
//! before, dropped after. When the server is not reachable the test is
//! skipped with a note on stderr, unless CI=true, where that is a failure.
//! Included with `#[path = "support/fresh.rs"] mod fresh;` by the tests
//! that need it.
#![allow(dead_code)]

use std::io::Write as _;

use sqlx::{Connection, Executor};

use crate::support::Env;

pub(crate) const POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";
pub(crate) const MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// True under CI (CI=true or CI=1): a missing server fails the test.
pub(crate) fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Notes on the real stderr that a test is skipped because `what` is
/// unreachable (the caller then returns); under CI, panics instead.
pub(crate) fn skip_unreachable(what: &str, error: &dyn std::fmt::Display) {
    assert!(
        !ci(),
        "cannot reach {what}: {error} (CI=true: a missing server is an error)"
    );
    // Written to the real stderr: the test harness hides println! of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: cannot reach {what}: {error} (set CI=true to make this an error)"
    );
}

/// `base` with its database name replaced.
fn with_database(base: &str, database: &str) -> String {
    let (prefix, _) = base.rsplit_once('/').expect("URL with a database");
    format!("{prefix}/{database}")
}

pub(crate) enum Backend {
    Postgres,
    MySql,
}

async fn admin(backend: &Backend, base: &str, sql: &str) -> Result<(), sqlx::Error> {
    match backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(base).await?;
            c.execute(sql).await?;
            c.close().await
        }
        Backend::MySql => {
            let mut c = sqlx::MySqlConnection::connect(base).await?;
            c.execute(sql).await?;
            c.close().await
        }
    }
}

/// A database made for one test: its URL is the `Env`'s `db_url`.
pub(crate) struct Fresh<'a> {
    backend: &'a Backend,
    base: &'a str,
    name: &'a str,
    rt: &'a tokio::runtime::Runtime,
}

impl Fresh<'_> {
    /// Drops the database now, cutting every connection to it (PostgreSQL).
    pub(crate) fn drop_under_running_clients(&self) {
        let sql = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        self.rt
            .block_on(admin(self.backend, self.base, &sql))
            .expect("drop database");
    }
}

/// Runs `check` with `DATABASE_URL` on a database created for it, dropped after.
pub(crate) fn with_fresh_database(
    backend: Backend,
    var: &str,
    default: &str,
    check: impl FnOnce(&Env, &Fresh),
) {
    let base = std::env::var(var).unwrap_or_else(|_| default.to_owned());
    let name = format!("kg_cli_{}", std::process::id()) + &format!("_{}", rand_suffix());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Err(e) = rt.block_on(admin(&backend, &base, &format!("CREATE DATABASE {name}"))) {
        skip_unreachable(&base, &e);
        return;
    }
    let mut env = Env::new();
    env.db_url = with_database(&base, &name);
    let fresh = Fresh {
        backend: &backend,
        base: &base,
        name: &name,
        rt: &rt,
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&env, &fresh)));
    let _ = rt.block_on(admin(&backend, &base, &format!("DROP DATABASE {name}")));
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn rand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{nanos:x}")
}
