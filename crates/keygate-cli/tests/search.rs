//! `search` and `count`: every filter flag, ordering and paging.

mod support;

use support::{names, Env};

/// Four keys: `alpha` (read, used), `beta` (read+write, inactive),
/// `gamma` (write, expires 2090), `100%_delta` (no scope, expires 2095).
fn fixture() -> Env {
    let env = Env::new();
    let (_, alpha) = env.create("alpha", &["--scopes", "read"]);
    env.create("beta", &["--scopes", "read,write", "--inactive"]);
    env.create(
        "gamma",
        &["--scopes", "write", "--expires-at", "2090-01-01T00:00:00Z"],
    );
    env.create("100%_delta", &["--expires-at", "2095-01-01T00:00:00Z"]);
    env.ok(&["verify", &alpha]);
    env
}

fn count(env: &Env, args: &[&str]) -> u64 {
    let mut all = vec!["count"];
    all.extend_from_slice(args);
    env.json(&all)["total"].as_u64().expect("total")
}

fn search(env: &Env, args: &[&str]) -> Vec<String> {
    let mut all = vec!["search"];
    all.extend_from_slice(args);
    names(&env.json(&all)["items"])
}

#[test]
fn every_filter_flag_narrows_count_and_search_alike() {
    let env = fixture();
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &["100%_delta", "gamma", "beta", "alpha"]),
        (&["--active"], &["100%_delta", "gamma", "alpha"]),
        (&["--inactive"], &["beta"]),
        (&["--used"], &["alpha"]),
        (&["--never-used"], &["100%_delta", "gamma", "beta"]),
        (&["--name-contains", "ALP"], &["alpha"]),
        (&["--name-contains", "%_"], &["100%_delta"]),
        (&["--name-contains", "_"], &["100%_delta"]),
        (&["--name-exact", "beta"], &["beta"]),
        (&["--name-exact", "bet"], &[]),
        (&["--scopes-contain-all", "read,write"], &["beta"]),
        (&["--scopes-contain-all", "read"], &["beta", "alpha"]),
        (
            &["--scopes-contain-any", "read,write"],
            &["gamma", "beta", "alpha"],
        ),
        (&["--expires-before", "2091-01-01T00:00:00Z"], &["gamma"]),
        (
            &["--expires-after", "2091-01-01T00:00:00Z"],
            &["100%_delta"],
        ),
        (&["--created-before", "2000-01-01T00:00:00Z"], &[]),
        (
            &["--created-after", "2000-01-01T00:00:00Z"],
            &["100%_delta", "gamma", "beta", "alpha"],
        ),
        (&["--last-used-after", "2000-01-01T00:00:00Z"], &["alpha"]),
        (&["--last-used-before", "2000-01-01T00:00:00Z"], &[]),
        (
            &[
                "--active",
                "--scopes-contain-any",
                "read,write",
                "--never-used",
            ],
            &["gamma"],
        ),
    ];
    for (args, expected) in cases {
        assert_eq!(search(&env, args), *expected, "search {args:?}");
        assert_eq!(count(&env, args), expected.len() as u64, "count {args:?}");
    }
}

#[test]
fn ordering_and_paging() {
    let env = fixture();
    assert_eq!(
        search(&env, &["--order-by", "name", "--asc"]),
        ["100%_delta", "alpha", "beta", "gamma"]
    );
    assert_eq!(
        search(&env, &["--order-by", "name", "--desc"]),
        ["gamma", "beta", "alpha", "100%_delta"]
    );
    assert_eq!(
        search(&env, &["--order-by", "created_at", "--asc"]),
        ["alpha", "beta", "gamma", "100%_delta"]
    );
    // No expiry sorts as the smallest value; ties are broken by id.
    let by_expiry = search(&env, &["--order-by", "expires_at", "--asc"]);
    let mut never: Vec<_> = by_expiry[..2].to_vec();
    never.sort();
    assert_eq!(never, ["alpha", "beta"]);
    assert_eq!(by_expiry[2..], ["gamma", "100%_delta"]);
    assert_eq!(
        search(&env, &["--order-by", "is_active", "--asc", "--limit", "1"]),
        ["beta"]
    );
    let page = env.json(&[
        "search",
        "--scopes-contain-any",
        "read,write",
        "--order-by",
        "name",
        "--asc",
        "--limit",
        "2",
        "--offset",
        "1",
    ]);
    assert_eq!(names(&page["items"]), ["beta", "gamma"]);
    assert_eq!(page["total"], 3);
    assert_eq!(page["limit"], 2);
    assert_eq!(page["offset"], 1);
    let mut keys: Vec<_> = page.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["items", "limit", "offset", "total"]);
}

#[test]
fn human_output_of_search_and_count() {
    let env = fixture();
    let table = env.ok(&[
        "search",
        "--active",
        "--order-by",
        "name",
        "--asc",
        "--limit",
        "2",
    ]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("ID"), "{table}");
    assert!(
        lines[1].contains("100%_delta") && lines[2].contains("alpha"),
        "{table}"
    );
    assert_eq!(lines.last().copied(), Some("1-2 of 3 matching"), "{table}");
    assert_eq!(env.ok(&["count", "--inactive"]), "1\n");
    let none = env.ok(&["search", "--name-exact", "zzz"]);
    assert_eq!(none, "no API keys match\n");
    let past = env.ok(&["search", "--offset", "10"]);
    assert_eq!(past, "no API keys on this page (4 matching)\n");
}
