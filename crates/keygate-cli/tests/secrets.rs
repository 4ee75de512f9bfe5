//! Plaintext keys and hashes: shown once, at creation, never again.
//! `generate` and `pepper` work without any database.

mod support;

use support::{bare_cmd, Env};

#[test]
fn the_plaintext_key_appears_exactly_once_across_every_command() {
    let env = Env::new();
    let mut transcript = String::new();
    let mut run = |args: &[&str], stdin: Option<&str>| {
        let mut cmd = env.cmd();
        cmd.args(args);
        if let Some(input) = stdin {
            cmd.write_stdin(input.to_owned());
        }
        let out = cmd.output().unwrap();
        transcript.push_str(&String::from_utf8_lossy(&out.stdout));
        transcript.push_str(&String::from_utf8_lossy(&out.stderr));
        out
    };

    let created = run(&["create", "--name", "once", "--scopes", "read"], None);
    let text = String::from_utf8(created.stdout).unwrap();
    let key = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("ak_v1-"))
        .expect("key printed by create")
        .to_owned();
    let secret = key.rsplit('-').next().unwrap().to_owned();
    let id_line = text.lines().find(|l| l.starts_with("id ")).unwrap();
    let id = id_line.split_whitespace().nth(1).unwrap().to_owned();
    let key_id = key.split('-').nth(1).unwrap().to_owned();

    for json in [false, true] {
        let steps: [(&[&str], Option<&str>); 14] = [
            (&["list"], None),
            (&["get", &id], None),
            (&["get", "-"], Some(&key)),
            (&["get", "--key-id", &key_id], None),
            (&["events", &id], None),
            (&["search", "--scopes-contain-all", "read"], None),
            (&["count"], None),
            (&["update", &id, "--description", "still secret"], None),
            (&["verify", "-", "--scopes", "read"], Some(&key)),
            (&["verify", "-", "--scopes", "write"], Some(&key)),
            (&["deactivate", &id], None),
            (&["verify", "-"], Some(&key)),
            (&["activate", &id], None),
            (&["migrate"], None),
        ];
        for (args, stdin) in steps {
            let prefix: &[&str] = if json { &["--json"] } else { &[] };
            run(&[prefix, args].concat(), stdin);
        }
    }
    run(&["--json", "delete", &id], None);
    run(&["get", &id], None);
    run(&["events", &id], None);
    run(&["--json", "events"], None);

    assert_eq!(transcript.matches(&key).count(), 1, "{transcript}");
    assert_eq!(transcript.matches(&secret).count(), 1);
    // Not even the first or last characters of the secret, nor any hash.
    for leak in [
        "$argon2",
        "$2b$",
        "$keygate-hmac",
        "key_hash",
        support::PEPPER,
    ] {
        assert!(!transcript.contains(leak), "{leak} leaked: {transcript}");
    }
    assert!(transcript.contains("API key missing required scopes 'write'"));
    assert!(transcript.contains("API key inactive"));
}

#[test]
fn generate_needs_no_database_and_prints_a_fresh_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("must-not-exist.db");
    let run = |args: &[&str]| {
        let out = bare_cmd()
            .env("DATABASE_URL", format!("sqlite://{}", db.display()))
            .args(args)
            .output()
            .unwrap();
        support::assert_success(&out, args);
        String::from_utf8(out.stdout).unwrap()
    };
    let a = run(&["generate"]);
    let b = run(&["generate"]);
    assert_ne!(a, b);
    let (var, key) = a.trim_end().split_once('=').unwrap();
    assert_eq!(var, "API_KEY_DEFAULT");
    let parts: Vec<&str> = key.split('-').collect();
    assert_eq!(parts.len(), 3, "{key}");
    assert_eq!(parts[0], "ak_v1");
    assert!(parts[1].len() == 16 && parts[1].bytes().all(|c| c.is_ascii_hexdigit()));
    assert!(parts[2].len() == 64 && parts[2].bytes().all(|c| c.is_ascii_alphanumeric()));

    let named = run(&["generate", "--var", "API_KEY_CI"]);
    assert!(named.starts_with("API_KEY_CI=ak_v1-"), "{named}");
    let v: serde_json::Value = serde_json::from_str(&run(&["--json", "generate"])).unwrap();
    assert_eq!(v["name"], "API_KEY_DEFAULT");
    assert!(v["api_key"].as_str().unwrap().starts_with("ak_v1-"));
    assert!(!db.exists(), "generate touched the database");
}

#[test]
fn pepper_needs_no_database_and_is_random() {
    let out = bare_cmd()
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .arg("pepper")
        .output()
        .unwrap();
    support::assert_success(&out, "pepper");
    let text = String::from_utf8(out.stdout).unwrap();
    let value = text
        .trim_end()
        .strip_prefix("API_KEY_PEPPER=")
        .expect(&text);
    assert_eq!(value.len(), 64);
    assert!(value.bytes().all(|c| c.is_ascii_alphanumeric()));

    let json = bare_cmd().args(["--json", "pepper"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let other = v["pepper"].as_str().unwrap();
    assert_eq!(other.len(), 64);
    assert_ne!(other, value);
}

#[test]
fn a_generated_key_is_not_known_to_the_database() {
    let env = Env::new();
    let line = env.ok(&["generate"]);
    let key = line.trim_end().split_once('=').unwrap().1;
    let (_, err) = env.fails(&["verify", key], 1);
    assert_eq!(err, "keygate: API key not found\n");
}

#[test]
fn the_placeholder_pepper_works_quietly_for_one_shot_commands() {
    let env = Env::new();
    let out = env
        .cmd()
        .env_remove("API_KEY_PEPPER")
        .args(["--json", "create", "--name", "dev"])
        .output()
        .unwrap();
    support::assert_success(&out, "create with placeholder pepper");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = v["api_key"].as_str().unwrap();
    let out = env
        .cmd()
        .env_remove("API_KEY_PEPPER")
        .env("RUST_LOG", "warn")
        .args(["verify", key])
        .output()
        .unwrap();
    assert!(out.status.success());
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains("placeholder pepper"),
        "warned through tracing: {logs}"
    );
    assert!(!logs.contains(key));
}
