//! The key pages: list (search, sort, pages), create and edit with
//! validation, state changes, the last-admin guard, credits, audit.

use axum::http::StatusCode;
use keygate::{ApiKeyUpdate, EventFilter, NewApiKey};

use crate::support::Ui;

/// Names of the keys listed on a page, in order.
fn names(text: &str) -> Vec<String> {
    text.split("<th scope=\"row\"><a href=\"/ui/keys/")
        .skip(1)
        .map(|s| {
            let start = s.find('>').unwrap() + 1;
            s[start..start + s[start..].find('<').unwrap()].to_owned()
        })
        .collect()
}

#[tokio::test]
async fn the_list_searches_sorts_and_pages() {
    let ui = Ui::new().await;
    for i in 0..60 {
        let mut new = NewApiKey::named(format!("svc-{i:02}")).with_scopes(["read"]);
        if i % 2 == 0 {
            new = new.owned_by("team-a").with_scopes(["read", "write"]);
        }
        ui.service.create(new).await.unwrap();
    }
    let mut browser = ui.signed_in().await;
    let first = browser.get(&ui.router, "/ui/keys").await;
    first.assert(StatusCode::OK, "Page 1 of 2 · 61 keys");
    assert_eq!(names(&first.text).len(), 50);
    // Newest first by default; Created is the sorted column.
    assert_eq!(names(&first.text)[0], "svc-59");
    assert!(first
        .text
        .contains(r#"<th scope="col" aria-sort="descending">"#));
    assert!(first
        .text
        .contains(r#"<a href="/ui/keys?sort=created&#38;dir=asc">Created</a>"#));
    assert!(first
        .text
        .contains(r#"<a aria-disabled="true" role="link">Previous</a>"#));
    assert!(first.text.contains(
        r#"<a href="/ui/keys?sort=created&#38;dir=desc&#38;page=2" rel="next">Next</a>"#
    ));
    assert!(first
        .text
        .contains(r#"<div class="table-wrap" tabindex="0" role="region" aria-label="Keys">"#));
    let second = browser.get(&ui.router, "/ui/keys?page=2").await;
    second.assert(StatusCode::OK, "Page 2 of 2 · 61 keys");
    assert_eq!(names(&second.text).len(), 11);
    assert!(second
        .text
        .contains(r#"<a aria-disabled="true" role="link">Next</a>"#));
    // A page past the end shows the last one.
    let far = browser.get(&ui.router, "/ui/keys?page=99").await;
    far.assert(StatusCode::OK, "Page 2 of 2");

    let by_name = browser.get(&ui.router, "/ui/keys?sort=name&dir=asc").await;
    assert_eq!(names(&by_name.text)[..3], ["admin", "svc-00", "svc-01"]);
    let flat = by_name
        .text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        flat.contains(
            r#"aria-sort="ascending"> <a href="/ui/keys?sort=name&#38;dir=desc">Name</a>"#
        ),
        "{flat}"
    );
    let desc = browser.get(&ui.router, "/ui/keys?sort=name&dir=desc").await;
    assert_eq!(names(&desc.text)[0], "svc-59");

    let q = browser.get(&ui.router, "/ui/keys?q=SVC-1&sort=name").await;
    assert_eq!(
        names(&q.text),
        (10..20).map(|i| format!("svc-{i}")).collect::<Vec<_>>()
    );
    q.assert(StatusCode::OK, "Page 1 of 1 · 10 keys");
    assert!(q.text.contains(r#"name="q" value="SVC-1""#));
    let owner = browser.get(&ui.router, "/ui/keys?owner=team-a").await;
    owner.assert(StatusCode::OK, "30 keys");
    let scope = browser.get(&ui.router, "/ui/keys?scope=read,+write").await;
    scope.assert(StatusCode::OK, "30 keys");
    let admins = browser
        .get(&ui.router, "/ui/keys?scope=keygate:admin")
        .await;
    assert_eq!(names(&admins.text), ["admin"]);
    let bad = browser.get(&ui.router, "/ui/keys?scope=Bad!").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text.contains(r#"role="alert""#) && bad.text.contains("Scope:"));
    let none = browser
        .get(&ui.router, "/ui/keys?q=nothing-like-this")
        .await;
    none.assert(StatusCode::OK, "No keys match.");

    let some = ui.service.find(&Default::default()).await.unwrap();
    ui.service.deactivate(&some[0].id).await.unwrap();
    let inactive = browser.get(&ui.router, "/ui/keys?status=inactive").await;
    assert_eq!(names(&inactive.text), [some[0].name.clone().unwrap()]);
    assert!(inactive
        .text
        .contains(r#"<span class="badge inactive">inactive</span>"#));
    assert!(inactive
        .text
        .contains(r#"<option value="inactive" selected>"#));
    let active = browser.get(&ui.router, "/ui/keys?status=active").await;
    active.assert(StatusCode::OK, "60 keys");
}

#[tokio::test]
async fn invalid_input_is_422_naming_each_field() {
    let ui = Ui::new().await;
    let mut browser = ui.signed_in().await;
    let page = browser
        .submit(
            &ui.router,
            "/ui/keys/new",
            "/ui/keys",
            &[
                ("name", "ok-name"),
                ("scopes", "read Bad!"),
                ("meta", "[1, 2]"),
                ("rate_limits", "burst=10/1s\nnope"),
                ("expires", "2001-01-01"),
                ("credits", "-5"),
            ],
        )
        .await;
    page.assert(StatusCode::UNPROCESSABLE_ENTITY, r#"<div role="alert""#);
    for field in ["meta", "rate_limits", "expires", "credits"] {
        assert!(
            page.text
                .contains(&format!(r#"<p class="error" id="err-{field}">"#)),
            "{field}"
        );
        assert!(
            page.text
                .contains(&format!(r#"aria-describedby="hint-{field} err-{field}""#)),
            "{field}"
        );
        assert!(
            page.text.contains(&format!(r##"<a href="#f-{field}">"##)),
            "{field}"
        );
    }
    // The form comes back filled in.
    assert!(page.text.contains(r#"value="ok-name""#));
    assert!(page.text.contains("burst=10/1s\nnope</textarea>"));
    assert_eq!(
        page.element("err-rate_limits"),
        Some(
            "line 2: expected NAME=LIMIT/WINDOW such as burst=10/1s or hourly=1000/1h \
             (no &#39;=&#39; after the window&#39;s name)"
        )
    );
    // The core's own checks (scopes) land on their field too.
    let page = browser
        .submit(
            &ui.router,
            "/ui/keys/new",
            "/ui/keys",
            &[("name", "x"), ("scopes", "read Bad!")],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.text
    );
    assert!(page.element("err-scopes").is_some(), "{}", page.text);
    let page = browser
        .submit(&ui.router, "/ui/keys/new", "/ui/keys", &[("name", "")])
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page
        .text
        .contains(r#"aria-invalid="true" aria-describedby="err-name""#));
    assert_eq!(ui.service.count(&Default::default()).await.unwrap(), 1);

    // The edit form too.
    let detail = format!("/ui/keys/{}", ui.admin_key.id);
    let page = browser
        .submit(
            &ui.router,
            &detail,
            &format!("{detail}/edit"),
            &[
                ("name", "admin"),
                ("scopes", "keygate:admin"),
                ("meta", "{"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page
        .element("err-meta")
        .unwrap()
        .starts_with("is not valid JSON"));
    let page = browser
        .submit(
            &ui.router,
            &detail,
            &format!("{detail}/rotate"),
            &[("grace_seconds", "9999999")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.element("err-grace").is_some());
    let page = browser
        .submit(
            &ui.router,
            &detail,
            &format!("{detail}/credits"),
            &[("set", "5"), ("add", "5")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn create_edit_credits_deactivate_and_delete_are_audited_as_the_admin() {
    let ui = Ui::new().await;
    let mut browser = ui.signed_in().await;
    let created = browser
        .submit(
            &ui.router,
            "/ui/keys/new",
            "/ui/keys",
            &[
                ("name", "billing"),
                ("description", "Invoices"),
                ("scopes", "read, write"),
                ("expires", "2999-01-31"),
                ("owner", "team-7"),
                ("meta", r#"{"plan": "pro"}"#),
                ("rate_limits", "burst=10/1s\nhourly=1000/1h"),
                ("credits", "100"),
                ("refill", "100/daily"),
            ],
        )
        .await;
    created.assert(StatusCode::OK, "<h1>Key created</h1>");
    let plain = created.element("new-key").unwrap().to_owned();
    let key = ui.service.verify(&plain, &["read", "write"]).await.unwrap();
    assert_eq!(key.owner_id.as_deref(), Some("team-7"));
    assert_eq!(
        key.expires_at.unwrap().to_rfc3339(),
        "2999-01-31T00:00:00+00:00"
    );
    assert_eq!(key.rate_limits.as_ref().unwrap().len(), 2);
    assert_eq!(key.credits.as_ref().unwrap().refill_amount, Some(100));
    let detail = format!("/ui/keys/{}", key.id);
    let page = browser.get(&ui.router, &detail).await;
    page.assert(StatusCode::OK, "<h1>billing</h1>");
    for text in [
        "<h2 id=\"usage-h\">Usage</h2>",
        "<dd>100/daily</dd>",
        "<td>hourly</td><td>1000</td><td>1h</td>",
        ">Save changes</button>",
        ">Update credits</button>",
        ">Deactivate</button>",
        ">Rotate key</button>",
        ">Delete key…</a>",
        "<h2 id=\"audit-h\">Audit events</h2>",
    ] {
        assert!(page.text.contains(text), "{text}");
    }
    assert!(page.text.contains("burst=10/1s\nhourly=1000/1h</textarea>"));

    // Edit only the scopes: one update event with only that change.
    let form = [
        ("name", "billing"),
        ("description", "Invoices"),
        ("scopes", "read"),
        ("expires", "2999-01-31"),
        ("owner", "team-7"),
        ("meta", "{\n  \"plan\": \"pro\"\n}"),
        ("rate_limits", "burst=10/1s\nhourly=1000/1h"),
    ];
    let saved = browser
        .submit(&ui.router, &detail, &format!("{detail}/edit"), &form)
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    assert_eq!(saved.location(), Some(detail.as_str()));
    let page = browser.get(&ui.router, &detail).await;
    page.assert(
        StatusCode::OK,
        r#"<p role="status" class="notice ok">Saved.</p>"#,
    );
    // The message is shown once.
    assert!(!browser
        .get(&ui.router, &detail)
        .await
        .text
        .contains("Saved."));
    let updated = ui.service.get(&key.id).await.unwrap();
    assert_eq!(updated.scopes.as_slice(), ["read"]);
    assert_eq!(updated.expires_at, key.expires_at);

    let credited = browser
        .submit(
            &ui.router,
            &detail,
            &format!("{detail}/credits"),
            &[("add", "-30")],
        )
        .await;
    assert_eq!(credited.status, StatusCode::SEE_OTHER);
    // 100, less the one verification above, less 30.
    assert_eq!(
        ui.service
            .get(&key.id)
            .await
            .unwrap()
            .credits
            .unwrap()
            .remaining,
        69
    );

    let off = browser
        .submit(&ui.router, &detail, &format!("{detail}/deactivate"), &[])
        .await;
    assert_eq!(off.location(), Some(detail.as_str()));
    let page = browser.get(&ui.router, &detail).await;
    page.assert(StatusCode::OK, "Key deactivated.");
    assert!(page.text.contains(">Activate</button>"));
    assert!(ui.service.verify(&plain, &["read"]).await.is_err());
    let on = browser
        .submit(&ui.router, &detail, &format!("{detail}/activate"), &[])
        .await;
    assert_eq!(on.status, StatusCode::SEE_OTHER);
    browser
        .get(&ui.router, &detail)
        .await
        .assert(StatusCode::OK, "Key activated.");

    let confirm = browser.get(&ui.router, &format!("{detail}/delete")).await;
    confirm.assert(StatusCode::OK, "<h1>Delete key</h1>");
    assert!(
        confirm.text.contains(">Delete permanently</button>")
            && confirm.text.contains(">Cancel</a>")
    );
    let deleted = browser
        .post(
            &ui.router,
            &format!("{detail}/delete"),
            &[("csrf", &confirm.csrf())],
        )
        .await;
    assert_eq!(deleted.location(), Some("/ui/keys"));
    browser
        .get(&ui.router, "/ui/keys")
        .await
        .assert(StatusCode::OK, "Key deleted.");
    assert_eq!(
        browser.get(&ui.router, &detail).await.status,
        StatusCode::NOT_FOUND
    );

    let events = ui
        .service
        .events(&EventFilter::for_key(&key.id))
        .await
        .unwrap();
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "create",
            "update",
            "update",
            "deactivate",
            "activate",
            "delete"
        ]
    );
    assert!(events.iter().all(|e| e.actor == ui.admin_key.key_id));
    assert_eq!(events[1].changes.keys().collect::<Vec<_>>(), ["scopes"]);
}

/// Descriptions set by the update events shown on a detail page, in order.
fn described(text: &str) -> Vec<u64> {
    text.split("<li>description: ")
        .skip(1)
        .map(|s| {
            let new = &s[s.find("→ d").unwrap() + "→ d".len()..];
            new[..new.find('<').unwrap()].parse().unwrap()
        })
        .collect()
}

#[tokio::test]
async fn a_keys_audit_events_page_from_the_latest_back_to_the_first() {
    let ui = Ui::new().await;
    let (key, _) = crate::support::key(&ui.service, "busy", &["read"]).await;
    // 1 create + 249 updates: events 2..=250 set the description to d2..d250.
    for i in 2..=250 {
        let change = ApiKeyUpdate {
            description: Some(Some(format!("d{i}"))),
            ..Default::default()
        };
        ui.service.update(&key.id, change).await.unwrap();
    }
    let mut browser = ui.signed_in().await;
    let detail = format!("/ui/keys/{}", key.id);
    let link = |page: u64| format!("/ui/keys/{}?events={page}#audit-h", key.id);

    // The first page: the latest 100, oldest first; only older ones to go to.
    let latest = browser.get(&ui.router, &detail).await;
    latest.assert(StatusCode::OK, "Events 151–250 of 250, oldest first.");
    assert_eq!(described(&latest.text), (151..=250).collect::<Vec<_>>());
    assert!(latest
        .text
        .contains(&format!(r#"<a href="{}" rel="prev">Older</a>"#, link(2))));
    assert!(latest
        .text
        .contains(r#"<a aria-disabled="true" role="link">Newer</a>"#));

    let middle = browser.get(&ui.router, &format!("{detail}?events=2")).await;
    middle.assert(StatusCode::OK, "Events 51–150 of 250, oldest first.");
    assert_eq!(described(&middle.text), (51..=150).collect::<Vec<_>>());
    assert!(middle.text.contains(&link(3)) && middle.text.contains(&link(1)));

    // The last page is short: the create event and d2..d50.
    let oldest = browser.get(&ui.router, &format!("{detail}?events=3")).await;
    oldest.assert(StatusCode::OK, "Events 1–50 of 250, oldest first.");
    assert_eq!(described(&oldest.text), (2..=50).collect::<Vec<_>>());
    assert!(oldest.text.contains("<td>create</td>"));
    assert!(oldest
        .text
        .contains(r#"<a aria-disabled="true" role="link">Older</a>"#));

    // A page past the end shows the oldest; anything else the latest.
    let past = browser
        .get(&ui.router, &format!("{detail}?events=99"))
        .await;
    assert_eq!(described(&past.text), described(&oldest.text));
    for odd in ["0", "-1", "x", "", "1e3", "99999999999999999999999"] {
        let page = browser
            .get(&ui.router, &format!("{detail}?events={odd}"))
            .await;
        page.assert(StatusCode::OK, "Events 151–250 of 250");
    }

    // A key with few events has no pager.
    let (quiet, _) = crate::support::key(&ui.service, "quiet", &["read"]).await;
    let page = browser
        .get(&ui.router, &format!("/ui/keys/{}", quiet.id))
        .await;
    page.assert(StatusCode::OK, "<td>create</td>");
    assert!(!page.text.contains("Audit event pages"));
}

#[tokio::test]
async fn the_last_admin_key_cannot_be_switched_off_from_the_dashboard() {
    let ui = Ui::new().await;
    let mut browser = ui.signed_in().await;
    let detail = format!("/ui/keys/{}", ui.admin_key.id);
    for action in ["deactivate", "delete"] {
        let page = browser
            .submit(&ui.router, &detail, &format!("{detail}/{action}"), &[])
            .await;
        page.assert(StatusCode::CONFLICT, "Refusing to");
        assert!(page
            .text
            .contains(r#"<p role="alert" class="notice alert">Refusing to"#));
    }
    let page = browser
        .submit(
            &ui.router,
            &detail,
            &format!("{detail}/edit"),
            &[("name", "admin"), ("scopes", "read")],
        )
        .await;
    page.assert(StatusCode::CONFLICT, "Refusing to");
    let page = browser
        .submit(
            &ui.router,
            &detail,
            &format!("{detail}/credits"),
            &[("set", "0"), ("add", "")],
        )
        .await;
    page.assert(StatusCode::CONFLICT, "Refusing to take every credit from");
    let key = ui.service.get(&ui.admin_key.id).await.unwrap();
    assert!(key.is_active && key.scopes.contains("keygate:admin"));
    assert_eq!(key.credits, None);
    // Still signed in.
    assert_eq!(
        browser.get(&ui.router, "/ui/keys").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn usage_shows_each_window_as_requests_find_it() {
    use std::time::Duration;
    let ui = Ui::new().await;
    let new = NewApiKey::named("metered")
        .rate_limited(keygate::RateLimit::new(
            "minute",
            10,
            Duration::from_secs(60),
        ))
        .rate_limited(keygate::RateLimit::new(
            "day",
            500,
            Duration::from_secs(86_400),
        ));
    let (entity, key) = ui.service.create(new).await.unwrap();
    let mut browser = ui.signed_in().await;
    let path = format!("/ui/keys/{}", entity.id);
    // Not used yet: all the room, no window open (looking opens none).
    for _ in 0..2 {
        let page = browser.get(&ui.router, &path).await;
        page.assert(
            StatusCode::OK,
            "<td>minute</td><td>10</td><td>1m</td><td>10</td><td>not open</td>",
        );
    }
    ui.service
        .verify_with(key.expose(), &[""; 0], 3)
        .await
        .unwrap();
    let page = browser.get(&ui.router, &path).await;
    page.assert(
        StatusCode::OK,
        "<td>minute</td><td>10</td><td>1m</td><td>7</td><td>1m</td>",
    );
    page.assert(
        StatusCode::OK,
        "<td>day</td><td>500</td><td>1d</td><td>497</td><td>1d</td>",
    );
}
