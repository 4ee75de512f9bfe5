//! Filtering, ordering and paging, checked against the reference semantics
//! of `ApiKeyFilter::matches` / `compare` on a data set full of ties, NULLs
//! and SQL metacharacters.

use crate::{ApiKey, ApiKeyFilter, OrderBy};

use super::{all, at, key, put, Repo};

const INJECTION: &str = "'; DROP TABLE api_keys;--";

/// (name, active, created, expires, last used, scopes); times in seconds
/// from `base()`. Ties on every sortable column, NULLs on every nullable one.
#[allow(clippy::type_complexity)]
const ROWS: &[(Option<&str>, bool, i64, Option<i64>, Option<i64>, &[&str])] = &[
    (Some("alpha"), true, 0, None, None, &["read"]),
    (
        Some("Alpha"),
        false,
        10,
        Some(100),
        Some(5),
        &["read", "write"],
    ),
    (Some("beta"), true, 10, Some(50), None, &["write"]),
    (None, true, 20, None, Some(30), &[]),
    (Some("100% off"), false, 30, Some(100), Some(30), &["admin"]),
    (
        Some("under_score"),
        true,
        30,
        None,
        None,
        &["read", "api:admin"],
    ),
    (Some(r"back\slash"), true, 40, Some(10), Some(1), &["read"]),
    (Some(INJECTION), true, 50, None, None, &["write", "read"]),
    (Some("Zeta"), false, 60, Some(200), Some(60), &["rare"]),
    (Some("émile"), true, 60, None, None, &["read", "rare"]),
    (Some("alpha"), true, 70, Some(50), Some(90), &["api:admin"]),
    (Some("a b"), true, 70, None, Some(5), &["write"]),
    (
        Some("underscore"),
        true,
        80,
        Some(-10),
        None,
        &["read", "write", "rare"],
    ),
];

async fn load(repo: &Repo) -> Vec<ApiKey> {
    let mut keys = Vec::new();
    for (name, active, created, expires, used, scopes) in ROWS {
        let mut k = key(*name, scopes);
        k.is_active = *active;
        k.created_at = at(*created);
        k.expires_at = expires.map(at);
        k.last_used_at = used.map(at);
        put(repo, &k).await.unwrap();
        keys.push(k);
    }
    keys
}

/// What `filter` must return over `keys`, by the reference semantics.
fn reference(keys: &[ApiKey], filter: &ApiKeyFilter) -> Vec<ApiKey> {
    let mut hits: Vec<ApiKey> = keys.iter().filter(|k| filter.matches(k)).cloned().collect();
    hits.sort_by(|a, b| filter.compare(a, b));
    let limit = filter.limit.map_or(usize::MAX, |l| l as usize);
    hits.into_iter()
        .skip(filter.offset as usize)
        .take(limit)
        .collect()
}

async fn check(repo: &Repo, keys: &[ApiKey], filter: &ApiKeyFilter) {
    let expected = reference(keys, filter);
    let got = repo.find(filter).await.unwrap();
    let names = |v: &[ApiKey]| v.iter().map(|k| k.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&got), names(&expected), "find {filter:?}");
    assert_eq!(got, expected, "find {filter:?}");
    let unpaged = ApiKeyFilter {
        offset: 0,
        limit: None,
        ..filter.clone()
    };
    let total = keys.iter().filter(|k| filter.matches(k)).count() as u64;
    assert_eq!(
        repo.count(&unpaged).await.unwrap(),
        total,
        "count {filter:?}"
    );
    assert_eq!(
        repo.count(filter).await.unwrap(),
        total,
        "count ignores paging"
    );
}

fn f() -> ApiKeyFilter {
    ApiKeyFilter::default()
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Every filter field, alone and combined, against the reference semantics.
pub async fn every_filter_field_matches_reference(repo: Repo) {
    let keys = load(&repo).await;
    let mut filters = vec![f()];
    for active in [true, false] {
        filters.push(ApiKeyFilter {
            is_active: Some(active),
            ..f()
        });
    }
    // Bounds equal to stored values check strictness.
    for t in [-10, 5, 10, 30, 50, 60, 100, 200] {
        let t = Some(at(t));
        filters.extend([
            ApiKeyFilter {
                expires_before: t,
                ..f()
            },
            ApiKeyFilter {
                expires_after: t,
                ..f()
            },
            ApiKeyFilter {
                unexpired_at: t,
                ..f()
            },
            ApiKeyFilter {
                unexpired_at: t,
                is_active: Some(true),
                ..f()
            },
            ApiKeyFilter {
                created_before: t,
                ..f()
            },
            ApiKeyFilter {
                created_after: t,
                ..f()
            },
            ApiKeyFilter {
                last_used_before: t,
                ..f()
            },
            ApiKeyFilter {
                last_used_after: t,
                ..f()
            },
        ]);
    }
    filters.push(ApiKeyFilter {
        expires_after: Some(at(10)),
        expires_before: Some(at(100)),
        ..f()
    });
    for never in [true, false] {
        filters.push(ApiKeyFilter {
            never_used: Some(never),
            ..f()
        });
    }
    for scopes in [
        &["read"][..],
        &["read", "write"],
        &["read", "rare"],
        &["nothing"],
        &["api:admin"],
    ] {
        filters.push(ApiKeyFilter {
            scopes_contain_all: strings(scopes),
            ..f()
        });
    }
    for scopes in [
        &["rare", "admin"][..],
        &["nothing"],
        &["api:admin", "write"],
        &["read"],
    ] {
        filters.push(ApiKeyFilter {
            scopes_contain_any: strings(scopes),
            ..f()
        });
    }
    for needle in [
        "alp", "ALPHA", "%", "_", "\\", "'", INJECTION, "", "mile", "a b", "100%", "x",
    ] {
        filters.push(ApiKeyFilter {
            name_contains: Some(needle.into()),
            ..f()
        });
    }
    for exact in ["alpha", "Alpha", "ALPHA", "alpha ", INJECTION, ""] {
        filters.push(ApiKeyFilter {
            name_exact: Some(exact.into()),
            ..f()
        });
    }
    filters.push(ApiKeyFilter {
        is_active: Some(true),
        scopes_contain_all: strings(&["read"]),
        scopes_contain_any: strings(&["rare", "write", "api:admin"]),
        name_contains: Some("e".into()),
        created_after: Some(at(0)),
        never_used: Some(true),
        ..f()
    });
    filters.push(ApiKeyFilter {
        scopes_contain_any: strings(&["read", "write"]),
        order_by: OrderBy::Name,
        order_desc: false,
        offset: 2,
        limit: Some(3),
        ..f()
    });
    for filter in &filters {
        check(&repo, &keys, filter).await;
    }
    // The injection attempt was only ever data.
    assert_eq!(all(&repo).await.len(), ROWS.len());
}

/// `%`, `_` and `\\` match literally; case does not matter.
pub async fn name_contains_is_literal_and_case_insensitive(repo: Repo) {
    load(&repo).await;
    let names = |needle: &'static str| names_containing(&repo, needle);
    assert_eq!(names("%").await, ["100% off"]);
    assert_eq!(names("_").await, [INJECTION, "under_score"]);
    assert_eq!(names("r_s").await, ["under_score"]);
    assert_eq!(names("\\").await, [r"back\slash"]);
    assert_eq!(names("r_c").await, Vec::<String>::new());
    assert_eq!(names("%off").await, Vec::<String>::new());
    assert_eq!(names("ALPHA").await, ["Alpha", "alpha", "alpha"]);
    assert_eq!(names("zEtA").await, ["Zeta"]);
    assert_eq!(names("TABLE api_keys;--").await, [INJECTION]);
    assert_eq!(names(INJECTION).await, [INJECTION]);
    assert_eq!(all(&repo).await.len(), ROWS.len());
}

/// Every sort column, both directions, ties and NULLs included.
pub async fn ordering_every_column_both_directions(repo: Repo) {
    let keys = load(&repo).await;
    for order_by in OrderBy::ALL {
        for order_desc in [false, true] {
            let filter = ApiKeyFilter {
                order_by,
                order_desc,
                ..f()
            };
            check(&repo, &keys, &filter).await;
        }
    }
}

/// Pages put together give the whole result, once.
pub async fn paging_is_stable_and_complete(repo: Repo) {
    let keys = load(&repo).await;
    for order_by in OrderBy::ALL {
        for order_desc in [false, true] {
            let whole = reference(
                &keys,
                &ApiKeyFilter {
                    order_by,
                    order_desc,
                    ..f()
                },
            );
            let mut paged = Vec::new();
            for offset in (0..ROWS.len() as u64 + 3).step_by(4) {
                let page = ApiKeyFilter {
                    order_by,
                    order_desc,
                    offset,
                    limit: Some(4),
                    ..f()
                };
                paged.extend(repo.find(&page).await.unwrap());
            }
            assert_eq!(paged, whole, "{order_by:?} desc={order_desc}");
        }
    }
    let empty = ApiKeyFilter {
        offset: 1000,
        limit: Some(5),
        ..f()
    };
    assert!(repo.find(&empty).await.unwrap().is_empty());
    let zero = ApiKeyFilter {
        limit: Some(0),
        ..f()
    };
    assert!(repo.find(&zero).await.unwrap().is_empty());
    let tail = ApiKeyFilter { offset: 10, ..f() };
    assert_eq!(repo.find(&tail).await.unwrap().len(), ROWS.len() - 10);
}

/// 30 keys, every third with scope `rare`: a page of 5 is full, the count
/// is 10 (the Python library gets both wrong by filtering after paging).
pub async fn scope_filters_run_before_paging(repo: Repo) {
    let mut keys = Vec::new();
    for i in 0..30 {
        let scopes: &[&str] = if i % 3 == 0 {
            &["common", "rare"]
        } else {
            &["common"]
        };
        let mut k = key(Some(&format!("key-{i:02}")), scopes);
        k.created_at = at(i);
        put(&repo, &k).await.unwrap();
        keys.push(k);
    }
    let rare = ApiKeyFilter {
        scopes_contain_all: strings(&["rare"]),
        limit: Some(5),
        ..f()
    };
    let page = repo.find(&rare).await.unwrap();
    assert_eq!(page.len(), 5);
    assert!(page.iter().all(|k| k.scopes.contains("rare")));
    assert_eq!(repo.count(&rare).await.unwrap(), 10);
    check(&repo, &keys, &rare).await;

    let second = ApiKeyFilter {
        offset: 5,
        ..rare.clone()
    };
    let rest = repo.find(&second).await.unwrap();
    assert_eq!(rest.len(), 5);
    assert!(rest.iter().all(|k| !page.contains(k)));
    let third = ApiKeyFilter {
        offset: 10,
        ..rare.clone()
    };
    assert!(repo.find(&third).await.unwrap().is_empty());

    let any = ApiKeyFilter {
        scopes_contain_any: strings(&["rare", "missing"]),
        limit: Some(5),
        ..f()
    };
    assert_eq!(repo.find(&any).await.unwrap(), page);
    assert_eq!(repo.count(&any).await.unwrap(), 10);
    let both = ApiKeyFilter {
        scopes_contain_all: strings(&["common", "rare"]),
        offset: 8,
        limit: Some(5),
        ..f()
    };
    assert_eq!(repo.find(&both).await.unwrap().len(), 2);
}

/// An empty scope list constrains nothing.
pub async fn empty_scopes_any_is_no_constraint(repo: Repo) {
    let keys = load(&repo).await;
    let filter = ApiKeyFilter {
        scopes_contain_any: vec![],
        scopes_contain_all: vec![],
        ..f()
    };
    assert_eq!(repo.count(&filter).await.unwrap(), keys.len() as u64);
    check(&repo, &keys, &filter).await;
}

/// `owner_id` and `key_id` match exactly (no case folding, no substring).
pub async fn owner_and_key_id_filters_are_exact(repo: Repo) {
    let mut keys = Vec::new();
    for (name, owner) in [
        ("a", Some("team-1")),
        ("b", Some("team-1")),
        ("c", Some("Team-1")),
        ("d", Some("team-10")),
        ("e", None),
    ] {
        let mut k = key(Some(name), &[]);
        k.owner_id = owner.map(str::to_owned);
        put(&repo, &k).await.unwrap();
        keys.push(k);
    }
    for owner in [
        "team-1",
        "Team-1",
        "team",
        "team-10",
        "'; DROP TABLE api_keys;--",
    ] {
        check(
            &repo,
            &keys,
            &ApiKeyFilter {
                owner_id: Some(owner.into()),
                ..f()
            },
        )
        .await;
    }
    let by_owner = ApiKeyFilter {
        owner_id: Some("team-1".into()),
        ..f()
    };
    assert_eq!(repo.count(&by_owner).await.unwrap(), 2);
    let wanted = &keys[2];
    let by_key_id = ApiKeyFilter {
        key_id: Some(wanted.key_id.clone()),
        ..f()
    };
    assert_eq!(repo.find(&by_key_id).await.unwrap(), vec![wanted.clone()]);
    let prefix = ApiKeyFilter {
        key_id: Some(wanted.key_id[..8].to_owned()),
        ..f()
    };
    assert_eq!(repo.count(&prefix).await.unwrap(), 0);
}

/// `name_contains` folds every Unicode letter, not only ASCII, alike on
/// every store: `école` finds `ÉCOLE`, `ISTANBUL` finds `İstanbul`.
pub async fn name_contains_folds_unicode(repo: Repo) {
    let mut keys = Vec::new();
    for name in [
        "ÉCOLE",
        "école",
        "Ecole",
        "İstanbul",
        "Straße",
        "ΟΔΟΣ",
        "ÜBER",
    ] {
        let k = key(Some(name), &[]);
        put(&repo, &k).await.unwrap();
        keys.push(k);
    }
    let names = |needle: &'static str| names_containing(&repo, needle);
    assert_eq!(names("école").await, ["ÉCOLE", "école"]);
    assert_eq!(names("ÉCOLE").await, ["ÉCOLE", "école"]);
    assert_eq!(names("ISTANBUL").await, ["İstanbul"]);
    assert_eq!(names("ß").await, ["Straße"]);
    assert_eq!(names("οδοσ").await, ["ΟΔΟΣ"]);
    assert_eq!(names("über").await, ["ÜBER"]);
    // Lowercasing, not full case folding: `SS` is not `ß`.
    assert!(names("STRASSE").await.is_empty());
    for needle in ["é", "É", "i", "İ", "σ", "Σ", "ss", "e"] {
        check(
            &repo,
            &keys,
            &ApiKeyFilter {
                name_contains: Some(needle.into()),
                ..f()
            },
        )
        .await;
    }
}

/// The names of the keys whose name contains `needle`, in name order.
async fn names_containing(repo: &Repo, needle: &str) -> Vec<String> {
    let filter = ApiKeyFilter {
        name_contains: Some(needle.to_owned()),
        order_by: OrderBy::Name,
        order_desc: false,
        ..f()
    };
    let found = repo.find(&filter).await.unwrap();
    found.into_iter().filter_map(|k| k.name).collect()
}
