//! `rotate` and the audit log (`events`, `--actor`).

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};
use support::Env;

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("time: {v}")))
        .unwrap()
        .with_timezone(&Utc)
}

/// The `action` of each event of a page.
fn actions(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn rotate_gives_a_new_key_and_the_old_one_works_only_during_the_grace() {
    let env = Env::new();
    let (entity, first) = env.create("leaked", &["--scopes", "read", "--owner-id", "o"]);
    let id = entity["id"].as_str().unwrap();
    let key_id = entity["key_id"].as_str().unwrap();

    let v = env.json(&["rotate", id, "--grace", "1h"]);
    let mut fields: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(fields, ["api_key", "entity"], "same shape as create");
    let second = v["api_key"].as_str().unwrap().to_owned();
    assert!(
        second.starts_with(&format!("ak_v1-{key_id}-")),
        "same key id"
    );
    assert_ne!(second, first);
    let rotated = &v["entity"];
    assert_eq!(rotated["id"], id);
    assert_eq!(
        (&rotated["scopes"], &rotated["owner_id"]),
        (&json!(["read"]), &json!("o"))
    );
    let until = time(&rotated["previous_secret_expires_at"]);
    let expected = Utc::now() + TimeDelta::hours(1);
    assert!((until - expected).num_seconds().abs() < 60, "{until}");
    assert_eq!(env.json(&["get", id]), *rotated, "persisted");

    // Both verify during the grace period.
    assert_eq!(env.json(&["verify", &second, "--scopes", "read"])["id"], id);
    assert_eq!(env.json(&["verify", &first, "--scopes", "read"])["id"], id);
    let human = env.ok(&["get", id]);
    assert!(human.contains("previous_secret_expires_at"), "{human}");

    // For people: the new key once, and when the old one stops working.
    let human = env.ok(&["rotate", id, "--grace", "90s"]);
    assert!(human.starts_with("API key rotated."), "{human}");
    assert!(human.contains("shown only this once"), "{human}");
    assert!(
        human.contains("The previous secret keeps working until"),
        "{human}"
    );
    let third = human
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("ak_v1-"))
        .expect("key line")
        .to_owned();
    assert_eq!(human.matches(&third).count(), 1);
    // Rotating again ended the first key's grace at once.
    let (_, err) = env.fails(&["verify", &first], 1);
    assert!(err.starts_with("keygate: API key invalid ("), "{err}");
    assert!(err.contains("rotated-out"), "{err}");
    env.ok(&["verify", &second]);

    // No grace: only the newest key works.
    let human = env.ok(&["rotate", id, "--grace", "0"]);
    assert!(
        human.contains("The previous secret is refused from now on."),
        "{human}"
    );
    let v = env.json(&["rotate", id]);
    assert_eq!(v["entity"]["previous_secret_expires_at"], Value::Null);
    let newest = v["api_key"].as_str().unwrap();
    for old in [&first, &second, &third] {
        let (_, err) = env.fails(&["verify", old], 1);
        assert!(err.starts_with("keygate: API key invalid ("), "{err}");
    }
    assert_eq!(env.json(&["verify", newest])["id"], id);
}

#[test]
fn rotate_errors() {
    let env = Env::new();
    let id = env.create_id("k", &[]);
    for bad in ["1", "1x", "-5m", "soon", "31d", ""] {
        let flag = format!("--grace={bad}");
        let (out, err) = env.fails(&["rotate", &id, &flag], 2);
        assert!(out.is_empty(), "{bad}: {out}");
        assert!(err.contains("--grace"), "{bad}: {err}");
    }
    for args in [
        &["rotate"][..],
        &["events", "--action", "frobnicate"],
        &["events", "--since", "yesterday"],
        &["events", "--limit", "0"],
    ] {
        let (out, err) = env.fails(args, 2);
        assert!(out.is_empty() && !err.is_empty(), "{args:?}");
    }
    let (_, err) = env.fails(&["rotate", "0123456789abcdef0123456789abcdef"], 1);
    assert_eq!(err, "keygate: API key not found\n");
    // Nothing was rotated: the key has its create event only.
    assert_eq!(actions(&env.json(&["events", &id])), ["create"]);
}

#[test]
fn a_keys_events_oldest_first_with_actor_and_changes_and_no_secret() {
    let env = Env::new();
    let (entity, key) = env.create("svc", &["--scopes", "read"]);
    let id = entity["id"].as_str().unwrap();
    let key_id = entity["key_id"].as_str().unwrap();
    env.ok(&[
        "--actor",
        "alice",
        "update",
        id,
        "--owner-id",
        "team-1",
        "--meta",
        r#"{"p":1}"#,
    ]);
    env.ok(&["update", id, "--scopes", "read,write", "--actor", "alice"]);
    let out = env
        .cmd()
        .env("KEYGATE_ACTOR", "bob")
        .args(["deactivate", id])
        .output()
        .unwrap();
    support::assert_success(&out, "deactivate as bob");
    let rotated = env.json(&["rotate", id, "--grace", "1h"])["api_key"]
        .as_str()
        .unwrap()
        .to_owned();

    let page = env.json(&["events", id]);
    assert_eq!(
        actions(&page),
        ["create", "update", "update", "deactivate", "rotate"]
    );
    assert_eq!(
        (&page["total"], &page["limit"], &page["offset"]),
        (&json!(5), &json!(50), &json!(0))
    );
    let items = page["items"].as_array().unwrap();
    let actors: Vec<_> = items.iter().map(|e| e["actor"].as_str().unwrap()).collect();
    assert_eq!(actors, ["cli", "alice", "alice", "bob", "cli"]);
    let mut fields: Vec<_> = items[0].as_object().unwrap().keys().cloned().collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            "action",
            "actor",
            "at",
            "changes",
            "entity_id",
            "id",
            "key_id"
        ]
    );
    for e in items {
        assert_eq!(
            (&e["entity_id"], &e["key_id"]),
            (&json!(id), &json!(key_id))
        );
    }
    assert_eq!(items[0]["changes"]["name"], json!([null, "svc"]));
    assert_eq!(
        items[1]["changes"],
        json!({"owner_id": [null, "team-1"], "meta": [null, {"p": 1}]})
    );
    assert_eq!(
        items[2]["changes"],
        json!({"scopes": [["read"], ["read", "write"]]})
    );
    assert_eq!(items[3]["changes"], json!({"is_active": [true, false]}));
    assert_eq!(
        items[4]["changes"]["secret"],
        json!(["(hidden)", "(hidden)"])
    );
    assert!(items[4]["changes"]["previous_secret_expires_at"][1].is_string());
    let times: Vec<_> = items.iter().map(|e| time(&e["at"])).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");

    // For people: an aligned table, changes as `field: old → new`.
    let table = env.ok(&["events", id]);
    let lines: Vec<&str> = table.lines().collect();
    let header = lines[0];
    for col in ["TIME", "ACTION", "KEY ID", "ACTOR", "CHANGES"] {
        assert!(header.contains(col), "{col}: {table}");
    }
    let actor_col = header.find("ACTOR").unwrap();
    assert_eq!(&lines[4][actor_col..actor_col + 3], "bob", "{table}");
    assert!(lines[2].contains(r#"meta: - → {"p":1}"#), "{table}");
    assert!(lines[2].contains("owner_id: - → team-1"), "{table}");
    assert!(lines[3].contains("scopes: read → read,write"), "{table}");
    assert!(lines[5].contains("secret: replaced"), "{table}");
    assert_eq!(lines.last().copied(), Some("1-5 of 5 events"), "{table}");

    let secrets = [
        key.rsplit('-').next().unwrap(),
        rotated.rsplit('-').next().unwrap(),
    ];
    for text in [
        table,
        env.ok(&["--json", "events", id]),
        env.ok(&["--json", "events"]),
    ] {
        for leak in [secrets[0], secrets[1], "$argon2", "key_hash"] {
            assert!(!text.contains(leak), "{leak} leaked: {text}");
        }
    }
}

#[test]
fn a_deleted_keys_events_stay() {
    let env = Env::new();
    let id = env.create_id("gone", &[]);
    env.ok(&["--actor", "carol", "delete", id.as_str()]);
    env.fails(&["get", &id], 1);
    let page = env.json(&["events", &id]);
    assert_eq!(actions(&page), ["create", "delete"]);
    assert_eq!(page["items"][1]["actor"], "carol");
    assert_eq!(page["items"][1]["changes"]["name"], json!(["gone", null]));
    assert!(env.ok(&["events", &id]).contains("delete"));
    // By the public key id too (what a leaked key shows), after deletion.
    let key_id = page["items"][0]["key_id"].as_str().unwrap().to_owned();
    assert_eq!(
        actions(&env.json(&["events", &key_id])),
        ["create", "delete"]
    );
    // A filter that matches nothing is not "not found"…
    assert_eq!(
        env.ok(&["events", &id, "--action", "rotate"]),
        "no events match\n"
    );
    let live = env.create_id("live", &[]);
    assert_eq!(
        env.json(&["events", &live, "--action", "update"])["total"],
        0
    );
    // …an id with neither key nor event is.
    for json in [false, true] {
        let args = [
            &[
                "events",
                if json {
                    "0123456789abcdef0123456789abcdef"
                } else {
                    "0123456789abcdef"
                },
            ][..],
            if json { &["--json"] } else { &[] },
        ]
        .concat();
        let (out, err) = env.fails(&args, 1);
        assert!(out.is_empty());
        assert_eq!(err, "keygate: API key not found\n");
    }
}

#[test]
fn the_whole_log_newest_first_with_filters_and_paging() {
    let env = Env::new();
    let a = env.create_id("a", &[]);
    let b = env.create_id("b", &[]);
    env.ok(&["--actor", "alice", "deactivate", a.as_str()]);
    let before_rotate = Utc::now();
    std::thread::sleep(std::time::Duration::from_millis(20));
    env.ok(&["--actor", "alice", "rotate", b.as_str()]);
    env.ok(&["delete", a.as_str()]);

    let all = env.json(&["events"]);
    assert_eq!(
        actions(&all),
        ["delete", "rotate", "deactivate", "create", "create"]
    );
    assert_eq!(all["total"], 5);
    let by = |args: &[&str]| actions(&env.json(&[&["events"][..], args].concat()));
    assert_eq!(by(&["--action", "create"]), ["create", "create"]);
    assert_eq!(by(&["--actor", "alice"]), ["rotate", "deactivate"]);
    assert_eq!(by(&["--actor", "cli"]), ["delete", "create", "create"]);
    assert_eq!(by(&["--actor", "nobody"]), Vec::<String>::new());
    assert_eq!(by(&["--action", "rotate", "--actor", "alice"]), ["rotate"]);
    let since = before_rotate.to_rfc3339();
    assert_eq!(by(&["--since", &since]), ["delete", "rotate"]);
    assert_eq!(
        by(&["--since", "2999-01-01T00:00:00Z"]),
        Vec::<String>::new()
    );
    // `--actor` filters wherever it is written; KEYGATE_ACTOR does not.
    assert_eq!(
        actions(&env.json(&["--actor", "alice", "events"])),
        ["rotate", "deactivate"]
    );
    let out = env
        .cmd()
        .env("KEYGATE_ACTOR", "alice")
        .args(["--json", "events"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["total"], 5, "the environment is not a filter");

    let page = env.json(&["events", "--limit", "2", "--offset", "1"]);
    assert_eq!(actions(&page), ["rotate", "deactivate"]);
    assert_eq!(
        (&page["total"], &page["limit"], &page["offset"]),
        (&json!(5), &json!(2), &json!(1))
    );
    let mut keys: Vec<_> = page.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["items", "limit", "offset", "total"]);

    let table = env.ok(&["events", "--limit", "2"]);
    assert!(table.lines().next().unwrap().starts_with("TIME"), "{table}");
    assert_eq!(table.lines().last(), Some("1-2 of 5 events"), "{table}");
    assert_eq!(
        env.ok(&["events", "--offset", "9"]),
        "no events on this page (5 matching)\n"
    );
    assert_eq!(
        env.ok(&["events", "--action", "update"]),
        "no events match\n"
    );
}
