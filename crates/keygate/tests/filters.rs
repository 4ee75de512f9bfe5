//! Every filter, sort and page of SPEC §5 on the in-memory store.

mod support;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use keygate::prelude::*;
use keygate::testing::audit;
use keygate::{ApiKey, ApiKeyFilter, AuditAction, InMemoryRepository, OrderBy, ScopeSet};

fn t(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, day, 0, 0, 0).unwrap()
}

fn key(n: u32, name: Option<&str>, scopes: &[&str]) -> ApiKey {
    ApiKey {
        id: format!("{n:032x}"),
        key_id: format!("{:016x}", 100 - n),
        name: name.map(str::to_owned),
        description: None,
        is_active: n % 2 == 0,
        created_at: t(n),
        last_used_at: (n >= 3).then(|| t(n) + TimeDelta::hours(n.into())),
        expires_at: (n <= 4).then(|| t(10 + n)),
        scopes: ScopeSet::new(scopes.iter().copied()).unwrap(),
        owner_id: None,
        meta: None,
        previous_secret_expires_at: None,
        rate_limits: None,
        credits: None,
        previous_key_hash: None,
        key_hash: format!("hash{n}"),
        key_secret_first: "abcd".into(),
        key_secret_last: "wxyz".into(),
    }
}

async fn store() -> InMemoryRepository {
    let repo = InMemoryRepository::new();
    let keys = [
        key(1, Some("Alpha"), &["read"]),
        key(2, Some("beta_1"), &["read", "write"]),
        key(3, Some("gamma%"), &["write"]),
        key(4, None, &[]),
        key(5, Some("ALPHABET"), &["admin", "read"]),
        key(6, Some("a\\b'; DROP TABLE api_keys;--"), &["read"]),
    ];
    for k in &keys {
        repo.insert(k, &audit(AuditAction::Create)).await.unwrap();
    }
    repo
}

async fn ids(repo: &InMemoryRepository, filter: ApiKeyFilter) -> Vec<u32> {
    let found = repo.find(&filter).await.unwrap();
    found
        .iter()
        .map(|k| u32::from_str_radix(&k.id, 16).unwrap())
        .collect()
}

fn asc() -> ApiKeyFilter {
    ApiKeyFilter {
        order_desc: false,
        ..ApiKeyFilter::default()
    }
}

#[tokio::test]
async fn each_criterion() {
    let repo = store().await;
    let cases: Vec<(&str, ApiKeyFilter, Vec<u32>)> = vec![
        ("all", asc(), vec![1, 2, 3, 4, 5, 6]),
        (
            "active",
            ApiKeyFilter {
                is_active: Some(true),
                ..asc()
            },
            vec![2, 4, 6],
        ),
        (
            "inactive",
            ApiKeyFilter {
                is_active: Some(false),
                ..asc()
            },
            vec![1, 3, 5],
        ),
        (
            "expires_before",
            ApiKeyFilter {
                expires_before: Some(t(13)),
                ..asc()
            },
            vec![1, 2],
        ),
        (
            "expires_after",
            ApiKeyFilter {
                expires_after: Some(t(12)),
                ..asc()
            },
            vec![3, 4],
        ),
        (
            "created_before",
            ApiKeyFilter {
                created_before: Some(t(3)),
                ..asc()
            },
            vec![1, 2],
        ),
        (
            "created_after",
            ApiKeyFilter {
                created_after: Some(t(4)),
                ..asc()
            },
            vec![5, 6],
        ),
        (
            "last_used_before",
            ApiKeyFilter {
                last_used_before: Some(t(5)),
                ..asc()
            },
            vec![3, 4],
        ),
        (
            "last_used_after",
            ApiKeyFilter {
                last_used_after: Some(t(5)),
                ..asc()
            },
            vec![5, 6],
        ),
        (
            "never_used",
            ApiKeyFilter {
                never_used: Some(true),
                ..asc()
            },
            vec![1, 2],
        ),
        (
            "used",
            ApiKeyFilter {
                never_used: Some(false),
                ..asc()
            },
            vec![3, 4, 5, 6],
        ),
        (
            "scopes_all",
            ApiKeyFilter {
                scopes_contain_all: vec!["read".into(), "write".into()],
                ..asc()
            },
            vec![2],
        ),
        (
            "scopes_any",
            ApiKeyFilter {
                scopes_contain_any: vec!["write".into(), "admin".into()],
                ..asc()
            },
            vec![2, 3, 5],
        ),
        (
            "scopes_any_empty",
            ApiKeyFilter {
                scopes_contain_any: vec![],
                ..asc()
            },
            vec![1, 2, 3, 4, 5, 6],
        ),
        (
            "name_contains_ci",
            ApiKeyFilter {
                name_contains: Some("alpha".into()),
                ..asc()
            },
            vec![1, 5],
        ),
        (
            "name_contains_percent",
            ApiKeyFilter {
                name_contains: Some("%".into()),
                ..asc()
            },
            vec![3],
        ),
        (
            "name_contains_underscore",
            ApiKeyFilter {
                name_contains: Some("_".into()),
                ..asc()
            },
            vec![2, 6],
        ),
        (
            "name_contains_backslash",
            ApiKeyFilter {
                name_contains: Some("\\".into()),
                ..asc()
            },
            vec![6],
        ),
        (
            "name_contains_sql",
            ApiKeyFilter {
                name_contains: Some("'; DROP".into()),
                ..asc()
            },
            vec![6],
        ),
        (
            "name_exact",
            ApiKeyFilter {
                name_exact: Some("Alpha".into()),
                ..asc()
            },
            vec![1],
        ),
        (
            "name_exact_case",
            ApiKeyFilter {
                name_exact: Some("alpha".into()),
                ..asc()
            },
            vec![],
        ),
        (
            "combined",
            ApiKeyFilter {
                is_active: Some(true),
                scopes_contain_any: vec!["read".into()],
                never_used: Some(false),
                ..asc()
            },
            vec![6],
        ),
    ];
    for (label, filter, expected) in cases {
        let count = repo.count(&filter).await.unwrap();
        assert_eq!(ids(&repo, filter).await, expected, "{label}");
        assert_eq!(count as usize, expected.len(), "{label} count");
    }
}

#[tokio::test]
async fn ordering_by_every_column_both_directions() {
    let repo = store().await;
    let expect = |order_by, desc: bool, ascending: Vec<u32>| {
        let mut v = ascending;
        if desc {
            v.reverse();
        }
        (
            ApiKeyFilter {
                order_by,
                order_desc: desc,
                ..ApiKeyFilter::default()
            },
            v,
        )
    };
    for desc in [false, true] {
        for (filter, expected) in [
            expect(OrderBy::Id, desc, vec![1, 2, 3, 4, 5, 6]),
            // Nulls are smallest; names by bytes (uppercase before lowercase).
            expect(OrderBy::Name, desc, vec![4, 5, 1, 6, 2, 3]),
            expect(OrderBy::CreatedAt, desc, vec![1, 2, 3, 4, 5, 6]),
            expect(OrderBy::ExpiresAt, desc, vec![5, 6, 1, 2, 3, 4]),
            expect(OrderBy::LastUsedAt, desc, vec![1, 2, 3, 4, 5, 6]),
            // Ties broken by id in the same direction.
            expect(OrderBy::IsActive, desc, vec![1, 3, 5, 2, 4, 6]),
            expect(OrderBy::KeyId, desc, vec![6, 5, 4, 3, 2, 1]),
        ] {
            let label = format!("{:?} desc={desc}", filter.order_by);
            assert_eq!(ids(&repo, filter).await, expected, "{label}");
        }
    }
}

#[tokio::test]
async fn scope_filters_apply_before_paging() {
    let repo = InMemoryRepository::new();
    for n in 0..30 {
        let scopes: &[&str] = if n % 3 == 0 { &["rare"] } else { &["common"] };
        repo.insert(&key(n + 1, Some("k"), scopes), &audit(AuditAction::Create))
            .await
            .unwrap();
    }
    let filter = ApiKeyFilter {
        scopes_contain_all: vec!["rare".into()],
        limit: Some(5),
        ..ApiKeyFilter::default()
    };
    assert_eq!(repo.find(&filter).await.unwrap().len(), 5);
    assert_eq!(repo.count(&filter).await.unwrap(), 10);
    let last_page = ApiKeyFilter {
        offset: 8,
        ..filter
    };
    assert_eq!(repo.find(&last_page).await.unwrap().len(), 2);
}
