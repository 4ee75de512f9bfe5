//! Usage limits from the command line (SPEC §12): `--rate-limit`,
//! `--credits`, `--refill` on create and update, `keygate credits`, the
//! filters, and how get/list show them. Bad values are usage errors (exit
//! 2) naming the flag; what only the service can judge comes back as its
//! field errors (exit 1).

mod support;

use serde_json::{json, Value};
use support::Env;

/// The start of today, UTC, as the JSON prints it.
fn today() -> String {
    format!("{}T00:00:00Z", chrono::Utc::now().format("%Y-%m-%d"))
}

#[test]
fn limits_round_trip_through_create_get_update_and_credits() {
    let env = Env::new();
    let (created, key) = env.create(
        "metered",
        &[
            "--rate-limit",
            "burst=10/1s",
            "--rate-limit",
            "hourly=1000/1h",
            "--credits",
            "1000",
            "--refill",
            "1000/daily",
        ],
    );
    let id = created["id"].as_str().unwrap().to_owned();
    let key_id = created["key_id"].as_str().unwrap().to_owned();
    let windows = json!([
        {"name": "burst", "limit": 10, "window_ms": 1000},
        {"name": "hourly", "limit": 1000, "window_ms": 3_600_000},
    ]);
    assert_eq!(created["rate_limits"], windows, "{created}");
    assert_eq!(created["credits"]["remaining"], 1000, "{created}");
    assert_eq!(created["credits"]["refill_amount"], 1000);
    assert_eq!(created["credits"]["refill_interval"], "daily");
    // The current day counts as refilled: the first refill is at midnight.
    let last_refill = created["credits"]["last_refill_at"].as_str().unwrap();
    assert!(last_refill.starts_with(&today()[..10]), "{created}");

    // get: JSON is the entity as stored; the view for people shows both.
    let got = env.json(&["get", &id]);
    assert_eq!(got["rate_limits"], windows);
    assert_eq!(got["credits"], created["credits"]);
    let view = env.ok(&["get", &id]);
    assert!(
        view.lines()
            .any(|l| l.starts_with("rate_limits") && l.ends_with("burst 10/1s, hourly 1000/1h")),
        "{view}"
    );
    assert!(
        view.lines().any(|l| l.starts_with("credits")
            && l.contains("1000 remaining, refilled to 1000 daily (next ")),
        "{view}"
    );
    assert!(!view.contains(&key), "get never prints the key");

    // list: one compact LIMITS column.
    env.create("plain", &[]);
    let table = env.ok(&["list"]);
    let header = table.lines().next().unwrap();
    assert!(header.ends_with("LIMITS"), "{table}");
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.contains(&format!("  {name}  ")))
            .unwrap_or_else(|| panic!("{name}: {table}"))
            .to_owned()
    };
    assert!(
        row("metered").ends_with("10/1s, 1000/1h, 1000 cr (daily)"),
        "{table}"
    );
    assert!(row("plain").ends_with("  -"), "{table}");
    let listed = env.json(&["list"]);
    assert_eq!(listed[1]["rate_limits"], windows);
    assert_eq!(listed[0]["credits"], Value::Null);

    // credits: add, take away (never below 0), set (the refill stays); by
    // entity id or key id.
    assert_eq!(
        env.json(&["credits", &id, "--add", "500"])["credits"]["remaining"],
        1500
    );
    let drained = env.json(&["credits", &key_id, "--add", "-2000"]);
    assert_eq!(drained["credits"]["remaining"], 0);
    assert_eq!(drained["id"], id.as_str());
    let out = env.ok(&["credits", &id, "--set", "42"]);
    assert!(out.starts_with("Credits updated: 42 remaining.\n"), "{out}");
    assert!(
        out.contains("42 remaining, refilled to 1000 daily"),
        "{out}"
    );
    assert!(!out.contains("ak_v1-"), "{out}");
    let set = env.json(&["get", &id]);
    assert_eq!(set["credits"]["remaining"], 42);
    assert_eq!(set["credits"]["refill_interval"], "daily");
    assert_eq!(
        set["rate_limits"], windows,
        "credits leave the windows alone"
    );

    // Each change is in the audit log as an update by the CLI actor.
    let events = env.json(&["events", &id]);
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 4, "{events}");
    for e in &items[1..] {
        assert_eq!(e["action"], "update", "{e}");
        assert_eq!(e["actor"], "cli", "{e}");
        assert!(e["changes"]["credits"].is_array(), "{e}");
    }
    assert_eq!(items[3]["changes"]["credits"][1]["remaining"], 42);

    // update replaces the windows, replaces the credits as a whole (no
    // --refill: none), and clears each.
    let updated = env.json(&["update", &id, "--rate-limit", "minute=100/60s"]);
    assert_eq!(
        updated["rate_limits"],
        json!([{"name": "minute", "limit": 100, "window_ms": 60_000}])
    );
    assert_eq!(updated["credits"]["remaining"], 42, "untouched");
    let updated = env.json(&["update", &id, "--credits", "7"]);
    assert_eq!(
        updated["credits"],
        json!({"remaining": 7, "refill_amount": null, "refill_interval": null, "last_refill_at": null})
    );
    let updated = env.json(&["update", &id, "--credits", "5", "--refill", "50/hourly"]);
    assert_eq!(updated["credits"]["refill_amount"], 50);
    assert_eq!(updated["credits"]["refill_interval"], "hourly");
    let cleared = env.json(&["update", &id, "--clear-rate-limits", "--clear-credits"]);
    assert_eq!(cleared["rate_limits"], Value::Null, "{cleared}");
    assert_eq!(cleared["credits"], Value::Null, "{cleared}");
    let view = env.ok(&["get", &id]);
    assert!(
        view.lines()
            .any(|l| l.starts_with("rate_limits") && l.ends_with("none")),
        "{view}"
    );
    assert!(
        view.lines()
            .any(|l| l.starts_with("credits") && l.ends_with("unlimited")),
        "{view}"
    );

    // A key without credits: nothing to add to (exit 1, nothing changed,
    // nothing recorded); --set gives it some, without refill.
    let before = env.json(&["events", &id])["total"].clone();
    let (out, err) = env.fails(&["credits", &id, "--add", "5"], 1);
    assert!(out.is_empty(), "{out}");
    assert!(
        err.starts_with("keygate: ") && err.contains("has no credits") && err.contains("--set"),
        "{err}"
    );
    assert_eq!(env.json(&["get", &id])["credits"], Value::Null);
    assert_eq!(env.json(&["events", &id])["total"], before);
    let given = env.json(&["credits", &id, "--set", "3"]);
    assert_eq!(
        given["credits"],
        json!({"remaining": 3, "refill_amount": null, "refill_interval": null, "last_refill_at": null})
    );

    let (_, err) = env.fails(
        &["credits", "0123456789abcdef0123456789abcdef", "--set", "1"],
        1,
    );
    assert_eq!(err, "keygate: API key not found\n");
}

#[test]
fn credits_are_taken_by_each_verification() {
    let env = Env::new();
    let (entity, key) = env.create("two-uses", &["--credits", "2"]);
    let id = entity["id"].as_str().unwrap();
    env.json(&["verify", &key]);
    env.json(&["verify", &key]);
    let (_, err) = env.fails(&["verify", &key], 1);
    assert_eq!(err, "keygate: API key usage exceeded\n");
    assert_eq!(env.json(&["get", id])["credits"]["remaining"], 0);
    env.json(&["credits", id, "--add", "1"]);
    env.json(&["verify", &key]);
    assert_eq!(env.json(&["get", id])["credits"]["remaining"], 0);
}

/// The `usage` row of `verify`'s view for people.
fn usage_row(view: &str) -> String {
    view.lines()
        .find(|l| l.starts_with("usage "))
        .unwrap_or_else(|| panic!("no usage row: {view}"))
        .to_owned()
}

#[test]
fn verify_takes_its_cost_all_or_nothing_and_shows_what_is_left() {
    let env = Env::new();
    let (entity, key) = env.create("five", &["--credits", "5"]);
    let id = entity["id"].as_str().unwrap();

    // Cost 3 of 5: valid, 2 left, in the view and in the JSON (as /verify).
    let view = env.ok(&["verify", &key, "--cost", "3"]);
    assert!(view.starts_with("API key valid (cost 3).\n"), "{view}");
    assert!(usage_row(&view).ends_with(" 2 credits remaining"), "{view}");
    assert!(
        view.lines()
            .any(|l| l.starts_with("credits") && l.ends_with(" 2 remaining")),
        "{view}"
    );

    // Cost 3 of 2: refused like any used-up key, and nothing is taken.
    let (out, err) = env.fails(&["verify", &key, "--cost", "3"], 1);
    assert!(out.is_empty(), "{out}");
    assert_eq!(err, "keygate: API key usage exceeded\n");
    assert_eq!(env.json(&["get", id])["credits"]["remaining"], 2);

    // Cost 0 takes nothing, however often.
    for _ in 0..3 {
        let v = env.json(&["verify", &key, "--cost", "0"]);
        assert_eq!(
            v["usage"],
            json!({"remaining": 2, "rate_limits": []}),
            "{v}"
        );
        assert_eq!(v["credits"]["remaining"], 2, "{v}");
    }
    let view = env.ok(&["verify", &key, "--cost", "0"]);
    assert!(
        view.starts_with("API key valid (cost 0: nothing taken).\n"),
        "{view}"
    );
    assert_eq!(env.json(&["get", id])["credits"]["remaining"], 2);

    // The whole rest: then cost 0 is refused too (no room for one more).
    let v = env.json(&["verify", &key, "--cost", "2"]);
    assert_eq!(v["usage"]["remaining"], 0, "{v}");
    let (_, err) = env.fails(&["verify", &key, "--cost", "0"], 1);
    assert_eq!(err, "keygate: API key usage exceeded\n");

    // The default is 1, as before.
    env.json(&["credits", id, "--set", "1"]);
    let view = env.ok(&["verify", &key]);
    assert!(view.starts_with("API key valid.\n"), "{view}");
    assert!(usage_row(&view).ends_with(" 0 credits remaining"), "{view}");
}

#[test]
fn verify_shows_each_rate_limit_window_after_the_check() {
    let env = Env::new();
    let (_, key) = env.create(
        "windows",
        &[
            "--rate-limit",
            "burst=10/1m",
            "--rate-limit",
            "hourly=1000/1h",
        ],
    );
    let v = env.json(&["verify", &key, "--cost", "4"]);
    let windows = v["usage"]["rate_limits"].as_array().unwrap();
    assert_eq!(windows.len(), 2, "{v}");
    assert_eq!(windows[0]["name"], "burst");
    assert_eq!(windows[0]["limit"], 10);
    assert_eq!(windows[0]["remaining"], 6);
    let reset = windows[0]["reset_ms"].as_u64().unwrap();
    assert!((1..=60_000).contains(&reset), "{v}");
    assert_eq!(windows[1]["name"], "hourly");
    assert_eq!(windows[1]["remaining"], 996);
    assert_eq!(v["usage"]["remaining"], Value::Null, "no credits: {v}");

    let view = env.ok(&["verify", &key, "--cost", "4"]);
    let row = usage_row(&view);
    assert!(
        row.ends_with(
            " burst 6 of 10 remaining, resets in 1m; hourly 996 of 1000 remaining, resets in 1h"
        ),
        "{view}"
    );
    let view = env.ok(&["verify", &key, "--cost", "0"]);
    assert!(
        usage_row(&view).contains(" burst 10 of 10 remaining, "),
        "{view}"
    );

    // More than a window holds: refused as a rate limit (exit 1).
    let (out, err) = env.fails(&["verify", &key, "--cost", "11"], 1);
    assert!(out.is_empty(), "{out}");
    assert_eq!(err, "keygate: API key rate limit exceeded\n");

    // A key without limits has no usage row; its JSON says so as /verify does.
    let (_, free) = env.create("free", &[]);
    let view = env.ok(&["verify", &free, "--cost", "1000"]);
    assert!(!view.contains("usage"), "{view}");
    let v = env.json(&["verify", &free]);
    assert_eq!(v["usage"], json!({"remaining": null, "rate_limits": []}));
}

#[test]
fn verify_cost_out_of_range_is_a_usage_error_naming_the_range() {
    let env = Env::new();
    let (entity, key) = env.create("five", &["--credits", "5"]);
    for cost in ["1001", "-1", "lots"] {
        let (out, err) = env.fails(&["verify", &key, "--cost", cost], 2);
        assert!(out.is_empty(), "{cost}: {out}");
        assert!(
            err.contains("--cost") && err.contains("must be 0 to 1000"),
            "{cost}: {err}"
        );
    }
    let id = entity["id"].as_str().unwrap();
    assert_eq!(env.json(&["get", id])["credits"]["remaining"], 5);
    assert_eq!(env.json(&["get", id])["last_used_at"], Value::Null);
}

#[test]
fn search_and_count_filter_on_limits() {
    let env = Env::new();
    env.create("unlimited", &[]);
    env.create("rich", &["--credits", "1000"]);
    env.create("poor", &["--credits", "5", "--rate-limit", "s=1/1s"]);
    env.create("limited", &["--rate-limit", "m=60/1m"]);
    let count = |filter: &[&str]| {
        let mut args = vec!["count"];
        args.extend_from_slice(filter);
        env.json(&args)["total"].as_u64().unwrap()
    };
    assert_eq!(count(&["--has-credits"]), 2);
    assert_eq!(count(&["--no-credits"]), 2);
    assert_eq!(count(&["--credits-below", "6"]), 1);
    assert_eq!(count(&["--credits-below", "5"]), 0);
    assert_eq!(count(&["--credits-below", "1001"]), 2);
    assert_eq!(count(&["--has-rate-limits"]), 2);
    assert_eq!(count(&["--no-rate-limits"]), 2);
    assert_eq!(count(&["--has-credits", "--has-rate-limits"]), 1);
    let page = env.json(&["search", "--no-credits", "--no-rate-limits"]);
    assert_eq!(support::names(&page["items"]), ["unlimited"]);
    let page = env.json(&["search", "--credits-below", "100", "--order-by", "name"]);
    assert_eq!(support::names(&page["items"]), ["poor"]);
    let (_, err) = env.fails(&["count", "--has-credits", "--no-credits"], 2);
    assert!(err.contains("--no-credits"), "{err}");
}

#[test]
fn bad_values_are_usage_errors_that_name_the_flag() {
    let env = Env::new();
    let id = env.create_id("target", &[]);
    for (args, flag, says) in [
        (
            vec!["create", "--name", "x", "--rate-limit", "burst"],
            "--rate-limit",
            "NAME=LIMIT/WINDOW",
        ),
        (
            vec!["create", "--name", "x", "--rate-limit", "b=10/2d"],
            "--rate-limit",
            "1s to 1d",
        ),
        (
            vec!["create", "--name", "x", "--rate-limit", "b=10/500ms"],
            "--rate-limit",
            "window \"500ms\" must be 1s to 1d",
        ),
        (
            vec!["create", "--name", "x", "--rate-limit", "b=10/1.5s"],
            "--rate-limit",
            "not a duration",
        ),
        (
            vec!["create", "--name", "x", "--rate-limit", "b=0/1s"],
            "--rate-limit",
            "limit 0",
        ),
        (
            vec!["create", "--name", "x", "--rate-limit", "Burst=1/1s"],
            "--rate-limit",
            "lowercase letter",
        ),
        (
            vec!["create", "--name", "x", "--credits", "lots"],
            "--credits",
            "lots",
        ),
        (
            vec!["create", "--name", "x", "--credits", "-5"],
            "--credits",
            "-5",
        ),
        (
            vec!["create", "--name", "x", "--credits", "1000000000000001"],
            "--credits",
            "1000000000000001",
        ),
        (
            vec![
                "create",
                "--name",
                "x",
                "--credits",
                "5",
                "--refill",
                "5/weekly",
            ],
            "--refill",
            "hourly, daily, monthly",
        ),
        (
            vec![
                "create",
                "--name",
                "x",
                "--credits",
                "5",
                "--refill",
                "daily",
            ],
            "--refill",
            "N/hourly",
        ),
        (
            vec!["create", "--name", "x", "--refill", "5/daily"],
            "--credits",
            "required",
        ),
        (
            vec!["update", &id, "--refill", "5/daily"],
            "--credits",
            "required",
        ),
        (
            vec!["update", &id, "--credits", "5", "--clear-credits"],
            "--clear-credits",
            "cannot be used with",
        ),
        (
            vec![
                "update",
                &id,
                "--rate-limit",
                "a=1/1s",
                "--clear-rate-limits",
            ],
            "--clear-rate-limits",
            "cannot be used with",
        ),
        (vec!["credits", &id], "--add", "required"),
        (
            vec!["credits", &id, "--add", "1", "--set", "1"],
            "--set",
            "cannot be used with",
        ),
        (vec!["credits", &id, "--set", "-1"], "--set", "-1"),
        (vec!["credits", &id, "--add", "1.5"], "--add", "1.5"),
        (
            vec!["count", "--credits-below", "x"],
            "--credits-below",
            "x",
        ),
    ] {
        let (out, err) = env.fails(&args, 2);
        assert!(out.is_empty(), "{args:?}: {out}");
        assert!(err.contains(flag), "{args:?}: should name {flag}: {err}");
        assert!(err.contains(says), "{args:?}: should say {says:?}: {err}");
    }
    // Nothing was created or changed by any of them.
    assert_eq!(env.json(&["count"])["total"], 1);
    assert_eq!(env.json(&["events", &id])["total"], 1);
}

#[test]
fn what_only_the_service_can_judge_comes_back_as_field_errors() {
    let env = Env::new();
    let (_, err) = env.fails(
        &[
            "create",
            "--name",
            "dup",
            "--rate-limit",
            "a=1/1s",
            "--rate-limit",
            "a=2/1m",
        ],
        1,
    );
    assert!(
        err.starts_with("keygate: validation failed: rate_limits[1].name: duplicate window name"),
        "{err}"
    );
    let mut nine = vec!["create", "--name", "nine"];
    let windows: Vec<String> = (0..9).map(|i| format!("w{i}=1/1s")).collect();
    for w in &windows {
        nine.extend(["--rate-limit", w.as_str()]);
    }
    let (_, err) = env.fails(&nine, 1);
    assert!(
        err.contains("rate_limits: must hold 1 to 8 windows"),
        "{err}"
    );
    assert_eq!(env.json(&["count"])["total"], 0, "nothing created");
}
