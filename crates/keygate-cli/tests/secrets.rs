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
    assert!(
        err.starts_with("keygate: API key invalid (no key with key id "),
        "{err}"
    );
}

/// SPEC §7: one line on stderr when a key is written or checked with the
/// placeholder pepper; other commands stay quiet.
#[test]
fn the_placeholder_pepper_is_named_when_a_key_is_written_or_checked() {
    let env = Env::new();
    let placeholder = |args: &[&str]| {
        let out = env
            .cmd()
            .env_remove("API_KEY_PEPPER")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (stdout, err) = placeholder(&["--json", "create", "--name", "dev"]);
    assert_eq!(
        err,
        "keygate: warning: API_KEY_PEPPER is not set: this key is hashed with the public placeholder \
         pepper and will not verify once a real one is set (make one with `keygate pepper`)\n"
    );
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let (key, id) = (
        v["api_key"].as_str().unwrap(),
        v["entity"]["id"].as_str().unwrap(),
    );

    let (_, err) = placeholder(&["verify", key]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("keygate: warning: API_KEY_PEPPER is not set: the key is checked with the public placeholder pepper"), "{err}");
    let (_, err) = placeholder(&["rotate", id]);
    assert!(
        err.contains("hashed with the public placeholder pepper"),
        "{err}"
    );
    for quiet in [&["list"][..], &["get", id], &["count"]] {
        let (_, err) = placeholder(quiet);
        assert!(err.is_empty(), "{quiet:?}: {err}");
    }
    // With a pepper, nothing is said.
    let out = env
        .cmd()
        .args(["create", "--name", "prod"])
        .output()
        .unwrap();
    support::assert_success(&out, "create with a pepper");
}
