//! Every key command, in human and JSON form, with its exit codes.

mod support;

use serde_json::Value;
use support::{names, Env};

#[test]
fn bootstrap_creates_the_database_and_the_first_admin_key() {
    let env = Env::new();
    assert!(!env.db_path().exists());
    let out = env.ok(&["create", "--name", "admin", "--scopes", "keygate:admin"]);
    assert!(env.db_path().exists(), "sqlite file created on first use");
    assert!(out.contains("API key created"), "{out}");
    assert!(out.contains("shown only this once"), "{out}");
    let key_line = out
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("ak_v1-"))
        .expect("key line");
    assert_eq!(key_line.len(), "ak_v1-".len() + 16 + 1 + 64);
    for field in ["id", "key_id", "name", "status", "scopes", "created_at"] {
        assert!(out.lines().any(|l| l.starts_with(field)), "{field}: {out}");
    }
    assert!(out.contains("keygate:admin") && out.contains("active"));
    // The key verifies with the admin scope.
    let v = env.json(&["verify", key_line, "--scopes", "keygate:admin"]);
    assert_eq!(v["name"], "admin");
}

#[test]
fn create_json_has_the_key_and_the_public_entity_only() {
    let env = Env::new();
    let v = env.json(&[
        "create",
        "--name",
        "ci",
        "--description",
        "deploys",
        "--scopes",
        "read,api:write",
        "--expires-at",
        "2099-01-01T00:00:00Z",
        "--inactive",
    ]);
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 2, "{v}");
    let entity = v["entity"].as_object().unwrap();
    let mut fields: Vec<_> = entity.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "created_at",
            "credits",
            "description",
            "expires_at",
            "id",
            "is_active",
            "key_id",
            "last_used_at",
            "meta",
            "name",
            "owner_id",
            "previous_secret_expires_at",
            "rate_limits",
            "scopes"
        ]
    );
    assert_eq!(v["entity"]["owner_id"], Value::Null);
    assert_eq!(v["entity"]["rate_limits"], Value::Null);
    assert_eq!(v["entity"]["credits"], Value::Null);
    assert_eq!(v["entity"]["meta"], Value::Null);
    assert_eq!(v["entity"]["previous_secret_expires_at"], Value::Null);
    assert_eq!(v["entity"]["is_active"], false);
    assert_eq!(
        v["entity"]["scopes"],
        serde_json::json!(["read", "api:write"])
    );
    assert_eq!(v["entity"]["expires_at"], "2099-01-01T00:00:00Z");
    assert_eq!(v["entity"]["last_used_at"], Value::Null);
    assert_eq!(v["entity"]["id"].as_str().unwrap().len(), 32);
    let key = v["api_key"].as_str().unwrap();
    assert!(key.starts_with(&format!(
        "ak_v1-{}-",
        v["entity"]["key_id"].as_str().unwrap()
    )));
}

#[test]
fn get_update_activate_deactivate_delete() {
    let env = Env::new();
    let (entity, key) = env.create("svc", &["--scopes", "read"]);
    let id = entity["id"].as_str().unwrap();
    assert_eq!(env.json(&["get", id]), entity);

    let v = env.json(&[
        "update",
        id,
        "--name",
        "svc-renamed",
        "--description",
        "now with write",
        "--scopes",
        "read,write",
        "--expires-at",
        "2098-06-01T12:00:00+02:00",
    ]);
    assert_eq!(v["name"], "svc-renamed");
    assert_eq!(v["description"], "now with write");
    assert_eq!(v["scopes"], serde_json::json!(["read", "write"]));
    assert_eq!(v["expires_at"], "2098-06-01T10:00:00Z");
    assert_eq!(env.json(&["get", id]), v, "update is persisted");

    let v = env.json(&["update", id, "--clear-expires", "--scopes", ""]);
    assert_eq!(v["expires_at"], Value::Null);
    assert_eq!(v["scopes"], serde_json::json!([]));

    assert_eq!(env.json(&["deactivate", id])["is_active"], false);
    assert_eq!(
        env.json(&["deactivate", id])["is_active"],
        false,
        "idempotent"
    );
    let (_, err) = env.fails(&["verify", &key], 1);
    assert_eq!(err.trim(), "keygate: API key inactive");
    assert_eq!(env.json(&["activate", id])["is_active"], true);
    assert_eq!(env.json(&["update", id, "--inactive"])["is_active"], false);
    assert_eq!(env.json(&["update", id, "--active"])["is_active"], true);
    env.json(&["verify", &key]);

    let human = env.ok(&["get", id]);
    assert!(
        human.contains("svc-renamed") && human.contains("active"),
        "{human}"
    );

    let deleted = env.json(&["delete", id]);
    assert_eq!(deleted["id"], id);
    let (_, err) = env.fails(&["get", id], 1);
    assert_eq!(err, "keygate: API key not found\n");
    let (_, err) = env.fails(&["delete", id], 1);
    assert_eq!(err, "keygate: API key not found\n");
    // verify words it as HTTP does (401 `API key invalid`).
    let (_, err) = env.fails(&["verify", &key], 1);
    assert!(
        err.starts_with("keygate: API key invalid (no key with key id "),
        "{err}"
    );
}

#[test]
fn list_pages_newest_first_in_json_and_as_a_table() {
    let env = Env::new();
    for name in ["first", "second", "third"] {
        env.create(name, &["--scopes", "read"]);
    }
    assert_eq!(names(&env.json(&["list"])), ["third", "second", "first"]);
    assert_eq!(
        names(&env.json(&["list", "--limit", "1", "--offset", "1"])),
        ["second"]
    );
    assert_eq!(
        names(&env.json(&["list", "--offset", "5"])),
        Vec::<String>::new()
    );

    let table = env.ok(&["list"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    let header = lines[0];
    assert!(header.starts_with("ID"), "{table}");
    for col in [
        "KEY ID",
        "NAME",
        "OWNER",
        "STATUS",
        "SCOPES",
        "CREATED",
        "LAST USED",
        "EXPIRES",
    ] {
        assert!(header.contains(col), "{col}: {table}");
    }
    // Aligned: every row's name starts in the NAME column.
    let name_col = header.find("NAME").unwrap();
    for (line, name) in lines[1..].iter().zip(["third", "second", "first"]) {
        assert_eq!(&line[name_col..name_col + name.len()], name, "{table}");
    }
    assert!(
        !table.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    assert_eq!(env.ok(&["list", "--offset", "9"]), "no API keys\n");
}

#[test]
fn verify_checks_scopes_and_reads_the_key_from_stdin() {
    let env = Env::new();
    let (entity, key) = env.create("reader", &["--scopes", "read"]);
    let v = env.json(&["verify", &key, "--scopes", "read"]);
    assert_eq!(v["id"], entity["id"]);
    assert!(v["last_used_at"].is_string(), "use recorded: {v}");

    let human = env.ok(&["verify", &key]);
    assert!(human.starts_with("API key valid."), "{human}");

    let (out, err) = env.fails(&["verify", &key, "--scopes", "read,write"], 1);
    assert!(out.is_empty());
    assert_eq!(
        err,
        "keygate: API key missing required scopes 'read', 'write'\n"
    );

    let out = env
        .cmd()
        .args(["--json", "verify", "-", "--scopes", "read"])
        .write_stdin(format!("{key}\n"))
        .output()
        .unwrap();
    support::assert_success(&out, "verify -");

    let (_, err) = env.fails(&["verify", "not-a-key"], 1);
    assert_eq!(
        err,
        "keygate: API key invalid (not a key of the form ak_v1-<key id>-<secret>)\n"
    );
    let mut wrong = key.clone();
    wrong.pop();
    wrong.push(if key.ends_with('a') { 'b' } else { 'a' });
    let (_, err) = env.fails(&["verify", &wrong], 1);
    assert!(
        err.starts_with("keygate: API key invalid (key id "),
        "{err}"
    );
    assert!(
        !err.contains(&wrong[wrong.len() - 8..]),
        "no part of the secret: {err}"
    );
    let (_, err) = env.fails(&["verify", "  "], 1);
    assert_eq!(err, "keygate: API key missing\n");

    // The use is persisted: a later process sees it.
    let got = env.json(&["get", entity["id"].as_str().unwrap()]);
    assert!(got["last_used_at"].is_string(), "{got}");
}

#[test]
fn a_key_created_with_another_pepper_does_not_verify_and_says_why() {
    let env = Env::new();
    let (entity, key) = env.create("k", &[]);
    let out = env
        .cmd()
        .env("API_KEY_PEPPER", "another-pepper")
        .args(["verify", &key])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    let key_id = entity["key_id"].as_str().unwrap();
    assert!(
        err.starts_with(&format!(
            "keygate: API key invalid (key id {key_id} exists, but the secret does not match"
        )),
        "{err}"
    );
    assert!(
        err.contains("API_KEY_PEPPER may differ from the one the key was created with"),
        "{err}"
    );
    // Nothing secret: no part of the secret, the pepper or the hash.
    let secret = key.rsplit('-').next().unwrap();
    for hidden in [
        &secret[..4],
        &secret[secret.len() - 4..],
        "another-pepper",
        support::PEPPER,
        "$argon2",
    ] {
        assert!(!err.contains(hidden), "{hidden}: {err}");
    }

    // Checked with the placeholder instead: the hint says so.
    let out = env
        .cmd()
        .env_remove("API_KEY_PEPPER")
        .args(["verify", &key])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("API_KEY_PEPPER is not set here, so the placeholder pepper was used"),
        "{err}"
    );
}

#[test]
fn domain_errors_exit_1_with_one_line() {
    let env = Env::new();
    let cases: &[(&[&str], &str)] = &[
        (
            &["get", "0123456789abcdef0123456789abcdef"],
            "API key not found",
        ),
        (
            &["create", "--name", "x", "--scopes", "Bad Scope"],
            "scopes",
        ),
        (&["create", "--name", ""], "name"),
        (
            &[
                "create",
                "--name",
                "x",
                "--expires-at",
                "2001-01-01T00:00:00Z",
            ],
            "expires_at: must be in the future",
        ),
        (&["update", "nope", "--name", "y"], "API key not found"),
        (&["activate", "nope"], "API key not found"),
        (&["deactivate", "nope"], "API key not found"),
        (
            &["search", "--scopes-contain-all", "NOT VALID"],
            "scopes_contain_all",
        ),
    ];
    for (args, reason) in cases {
        for json in [false, true] {
            let mut all: Vec<&str> = if json { vec!["--json"] } else { vec![] };
            all.extend_from_slice(args);
            let (out, err) = env.fails(&all, 1);
            assert!(out.is_empty(), "{args:?}: stdout {out}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(
                err.starts_with("keygate: ") && err.contains(reason),
                "{args:?}: {err}"
            );
        }
    }
}

#[test]
fn unreachable_database_is_a_one_line_error() {
    let env = Env::new();
    let out = env
        .cmd()
        .env("DATABASE_URL", "sqlite:///nonexistent-dir/for/sure/keys.db")
        .args(["list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot open database"), "{err}");

    let out = env
        .cmd()
        .env("DATABASE_URL", "redis://localhost")
        .args(["list"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    let cases: &[&[&str]] = &[
        &[],
        &["frobnicate"],
        &["create"],
        &["create", "--name", "x", "--bogus"],
        &["create", "--name", "x", "--expires-at", "tomorrow"],
        &["get"],
        &["update", "some-id"],
        &["update", "some-id", "--active", "--inactive"],
        &[
            "update",
            "some-id",
            "--clear-expires",
            "--expires-at",
            "2099-01-01T00:00:00Z",
        ],
        &["list", "--limit", "-1"],
        &["list", "--limit", "0"],
        &["search", "--limit", "0"],
        &["search", "--active", "--inactive"],
        &["search", "--never-used", "--used"],
        &["search", "--order-by", "key_hash"],
        &["search", "--asc", "--desc"],
        &["count", "--created-after", "yesterday"],
        &["serve", "--bind", "not-an-address"],
    ];
    for args in cases {
        let (out, err) = env.fails(args, 2);
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(!err.is_empty(), "{args:?}");
    }
    assert!(
        !env.db_path().exists(),
        "usage errors never touch the database"
    );
}

#[test]
fn help_explains_every_command_and_flag() {
    let help = support::bare_cmd().arg("--help").output().unwrap();
    support::assert_success(&help, "--help");
    let text = String::from_utf8(help.stdout).unwrap();
    for word in [
        "create",
        "list",
        "get",
        "update",
        "delete",
        "activate",
        "deactivate",
        "rotate",
        "events",
        "verify",
        "search",
        "count",
        "generate",
        "pepper",
        "migrate",
        "serve",
        "--database-url",
        "DATABASE_URL",
        "--pepper",
        "API_KEY_PEPPER",
        "--json",
        "--actor",
        "KEYGATE_ACTOR",
        "keygate:admin",
        "keygate get ak_v1-",
        "keygate get -",
        "keygate rotate ID --grace 1h",
        "keygate events ID",
    ] {
        assert!(text.contains(word), "{word} missing from --help");
    }
    let search = support::bare_cmd()
        .args(["search", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8(search.stdout).unwrap();
    for flag in [
        "--name-contains",
        "--name-exact",
        "--owner-id",
        "--key-id",
        "--scopes-contain-all",
        "--scopes-contain-any",
        "--expires-before",
        "--expires-after",
        "--created-before",
        "--created-after",
        "--last-used-before",
        "--last-used-after",
        "--active",
        "--inactive",
        "--never-used",
        "--used",
        "--order-by",
        "--asc",
        "--desc",
        "--limit",
        "--offset",
    ] {
        assert!(text.contains(flag), "{flag} missing from search --help");
    }
}

#[test]
fn help_never_shows_secret_environment_values() {
    let out = support::bare_cmd()
        .env("API_KEY_PEPPER", "super-secret-pepper")
        .env("DATABASE_URL", "postgres://u:db-password@h/d")
        .args(["create", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("super-secret-pepper") && !text.contains("db-password"));
}

#[test]
fn migrate_is_idempotent() {
    let env = Env::new();
    assert_eq!(env.ok(&["migrate"]), "database schema is up to date\n");
    assert!(env.db_path().exists());
    assert_eq!(env.json(&["migrate"]), serde_json::json!({"status": "ok"}));
    let in_memory = env
        .cmd()
        .env("DATABASE_URL", "sqlite::memory:")
        .args(["--json", "count"])
        .output()
        .unwrap();
    support::assert_success(&in_memory, "count on sqlite::memory:");
    assert_eq!(
        String::from_utf8_lossy(&in_memory.stdout),
        "{\"total\":0}\n"
    );
}

#[test]
fn colour_only_when_asked_for_and_never_with_no_color() {
    let env = Env::new();
    env.create("c", &[]);
    let forced = env
        .cmd()
        .env_remove("NO_COLOR")
        .env("CLICOLOR_FORCE", "1")
        .arg("list")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&forced.stdout).contains("\x1b["));
    let plain = env
        .cmd()
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1")
        .arg("list")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&plain.stdout).contains('\x1b'));
    let json = env
        .cmd()
        .env_remove("NO_COLOR")
        .env("CLICOLOR_FORCE", "1")
        .args(["--json", "list"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&json.stdout).contains('\x1b'),
        "JSON is never coloured"
    );
}
