//! The last active admin key (the only active, unexpired key holding
//! `keygate:admin`) is not deactivated, deleted or stripped of the admin
//! scope unless `--force`: exit 1, one line, nothing changed.

mod support;

use serde_json::Value;
use support::Env;

const ADMIN: &[&str] = &["--scopes", "keygate:admin"];

/// Every way of taking key `id` out of service as an admin key.
fn demotions(id: &str) -> Vec<Vec<&str>> {
    vec![
        vec!["deactivate", id],
        vec!["delete", id],
        vec!["update", id, "--inactive"],
        vec!["update", id, "--scopes", "read"],
        vec!["update", id, "--scopes", ""],
        vec!["update", id, "--name", "renamed", "--scopes", "read,write"],
    ]
}

/// Asserts that `args` is refused as taking the last admin key out of service.
fn refused(env: &Env, args: &[&str]) {
    for json in [false, true] {
        let mut all = if json { vec!["--json"] } else { vec![] };
        all.extend_from_slice(args);
        let (out, err) = env.fails(&all, 1);
        assert!(out.is_empty(), "{all:?}: stdout {out}");
        assert_eq!(err.lines().count(), 1, "{all:?}: {err}");
        assert!(
            err.starts_with("keygate: refusing to ")
                && err.contains("the last active admin key")
                && err.contains("add --force to do it anyway"),
            "{all:?}: {err}"
        );
    }
}

/// Events recorded for key `id`.
fn event_count(env: &Env, id: &str) -> u64 {
    env.json(&["events", id])["total"].as_u64().unwrap()
}

#[test]
fn the_last_admin_key_is_kept_without_force() {
    let env = Env::new();
    let (admin, key) = env.create("admin", ADMIN);
    let id = admin["id"].as_str().unwrap();
    // Keys without the admin scope do not count, active or not.
    env.create("reader", &["--scopes", "read"]);
    env.create("almost", &["--scopes", "keygate:read"]);

    for args in demotions(id) {
        refused(&env, &args);
        assert_eq!(env.json(&["get", id]), admin, "{args:?} changed the key");
    }
    let (_, err) = env.fails(&["delete", id], 1);
    assert_eq!(
        err,
        "keygate: refusing to delete the last active admin key (the only active, unexpired key \
         holding keygate:admin; nobody could manage keys over HTTP any more); add --force to do \
         it anyway\n"
    );
    let (_, err) = env.fails(&["update", id, "--scopes", "read"], 1);
    assert!(
        err.starts_with("keygate: refusing to remove keygate:admin from the last"),
        "{err}"
    );
    // Nothing was recorded either: only the creation.
    assert_eq!(event_count(&env, id), 1);
    env.json(&["verify", &key, "--scopes", "keygate:admin"]);

    // Changes that keep it an admin key are not refused.
    let v = env.json(&[
        "update",
        id,
        "--name",
        "root",
        "--scopes",
        "read,keygate:admin",
        "--active",
        "--expires-at",
        "2098-01-01T00:00:00Z",
    ]);
    assert_eq!(v["name"], "root");
    assert_eq!(env.json(&["activate", id])["is_active"], true);
    env.json(&["rotate", id]);
}

#[test]
fn force_takes_the_last_admin_key_out_of_service() {
    let env = Env::new();
    let id = env.create_id("admin", ADMIN);
    let v = env.json(&["deactivate", id.as_str(), "--force"]);
    assert_eq!(v["is_active"], false);

    let id = env.create_id("admin", ADMIN);
    let v = env.json(&["update", id.as_str(), "--inactive", "--force"]);
    assert_eq!(v["is_active"], false);

    let id = env.create_id("admin", ADMIN);
    let v = env.json(&["update", id.as_str(), "--scopes", "read", "--force"]);
    assert_eq!(v["scopes"], serde_json::json!(["read"]));

    let id = env.create_id("admin", ADMIN);
    let v = env.json(&["delete", id.as_str(), "--force"]);
    assert_eq!(v["id"], id.as_str());
    env.fails(&["get", id.as_str()], 1);

    // The people's view says what happened too.
    let id = env.create_id("admin", ADMIN);
    let out = env.ok(&["deactivate", "--force", id.as_str()]);
    assert!(out.starts_with("API key inactive"), "{out}");
}

#[test]
fn with_another_admin_key_no_force_is_needed() {
    let env = Env::new();
    let a = env.create_id("a", ADMIN);
    let b = env.create_id("b", &["--scopes", "read,keygate:admin"]);
    for args in demotions(&a) {
        if args[0] == "delete" {
            continue;
        }
        env.json(&args);
        // Back to a working admin key for the next case.
        env.json(&["update", &a, "--active", "--scopes", "keygate:admin"]);
    }
    env.json(&["delete", &a]);
    // Now b is the last one.
    for args in demotions(&b) {
        refused(&env, &args);
    }
    let c = env.create_id("c", ADMIN);
    env.json(&["deactivate", &b]);
    env.json(&["delete", &b]);
    refused(&env, &["delete", &c]);
}

#[test]
fn keys_without_the_admin_scope_are_never_guarded() {
    let env = Env::new();
    // No admin key at all, and an inactive one that does not count.
    let inactive_admin = env.create_id("old-admin", &["--scopes", "keygate:admin", "--inactive"]);
    let id = env.create_id("reader", &["--scopes", "read"]);
    env.json(&["update", &id, "--scopes", "write"]);
    env.json(&["update", &id, "--inactive"]);
    env.json(&["activate", &id]);
    env.json(&["deactivate", &id]);
    env.json(&["delete", &id]);
    let id = env.create_id("bare", &[]);
    env.json(&["deactivate", &id]);
    env.json(&["delete", &id]);
    // An admin key that is not active is not "the last active" one.
    env.json(&["update", &inactive_admin, "--scopes", "read"]);
    env.json(&["delete", &inactive_admin]);
    // Unknown ids are still reported as such.
    for args in [
        &["deactivate", "nope"][..],
        &["delete", "nope"],
        &["update", "nope", "--inactive"],
    ] {
        let (_, err) = env.fails(args, 1);
        assert_eq!(err, "keygate: API key not found\n", "{args:?}");
    }
}

#[test]
fn an_inactive_or_expired_second_admin_key_does_not_count() {
    let env = Env::new();
    let a = env.create_id("a", ADMIN);
    let expired = env.create_id("expired", &["--scopes", "keygate:admin"]);
    env.create_id("inactive", &["--scopes", "keygate:admin", "--inactive"]);
    // While the other admin key works, a may go (and come back).
    env.json(&["deactivate", &a]);
    env.json(&["activate", &a]);
    // Expire it in the database itself (the CLI refuses past expiries, and
    // no test waits on the clock).
    expire_in_db(&env.db_url, &expired);

    let before: Value = env.json(&["get", &a]);
    for args in demotions(&a) {
        refused(&env, &args);
    }
    assert_eq!(env.json(&["get", &a]), before);

    // An expired admin key is not a working one: not guarded itself.
    env.json(&["deactivate", &expired]);
    env.json(&["delete", &expired]);
}

#[test]
fn help_explains_force() {
    for command in ["deactivate", "delete", "update"] {
        for flag in ["-h", "--help"] {
            let out = support::bare_cmd().args([command, flag]).output().unwrap();
            support::assert_success(&out, (command, flag));
            let text = String::from_utf8(out.stdout).unwrap();
            assert!(text.contains("--force"), "{command} {flag}: {text}");
            assert!(
                text.contains("last active admin key"),
                "{command} {flag}: {text}"
            );
        }
    }
    let out = support::bare_cmd().arg("--help").output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Add --force to do it anyway"), "{text}");
}

/// Sets a key's expiry to the year 2000, straight in the SQLite file.
fn expire_in_db(db_url: &str, id: &str) {
    use sqlx::Connection;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(db_url).await.unwrap();
        let done = sqlx::query(
            "UPDATE api_keys SET expires_at = '2000-01-01 00:00:00.000000' WHERE id = ?",
        )
        .bind(id)
        .execute(&mut conn)
        .await
        .unwrap();
        assert_eq!(done.rows_affected(), 1);
    });
}
