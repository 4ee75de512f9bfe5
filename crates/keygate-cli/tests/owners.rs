//! Owners and metadata (`--owner-id`, `--meta`), and finding a key by its
//! entity id, its key id or a whole (leaked) key.

mod support;

use serde_json::{json, Value};
use support::{names, Env};

#[test]
fn create_with_owner_and_meta_shows_them_in_json_and_for_people() {
    let env = Env::new();
    let (entity, _) = env.create(
        "acme-prod",
        &[
            "--owner-id",
            "team-7",
            "--meta",
            r#"{"plan": "pro", "seats": 5, "tags": ["eu"]}"#,
        ],
    );
    assert_eq!(entity["owner_id"], "team-7");
    assert_eq!(
        entity["meta"],
        json!({"plan": "pro", "seats": 5, "tags": ["eu"]})
    );
    assert_eq!(entity["previous_secret_expires_at"], Value::Null);
    let id = entity["id"].as_str().unwrap();
    assert_eq!(env.json(&["get", id]), entity, "persisted");

    let human = env.ok(&["get", id]);
    let line = |field: &str| {
        human
            .lines()
            .find(|l| l.split_whitespace().next() == Some(field))
            .unwrap_or_else(|| panic!("{field}: {human}"))
            .to_owned()
    };
    assert!(line("owner_id").ends_with("team-7"), "{human}");
    assert!(
        line("meta").ends_with(r#"{"plan":"pro","seats":5,"tags":["eu"]}"#),
        "{human}"
    );
    assert!(!human.contains("previous_secret"), "no grace: {human}");

    // The list table has an owner column, but never the meta.
    let table = env.ok(&["list"]);
    let header = table.lines().next().unwrap();
    let owner_col = header.find("OWNER").expect("OWNER column");
    assert_eq!(
        &table.lines().nth(1).unwrap()[owner_col..owner_col + 6],
        "team-7"
    );
    assert!(!table.contains("plan"), "{table}");
}

#[test]
fn meta_must_be_a_json_object_and_nothing_is_created_otherwise() {
    let env = Env::new();
    for bad in ["[1, 2]", "\"pro\"", "42", "null", "{not json", ""] {
        for json in [false, true] {
            let mut args = if json { vec!["--json"] } else { vec![] };
            args.extend(["create", "--name", "x", "--meta", bad]);
            let (out, err) = env.fails(&args, 2);
            assert!(out.is_empty(), "{bad}: {out}");
            assert!(err.contains("--meta"), "{bad}: {err}");
            assert!(err.contains("JSON"), "{bad}: {err}");
        }
        let (_, err) = env.fails(&["update", "some-id", "--meta", bad], 2);
        assert!(err.contains("--meta"), "{bad}: {err}");
    }
    // Too large for the store's limit: refused by validation, exit 1.
    let big = format!(r#"{{"blob": "{}"}}"#, "x".repeat(9000));
    let (_, err) = env.fails(&["create", "--name", "x", "--meta", &big], 1);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("meta"), "{err}");
    let (_, err) = env.fails(&["create", "--name", "x", "--owner-id", ""], 1);
    assert!(err.contains("owner_id"), "{err}");
    assert_eq!(env.json(&["count"])["total"], 0, "nothing was created");
}

#[test]
fn update_sets_and_clears_owner_meta_and_description() {
    let env = Env::new();
    let (entity, _) = env.create(
        "svc",
        &[
            "--description",
            "first",
            "--owner-id",
            "u-1",
            "--meta",
            r#"{"a":1}"#,
        ],
    );
    let id = entity["id"].as_str().unwrap();

    let v = env.json(&["update", id, "--owner-id", "u-2", "--meta", r#"{"b":2}"#]);
    assert_eq!(v["owner_id"], "u-2");
    assert_eq!(v["meta"], json!({"b": 2}), "meta is replaced, not merged");
    assert_eq!(v["description"], "first", "untouched");

    let v = env.json(&["update", id, "--clear-owner"]);
    assert_eq!(v["owner_id"], Value::Null);
    assert_eq!(v["meta"], json!({"b": 2}), "untouched");

    let v = env.json(&["update", id, "--clear-meta", "--clear-description"]);
    assert_eq!(v["meta"], Value::Null);
    assert_eq!(v["description"], Value::Null);
    assert_eq!(v["name"], "svc");
    assert_eq!(env.json(&["get", id]), v, "persisted");

    let human = env.ok(&["update", id, "--owner-id", "u-3"]);
    assert!(human.starts_with("API key updated."), "{human}");
    assert!(human.contains("u-3"), "{human}");
}

#[test]
fn get_accepts_an_entity_id_a_key_id_or_a_whole_key() {
    let env = Env::new();
    let (entity, key) = env.create("leaky", &["--owner-id", "o"]);
    env.create("other", &[]);
    let id = entity["id"].as_str().unwrap();
    let key_id = entity["key_id"].as_str().unwrap();
    let secret = key.rsplit('-').next().unwrap();

    assert_eq!(env.json(&["get", id]), entity);
    assert_eq!(env.json(&["get", key_id]), entity);
    assert_eq!(env.json(&["get", "--key-id", key_id]), entity);
    // A leaked key leads to its entity in one step; its secret is never shown.
    let human = env.ok(&["get", &key]);
    assert!(human.contains(id) && !human.contains(secret), "{human}");
    assert_eq!(env.json(&["get", &key]), entity);
    let out = env
        .cmd()
        .args(["--json", "get", "-"])
        .write_stdin(format!("{key}\n"))
        .output()
        .unwrap();
    support::assert_success(&out, "get -");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v, entity);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));

    // Only the key id of a whole key is used: a wrong secret still finds it
    // (this is a look-up, not a verification).
    let mut other_secret = key.clone();
    other_secret.replace_range(key.len() - 4.., "AAAA");
    assert_eq!(env.json(&["get", &other_secret])["id"], id);

    // Unknown ids of every kind: one line, without the secret.
    let unknown_key = format!("ak_v1-0123456789abcdef-{secret}");
    for args in [
        vec!["get", "0123456789abcdef"],
        vec!["get", "--key-id", "0123456789abcdef"],
        vec!["get", "0123456789abcdef0123456789abcdef"],
        vec!["get", unknown_key.as_str()],
        vec!["get", "nope"],
    ] {
        let (out, err) = env.fails(&args, 1);
        assert!(out.is_empty());
        assert_eq!(err, "keygate: API key not found\n", "{args:?}");
    }
    // Logs, when asked for, do not carry the secret either.
    let out = env
        .cmd()
        .env("RUST_LOG", "trace")
        .args(["get", &key])
        .output()
        .unwrap();
    assert!(out.status.success());
    for stream in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains(secret));
    }
}

#[test]
fn search_and_count_by_owner_and_key_id() {
    let env = Env::new();
    let (a, _) = env.create("a", &["--owner-id", "team-1"]);
    env.create("b", &["--owner-id", "team-2"]);
    env.create("c", &["--owner-id", "team-1", "--inactive"]);
    env.create("d", &[]);
    let search = |args: &[&str]| names(&env.json(&[&["search"][..], args].concat())["items"]);
    let count = |args: &[&str]| env.json(&[&["count"][..], args].concat())["total"].clone();

    assert_eq!(search(&["--owner-id", "team-1"]), ["c", "a"]);
    assert_eq!(count(&["--owner-id", "team-1"]), 2);
    assert_eq!(search(&["--owner-id", "team-1", "--active"]), ["a"]);
    assert_eq!(
        search(&["--owner-id", "team"]),
        Vec::<String>::new(),
        "exact"
    );
    let key_id = a["key_id"].as_str().unwrap();
    assert_eq!(search(&["--key-id", key_id]), ["a"]);
    assert_eq!(count(&["--key-id", key_id]), 1);
    assert_eq!(count(&["--key-id", "0123456789abcdef"]), 0);
    assert_eq!(
        env.ok(&["count", "--owner-id", "team-2"]),
        "1\n",
        "human count"
    );
}

#[test]
fn conflicting_or_missing_flags_are_usage_errors() {
    let env = Env::new();
    let cases: &[&[&str]] = &[
        &["get"],
        &["get", "some-id", "--key-id", "0123456789abcdef"],
        &["update", "some-id", "--owner-id", "o", "--clear-owner"],
        &["update", "some-id", "--meta", "{}", "--clear-meta"],
        &[
            "update",
            "some-id",
            "--description",
            "d",
            "--clear-description",
        ],
        &["--actor", "", "list"],
        &["--actor", "a\nb", "list"],
    ];
    for args in cases {
        let (out, err) = env.fails(args, 2);
        assert!(out.is_empty() && !err.is_empty(), "{args:?}");
    }
    assert!(
        !env.db_path().exists(),
        "usage errors never touch the database"
    );
}
