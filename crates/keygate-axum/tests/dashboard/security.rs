//! CSRF, security headers, assets, and where the plaintext key may appear.

use axum::http::StatusCode;
use keygate::ApiKeyFilter;

use crate::support::{Browser, Page, Ui};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

#[track_caller]
fn assert_secure_headers(page: &Page) {
    assert_eq!(page.header("content-security-policy"), Some(CSP));
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
}

#[tokio::test]
async fn posts_without_the_right_token_are_403_and_change_nothing() {
    let ui = Ui::new().await;
    let mut browser = ui.signed_in().await;
    let token = browser.get(&ui.router, "/ui/keys").await.csrf();
    let id = ui.admin_key.id.clone();
    let (other, _) = crate::support::key(&ui.service, "victim", &["read"]).await;
    let last = if token.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &token[..token.len() - 1]);
    let deactivate = format!("/ui/keys/{}/deactivate", other.id);
    let delete = format!("/ui/keys/{}/delete", other.id);
    let posts: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/ui/keys", vec![("name", "sneaky")]),
        ("/ui/keys", vec![("name", "sneaky"), ("csrf", &wrong)]),
        ("/ui/keys", vec![("name", "sneaky"), ("csrf", "")]),
        (&deactivate, vec![("csrf", &wrong)]),
        (&delete, vec![]),
        ("/ui/logout", vec![("csrf", &wrong)]),
    ];
    let events_before = ui.service.count_events(&Default::default()).await.unwrap();
    for (path, fields) in posts {
        let page = browser.post(&ui.router, path, &fields).await;
        page.assert(StatusCode::FORBIDDEN, "CSRF token missing or invalid.");
        assert_secure_headers(&page);
    }
    assert_eq!(ui.service.count(&ApiKeyFilter::default()).await.unwrap(), 2);
    assert!(ui.service.get(&other.id).await.unwrap().is_active);
    assert_eq!(
        ui.service.count_events(&Default::default()).await.unwrap(),
        events_before
    );
    // Still signed in (the logout was refused); the right token works.
    let page = browser.get(&ui.router, &format!("/ui/keys/{id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    let ok = browser
        .post(
            &ui.router,
            "/ui/keys",
            &[("name", "fine"), ("csrf", &token)],
        )
        .await;
    ok.assert(StatusCode::OK, "<h1>Key created</h1>");
    // The sign-in form is protected too.
    let mut stranger = Browser::default();
    stranger.get(&ui.router, "/ui/login").await;
    let page = stranger
        .post(&ui.router, "/ui/login", &[("api_key", &ui.admin)])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(stranger.cookie.is_some());
    assert_eq!(
        stranger.get(&ui.router, "/ui/keys").await.status,
        StatusCode::SEE_OTHER
    );
}

/// The JSON API's size limits hold for `/ui` too: 414 and 431 as pages
/// with the security headers, before any session is read or made.
#[tokio::test]
async fn oversized_targets_and_headers_are_414_and_431_pages() {
    use axum::body::Body;
    use axum::http::Request;
    use keygate_axum::{MAX_HEADER_BYTES, MAX_URI_BYTES};
    use tower::ServiceExt;

    let ui = Ui::new().await;
    let base = "/ui/login?q=";
    let fits = format!("{base}{}", "a".repeat(MAX_URI_BYTES - base.len()));
    let page = Browser::default().get(&ui.router, &fits).await;
    assert_eq!(page.status, StatusCode::OK);
    let sessions = ui.sessions().await;

    let long = format!("{fits}a");
    let page = Browser::default().get(&ui.router, &long).await;
    assert_eq!(page.status, StatusCode::URI_TOO_LONG);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    assert!(
        page.text.contains("URI too long (limit 8192 bytes)"),
        "{}",
        page.text
    );
    assert_secure_headers(&page);

    let request = Request::get("/ui/login")
        .header("x-big", "b".repeat(MAX_HEADER_BYTES))
        .body(Body::empty())
        .unwrap();
    let page = Page::read(ui.router.clone().oneshot(request).await.unwrap()).await;
    assert_eq!(page.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(page.text.contains("limit 16384 bytes"), "{}", page.text);
    assert_secure_headers(&page);
    assert_eq!(
        ui.sessions().await,
        sessions,
        "a refused request made a session"
    );
}

#[tokio::test]
async fn every_response_has_the_security_headers() {
    let ui = Ui::new().await;
    let mut browser = ui.signed_in().await;
    let list = browser.get(&ui.router, "/ui/keys").await;
    let missing = browser
        .get(&ui.router, "/ui/keys/ffffffffffffffffffffffffffffffff")
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let unknown = browser.get(&ui.router, "/ui/nope").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let redirect = Browser::default().get(&ui.router, "/ui/keys").await;
    for page in [&list, &missing, &unknown, &redirect] {
        assert_secure_headers(page);
        assert_eq!(page.header("cache-control"), Some("no-store"));
    }
    assert!(list
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    // No inline script or style: only the hashed assets.
    assert!(!list.text.contains("<style") && !list.text.contains(" style="));
    assert_eq!(list.text.matches("<script").count(), 1);
    for (marker, kind) in [
        (r#"<link rel="stylesheet" href=""#, "text/css"),
        (r#"<script src=""#, "text/javascript"),
    ] {
        let start = list.text.find(marker).unwrap() + marker.len();
        let url = &list.text[start..start + list.text[start..].find('"').unwrap()];
        assert!(url.starts_with("/ui/assets/dashboard-"), "{url}");
        let asset = browser.get(&ui.router, url).await;
        assert_eq!(asset.status, StatusCode::OK, "{url}");
        assert_secure_headers(&asset);
        assert_eq!(
            asset.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert!(asset.header("content-type").unwrap().starts_with(kind));
        // Another hash is another file: not served.
        let stale = url.replace("dashboard-", "dashboard-0");
        assert_eq!(
            browser.get(&ui.router, &stale).await.status,
            StatusCode::NOT_FOUND
        );
    }
    // Assets need no session.
    let css = list
        .text
        .split('"')
        .find(|s| s.ends_with(".css"))
        .unwrap()
        .to_owned();
    assert_eq!(
        Browser::default().get(&ui.router, &css).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn plaintext_keys_appear_only_in_the_create_and_rotate_bodies() {
    let ui = Ui::new().await;
    let mut browser = ui.signed_in().await;
    let created = browser
        .submit(
            &ui.router,
            "/ui/keys/new",
            "/ui/keys",
            &[("name", "shown-once"), ("scopes", "read")],
        )
        .await;
    created.assert(StatusCode::OK, "You will not see this key again.");
    assert!(created.location().is_none());
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let plain = created.element("new-key").unwrap().to_owned();
    assert!(plain.starts_with("ak_v1-"), "{plain}");
    let verified = ui.service.verify(&plain, &["read"]).await.unwrap();
    let detail = format!("/ui/keys/{}", verified.id);
    assert!(created
        .text
        .contains(&format!(r#"href="{detail}">Go to key</a>"#)));
    assert!(created.text.contains(">Copy</button>"));
    // Nowhere else: not on the pages, not in the session.
    for path in ["/ui/keys", detail.as_str()] {
        let page = browser.get(&ui.router, path).await;
        assert!(!page.text.contains(&plain), "{path}");
    }
    let rotated = browser
        .submit(
            &ui.router,
            &detail,
            &format!("{detail}/rotate"),
            &[("grace_seconds", "60")],
        )
        .await;
    rotated.assert(StatusCode::OK, "<h1>Key rotated</h1>");
    assert!(rotated.location().is_none());
    let new_plain = rotated.element("new-key").unwrap().to_owned();
    assert_ne!(new_plain, plain);
    // Both work during the grace period.
    ui.service.verify(&new_plain, &["read"]).await.unwrap();
    ui.service.verify(&plain, &["read"]).await.unwrap();
    let data = ui.session_data().await;
    for secret in [&plain, &new_plain, &ui.admin] {
        assert!(!data.contains(secret.as_str()));
        assert!(!data.contains(secret.rsplit('-').next().unwrap()));
    }
    // Every redirect of a full tour stays clean.
    let saved = browser
        .submit(
            &ui.router,
            &detail,
            &format!("{detail}/edit"),
            &[("name", "renamed"), ("scopes", "read")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER);
    for page in [&created, &rotated, &saved] {
        for value in page.headers.values() {
            let value = value.to_str().unwrap();
            assert!(
                !value.contains(&plain) && !value.contains(&new_plain),
                "{value}"
            );
        }
    }
}

#[tokio::test]
async fn a_store_error_on_a_signed_in_page_keeps_the_sign_out_and_hides_the_reason() {
    let ui = Ui::new().await;
    let mut browser = ui.signed_in().await;
    let detail = format!("/ui/keys/{}", ui.admin_key.id);
    browser
        .get(&ui.router, &detail)
        .await
        .assert(StatusCode::OK, "Sign out");
    // The key and the session still read; the key's audit events do not.
    sqlx::query("ALTER TABLE api_key_events RENAME TO api_key_events_gone")
        .execute(ui.repo.sqlite().unwrap().pool())
        .await
        .unwrap();
    let page = browser.get(&ui.router, &detail).await;
    assert!(page.status.is_server_error(), "{}", page.status);
    for text in ["<h1>Internal error</h1>", "Sign out", "Signed in as"] {
        assert!(page.text.contains(text), "{text}: {}", page.text);
    }
    assert!(!page.text.contains("api_key_events"), "{}", page.text);
}

#[tokio::test]
async fn an_unknown_path_is_a_404_with_sign_out_only_for_a_signed_in_admin() {
    let ui = Ui::new().await;
    let mut browser = ui.signed_in().await;
    let page = browser.get(&ui.router, "/ui/nowhere/at/all").await;
    page.assert(StatusCode::NOT_FOUND, "<h1>Not found</h1>");
    assert!(page.text.contains("Sign out"), "{}", page.text);
    assert_secure_headers(&page);
    // Its sign-out form works: the token is the session's.
    let out = browser
        .submit(&ui.router, "/ui/nowhere/at/all", "/ui/logout", &[])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.text);

    // Signed out, or a stranger: the plain page, and no session is made.
    let sessions = ui.sessions().await;
    for mut who in [browser, Browser::default()] {
        let page = who.get(&ui.router, "/ui/nowhere").await;
        page.assert(StatusCode::NOT_FOUND, "<h1>Not found</h1>");
        assert!(!page.text.contains("Sign out"));
        assert!(page.set_cookie().is_none(), "{:?}", page.set_cookie());
    }
    assert!(ui.sessions().await <= sessions);
}
