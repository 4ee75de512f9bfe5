//! Usage limits in the store: rate limits and credits round-trip, credits
//! are taken atomically (exactly as many successes as credits, however
//! many callers race), refills happen at interval boundaries, and the
//! limit filters match the reference semantics.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use tokio::sync::Barrier;

use super::{all, at, change, key, put, service, Repo};
use crate::{
    ApiKeyFilter, CreditChange, CreditUse, Credits, Error, KeyChange, NewApiKey, RateLimit,
    RefillInterval, MAX_CREDITS,
};

fn windows() -> Vec<RateLimit> {
    vec![
        RateLimit::new("burst", 10, Duration::from_secs(1)),
        RateLimit::new("daily", 86_400, Duration::from_secs(86_400)),
    ]
}

/// Rate limits and credits (with and without refill, at the largest
/// value) are stored and read back exactly, and changed and cleared.
pub async fn limits_round_trip(repo: Repo) {
    let mut k = key(Some("limited"), &["read"]);
    k.rate_limits = Some(windows());
    k.credits = Some(Credits {
        last_refill_at: Some(at(0)),
        ..Credits::new(MAX_CREDITS).refilled(MAX_CREDITS, RefillInterval::Monthly)
    });
    put(&repo, &k).await.unwrap();
    assert_eq!(repo.get(&k.id).await.unwrap().as_ref(), Some(&k));
    assert_eq!(
        repo.get_by_key_id(&k.key_id).await.unwrap().as_ref(),
        Some(&k)
    );
    let plain = KeyChange {
        rate_limits: Some(Some(vec![RateLimit::new("m", 1, Duration::from_secs(60))])),
        credits: Some(Some(Credits::new(0))),
        ..KeyChange::default()
    };
    let changed = change(&repo, &k.id, &plain).await.unwrap().unwrap();
    assert_eq!(changed, plain.apply_to(&k));
    assert_eq!(repo.get(&k.id).await.unwrap().as_ref(), Some(&changed));
    let cleared = KeyChange {
        rate_limits: Some(None),
        credits: Some(None),
        ..KeyChange::default()
    };
    let changed = change(&repo, &k.id, &cleared).await.unwrap().unwrap();
    assert_eq!(
        (changed.rate_limits.as_ref(), changed.credits.as_ref()),
        (None, None)
    );
    assert_eq!(repo.get(&k.id).await.unwrap().as_ref(), Some(&changed));
}

/// `consume_credits` follows `Credits::consume`: takes the cost when
/// enough remain, refuses without change otherwise, cost 0 takes nothing,
/// keys without credits are unmetered, unknown ids are refused.
pub async fn consume_credits_takes_exactly(repo: Repo) {
    let now = at(0);
    let unmetered = key(Some("free"), &[]);
    put(&repo, &unmetered).await.unwrap();
    assert_eq!(
        repo.consume_credits(&unmetered.id, 1, now).await.unwrap(),
        CreditUse::Unmetered
    );
    let mut k = key(Some("metered"), &[]);
    k.credits = Some(Credits::new(3));
    put(&repo, &k).await.unwrap();
    let take = |cost| {
        let repo = repo.clone();
        let id = k.id.clone();
        async move { repo.consume_credits(&id, cost, now).await.unwrap() }
    };
    assert_eq!(take(2).await, CreditUse::Taken { remaining: 1 });
    assert_eq!(take(2).await, CreditUse::Refused);
    assert_eq!(take(0).await, CreditUse::Taken { remaining: 1 });
    assert_eq!(take(1).await, CreditUse::Taken { remaining: 0 });
    assert_eq!(take(0).await, CreditUse::Refused, "cost 0 needs one left");
    let stored = repo.get(&k.id).await.unwrap().unwrap();
    assert_eq!(stored.credits, Some(Credits::new(0)));
    // Nothing else of the key changed.
    assert_eq!(
        crate::ApiKey {
            credits: k.credits.clone(),
            ..stored
        },
        k
    );
    assert_eq!(
        repo.consume_credits("0123456789abcdef0123456789abcdef", 1, now)
            .await
            .unwrap(),
        CreditUse::Refused
    );
}

/// A refill happens at the first use after an interval boundary: the
/// remaining credits are set to the refill amount (not added to), the
/// refill time is the interval's start, and a refused use changes nothing.
pub async fn credits_refill_at_interval_boundaries(repo: Repo) {
    for (interval, start, before_next, next) in [
        (
            RefillInterval::Hourly,
            "2030-01-31T23:00:00Z",
            "2030-01-31T23:59:59.999999Z",
            "2030-02-01T00:00:00Z",
        ),
        (
            RefillInterval::Daily,
            "2030-02-28T00:00:00Z",
            "2030-02-28T23:59:59Z",
            "2030-03-01T00:00:00Z",
        ),
        (
            RefillInterval::Monthly,
            "2030-12-01T00:00:00Z",
            "2030-12-31T23:59:59Z",
            "2031-01-01T00:00:00Z",
        ),
    ] {
        let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let mut k = key(Some(interval.as_str()), &[]);
        k.credits = Some(Credits {
            last_refill_at: Some(t(start)),
            ..Credits::new(2).refilled(5, interval)
        });
        put(&repo, &k).await.unwrap();
        let take = |cost, when: &str| {
            let (repo, id, when) = (repo.clone(), k.id.clone(), t(when));
            async move { repo.consume_credits(&id, cost, when).await.unwrap() }
        };
        assert_eq!(take(2, start).await, CreditUse::Taken { remaining: 0 });
        assert_eq!(
            take(1, before_next).await,
            CreditUse::Refused,
            "{interval:?}"
        );
        assert_eq!(
            take(6, next).await,
            CreditUse::Refused,
            "more than a refill"
        );
        let stored = repo.get(&k.id).await.unwrap().unwrap().credits.unwrap();
        assert_eq!(
            stored.last_refill_at,
            Some(t(start)),
            "a refusal refills nothing"
        );
        assert_eq!(take(1, next).await, CreditUse::Taken { remaining: 4 });
        let stored = repo.get(&k.id).await.unwrap().unwrap().credits.unwrap();
        assert_eq!(
            (stored.remaining, stored.last_refill_at),
            (4, Some(t(next))),
            "{interval:?}"
        );
        // Later in the same interval: no second refill.
        let later = (t(next) + TimeDelta::minutes(30)).to_rfc3339();
        assert_eq!(take(4, &later).await, CreditUse::Taken { remaining: 0 });
    }
}

/// 200 callers race for 50 credits: exactly 50 succeed, none is lost.
pub async fn race_consume_credits(repo: Repo) {
    const CALLERS: usize = 200;
    let mut k = key(Some("race-credits"), &[]);
    k.credits = Some(Credits::new(50));
    put(&repo, &k).await.unwrap();
    let start = Arc::new(Barrier::new(CALLERS));
    let tasks: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (repo, id, start) = (repo.clone(), k.id.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                repo.consume_credits(&id, 1, at(0)).await
            })
        })
        .collect();
    let mut taken = Vec::new();
    for t in tasks {
        match t.await.unwrap().expect("no store error under contention") {
            CreditUse::Taken { remaining } => taken.push(remaining),
            CreditUse::Refused => {}
            CreditUse::Unmetered => panic!("the key has credits"),
        }
    }
    taken.sort_unstable();
    assert_eq!(
        taken,
        (0..50).collect::<Vec<u64>>(),
        "each remaining seen once"
    );
    let stored = repo.get(&k.id).await.unwrap().unwrap();
    assert_eq!(stored.credits.unwrap().remaining, 0);
}

/// Credits added (through the audited change) while requests use them:
/// every addition and every use counts.
pub async fn race_add_credits_against_use(repo: Repo) {
    let svc = service(repo.clone());
    let (k, _) = svc
        .create(NewApiKey::named("topped-up").with_credits(Credits::new(100)))
        .await
        .unwrap();
    let start = Arc::new(Barrier::new(70));
    let mut tasks = Vec::new();
    for i in 0..70 {
        let (svc, repo, id, start) = (svc.clone(), repo.clone(), k.id.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            if i % 7 == 0 {
                svc.change_credits(&id, CreditChange::Add(5))
                    .await
                    .map(|_| true)
            } else {
                let used = repo.consume_credits(&id, 1, at(0)).await.unwrap();
                Ok(matches!(used, CreditUse::Taken { .. }))
            }
        }));
    }
    for t in tasks {
        assert!(
            t.await.unwrap().unwrap(),
            "every add and every use succeeds"
        );
    }
    // 100 + 10 × 5 added − 60 used.
    let stored = svc.get(&k.id).await.unwrap();
    assert_eq!(stored.credits.unwrap().remaining, 90);
    assert!(matches!(
        svc.change_credits(&k.id, CreditChange::Add(-1000)).await,
        Ok(k) if k.credits.as_ref().unwrap().remaining == 0
    ));
}

/// `has_credits`, `credits_below` and `has_rate_limits` match the
/// reference semantics, alone and combined, before paging.
pub async fn limit_filters_match_reference(repo: Repo) {
    for (i, (credits, limited)) in [
        (None, false),
        (Some(0), true),
        (Some(5), false),
        (Some(10), true),
        (Some(MAX_CREDITS), false),
        (None, true),
    ]
    .into_iter()
    .enumerate()
    {
        let mut k = key(Some(&format!("k{i}")), &[]);
        k.created_at = at(i as i64);
        k.credits = credits.map(Credits::new);
        k.rate_limits = limited.then(windows);
        put(&repo, &k).await.unwrap();
    }
    let stored = all(&repo).await;
    let filters = [
        r#"{"has_credits": true}"#,
        r#"{"has_credits": false}"#,
        r#"{"credits_below": 0}"#,
        r#"{"credits_below": 1}"#,
        r#"{"credits_below": 10}"#,
        r#"{"credits_below": 18446744073709551615}"#,
        r#"{"has_rate_limits": true}"#,
        r#"{"has_rate_limits": false}"#,
        r#"{"has_rate_limits": true, "credits_below": 11, "limit": 1}"#,
        r#"{"has_credits": false, "has_rate_limits": false}"#,
    ];
    for json in filters {
        let f: ApiKeyFilter = serde_json::from_str(json).unwrap();
        let f = f.at_store_precision();
        let mut expected: Vec<_> = stored.iter().filter(|k| f.matches(k)).cloned().collect();
        let total = expected.len() as u64;
        expected.truncate(f.limit.map_or(usize::MAX, |l| l as usize));
        assert_eq!(repo.find(&f).await.unwrap(), expected, "{json}");
        assert_eq!(repo.count(&f).await.unwrap(), total, "{json}");
    }
}

/// Through the service: a rate-limited request burns no credits, a
/// credit-refused request takes no rate-limit room, both are 429 errors.
pub async fn metered_verify_through_service(repo: Repo) {
    let svc = service(repo.clone());
    let (k, plain) = svc
        .create(
            NewApiKey::named("metered")
                .rate_limited(RateLimit::new("minute", 3, Duration::from_secs(60)))
                .with_credits(Credits::new(5)),
        )
        .await
        .unwrap();
    let verify = |cost| svc.verify_with(plain.expose(), &[""; 0], cost);
    for left in [4, 3, 2] {
        let v = verify(1).await.unwrap();
        assert_eq!(v.usage.remaining, Some(left));
        assert_eq!(v.key.credits.as_ref().unwrap().remaining, left);
    }
    let Err(Error::RateLimited {
        retry_after,
        window,
    }) = verify(1).await
    else {
        panic!("the window is full")
    };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(60));
    assert_eq!((window.name.as_str(), window.remaining), ("minute", 0));
    assert_eq!(svc.get(&k.id).await.unwrap().credits.unwrap().remaining, 2);

    let (k, plain) = svc
        .create(
            NewApiKey::named("few-credits")
                .rate_limited(RateLimit::new("minute", 3, Duration::from_secs(60)))
                .with_credits(Credits::new(1)),
        )
        .await
        .unwrap();
    let verify = |cost| svc.verify_with(plain.expose(), &[""; 0], cost);
    assert!(matches!(
        verify(2).await,
        Err(Error::UsageExceeded { retry_after: None })
    ));
    // The refused request gave its rate-limit room back: 3 more fit.
    svc.change_credits(&k.id, CreditChange::Set(10))
        .await
        .unwrap();
    let v = verify(3).await.unwrap();
    assert_eq!(v.usage.remaining, Some(7));
    assert_eq!(v.usage.rate_limits[0].remaining, 0);
}

/// `consume_credits_batch` decides each request in order, as one
/// `consume_credits` after another would: refusals take nothing, a due
/// refill is applied once, keys without credits are unmetered, unknown ids
/// are refused.
pub async fn consume_credits_batch_grants_in_order(repo: Repo) {
    let mut k = key(Some("batched"), &[]);
    k.credits = Some(Credits::new(5));
    put(&repo, &k).await.unwrap();
    let uses = repo
        .consume_credits_batch(&k.id, &[2, 4, 1, 0, 3, 1, 1], at(0))
        .await
        .unwrap();
    let taken = |remaining| CreditUse::Taken { remaining };
    assert_eq!(
        uses,
        [
            taken(3),
            CreditUse::Refused,
            taken(2),
            taken(2),
            CreditUse::Refused,
            taken(1),
            taken(0)
        ]
    );
    assert_eq!(
        repo.get(&k.id).await.unwrap().unwrap().credits,
        Some(Credits::new(0))
    );

    let t = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    let mut daily = key(Some("batched-daily"), &[]);
    daily.credits = Some(Credits {
        last_refill_at: Some(t("2030-01-01T00:00:00Z")),
        ..Credits::new(1).refilled(3, RefillInterval::Daily)
    });
    put(&repo, &daily).await.unwrap();
    let uses = repo
        .consume_credits_batch(&daily.id, &[2, 2, 1, 1], t("2030-01-02T08:00:00Z"))
        .await
        .unwrap();
    assert_eq!(
        uses,
        [taken(1), CreditUse::Refused, taken(0), CreditUse::Refused]
    );
    let stored = repo.get(&daily.id).await.unwrap().unwrap().credits.unwrap();
    assert_eq!(
        (stored.remaining, stored.last_refill_at),
        (0, Some(t("2030-01-02T00:00:00Z"))),
        "refilled once, at the start of the day"
    );

    // Batches of one cost (the usual batch), with and without enough for all.
    let mut even = key(Some("batched-even"), &[]);
    even.credits = Some(Credits::new(7));
    put(&repo, &even).await.unwrap();
    let uses = repo
        .consume_credits_batch(&even.id, &[1, 1, 1], at(0))
        .await
        .unwrap();
    assert_eq!(uses, [taken(6), taken(5), taken(4)]);
    let uses = repo
        .consume_credits_batch(&even.id, &[2, 2, 2], at(0))
        .await
        .unwrap();
    assert_eq!(uses, [taken(2), taken(0), CreditUse::Refused]);
    let uses = repo
        .consume_credits_batch(&even.id, &[0, 0], at(0))
        .await
        .unwrap();
    assert_eq!(uses, [CreditUse::Refused, CreditUse::Refused]);

    let free = key(Some("free-batch"), &[]);
    put(&repo, &free).await.unwrap();
    assert_eq!(
        repo.consume_credits_batch(&free.id, &[1, 1000], at(0))
            .await
            .unwrap(),
        [CreditUse::Unmetered, CreditUse::Unmetered]
    );
    assert_eq!(
        repo.consume_credits_batch("0123456789abcdef0123456789abcdef", &[1, 1], at(0))
            .await
            .unwrap(),
        [CreditUse::Refused, CreditUse::Refused]
    );
    assert!(repo
        .consume_credits_batch(&free.id, &[], at(0))
        .await
        .unwrap()
        .is_empty());
}

/// Eight batches of 25 race with 50 single requests for 60 credits:
/// exactly 60 are granted.
pub async fn race_credit_batches(repo: Repo) {
    let mut k = key(Some("race-batches"), &[]);
    k.credits = Some(Credits::new(60));
    put(&repo, &k).await.unwrap();
    let start = Arc::new(Barrier::new(58));
    let mut tasks = Vec::new();
    for i in 0..58 {
        let (repo, id, start) = (repo.clone(), k.id.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let uses = if i < 8 {
                repo.consume_credits_batch(&id, &[1; 25], at(0)).await
            } else {
                repo.consume_credits(&id, 1, at(0)).await.map(|u| vec![u])
            };
            let uses = uses.expect("no store error under contention");
            uses.iter()
                .filter(|u| matches!(u, CreditUse::Taken { .. }))
                .count()
        }));
    }
    let mut granted = 0;
    for t in tasks {
        granted += t.await.unwrap();
    }
    assert_eq!(granted, 60);
    let stored = repo.get(&k.id).await.unwrap().unwrap();
    assert_eq!(stored.credits.unwrap().remaining, 0);
}
