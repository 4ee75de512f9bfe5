//! Signing in and out, cookies, revocation, several instances.

use axum::http::StatusCode;
use keygate_axum::dashboard::Dashboard;

use crate::support::{key, open, Browser, Ui};

#[tokio::test]
async fn an_admin_key_signs_in_on_a_new_session_id() {
    let ui = Ui::new().await;
    let mut browser = Browser::default();
    // Strangers are sent to sign in, from anywhere under /ui.
    for path in ["/ui", "/ui/keys", "/ui/keys/new", "/ui/keys/0123"] {
        let page = browser.get(&ui.router, path).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{path}");
        assert_eq!(page.location(), Some("/ui/login"), "{path}");
    }
    let form = browser.get(&ui.router, "/ui/login").await;
    form.assert(StatusCode::OK, "<h1>Sign in</h1>");
    assert!(form
        .text
        .contains(r#"<input type="password" id="api_key" name="api_key" autocomplete="off""#));
    let before = browser
        .cookie
        .clone()
        .expect("a pre-sign-in session for the token");
    let token = form.csrf();

    let signed = browser
        .post(
            &ui.router,
            "/ui/login",
            &[("api_key", &ui.admin), ("csrf", &token)],
        )
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text);
    assert_eq!(signed.location(), Some("/ui/keys"));
    let after = browser.cookie.clone().unwrap();
    assert_ne!(before, after, "the session id is cycled at sign-in");
    // The old id is gone from the store, and the token changed.
    assert_eq!(ui.sessions().await, 1);
    let list = browser.get(&ui.router, "/ui/keys").await;
    list.assert(StatusCode::OK, "<h1>API keys</h1>");
    assert_ne!(list.csrf(), token);
    assert_eq!(
        browser.get(&ui.router, "/ui").await.location(),
        Some("/ui/keys")
    );
    // The session names the key, never its plaintext.
    let data = ui.session_data().await;
    assert!(data.contains(&ui.admin_key.key_id), "{data}");
    assert!(!data.contains(&ui.admin), "plaintext in the session");
}

#[tokio::test]
async fn other_keys_are_refused_without_an_echo() {
    let ui = Ui::new().await;
    let (_, reader) = key(&ui.service, "reader", &["read"]).await;
    let (inactive, inactive_plain) = key(&ui.service, "old-admin", &["keygate:admin"]).await;
    ui.service.deactivate(&inactive.id).await.unwrap();
    let last = if ui.admin.ends_with('x') { 'y' } else { 'x' };
    let wrong_secret = format!("{}{last}", &ui.admin[..ui.admin.len() - 1]);
    for bad in [
        reader.as_str(),
        &inactive_plain,
        &wrong_secret,
        "garbage",
        "",
    ] {
        let mut browser = Browser::default();
        let page = browser.sign_in(&ui.router, bad).await;
        page.assert(
            StatusCode::UNAUTHORIZED,
            r#"<p role="alert" class="notice alert">That key is not an active admin key.</p>"#,
        );
        if !bad.is_empty() {
            assert!(!page.text.contains(bad), "the key is echoed");
        }
        assert_eq!(
            browser.get(&ui.router, "/ui/keys").await.status,
            StatusCode::SEE_OTHER
        );
    }
}

#[tokio::test]
async fn the_cookie_is_http_only_strict_secure_and_idle_limited() {
    let ui = Ui::new().await;
    let page = Browser::default().get(&ui.router, "/ui/login").await;
    let cookie = page.set_cookie().unwrap();
    for flag in [
        "keygate_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Secure",
        "Path=/ui",
        "Max-Age=1800",
    ] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    let relaxed = Ui::with(|d| {
        d.secure_cookies(false)
            .idle_timeout(std::time::Duration::from_secs(600))
    })
    .await;
    let page = Browser::default().get(&relaxed.router, "/ui/login").await;
    let cookie = page.set_cookie().unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("Max-Age=600"), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

#[tokio::test]
async fn a_revoked_admin_key_ends_its_session_on_the_next_request() {
    for revoke in ["deactivate", "delete", "scope"] {
        let ui = Ui::new().await;
        let mut browser = ui.signed_in().await;
        assert_eq!(
            browser.get(&ui.router, "/ui/keys").await.status,
            StatusCode::OK
        );
        let id = &ui.admin_key.id;
        match revoke {
            "deactivate" => drop(ui.service.deactivate(id).await.unwrap()),
            "delete" => drop(ui.service.delete(id).await.unwrap()),
            _ => {
                let change = keygate::ApiKeyUpdate {
                    scopes: Some(vec!["read".into()]),
                    ..Default::default()
                };
                ui.service.update(id, change).await.unwrap();
            }
        }
        let page = browser.get(&ui.router, "/ui/keys").await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{revoke}");
        assert_eq!(page.location(), Some("/ui/login"));
        let login = browser.get(&ui.router, "/ui/login").await;
        login.assert(
            StatusCode::OK,
            r#"role="alert" class="notice alert">Your session has ended.</p>"#,
        );
        assert!(
            !ui.session_data().await.contains(&ui.admin_key.key_id),
            "{revoke}: session kept"
        );
        assert_eq!(
            browser.get(&ui.router, "/ui/keys").await.status,
            StatusCode::SEE_OTHER
        );
    }
}

#[tokio::test]
async fn signing_out_deletes_the_session_from_the_store() {
    let ui = Ui::new().await;
    let mut browser = ui.signed_in().await;
    let cookie = browser.cookie.clone();
    assert_eq!(ui.sessions().await, 1);
    let token = browser.get(&ui.router, "/ui/keys").await.csrf();
    let out = browser
        .post(&ui.router, "/ui/logout", &[("csrf", &token)])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(out.location(), Some("/ui/login"));
    assert!(
        browser.cookie.is_none(),
        "cookie cleared: {:?}",
        out.set_cookie()
    );
    assert_eq!(ui.sessions().await, 0);
    // A copy of the old cookie is worth nothing.
    let mut replay = Browser { cookie };
    assert_eq!(
        replay.get(&ui.router, "/ui/keys").await.location(),
        Some("/ui/login")
    );
}

#[tokio::test]
async fn two_instances_share_sessions_through_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("k.db").display());
    let a = Ui::at(&url, |d| d).await;
    // A second "instance": its own service, pool and router, same database.
    let (service_b, _repo_b, store_b) = open(&url).await;
    let router_b = Dashboard::new(service_b).router(store_b);
    let mut browser = a.signed_in().await;
    let page = browser.get(&router_b, "/ui/keys").await;
    page.assert(StatusCode::OK, "<h1>API keys</h1>");
    // A form read on one instance posts on the other.
    let token = page.csrf();
    let created = browser
        .post(
            &a.router,
            "/ui/keys",
            &[("name", "from-b"), ("csrf", &token)],
        )
        .await;
    created.assert(StatusCode::OK, "<h1>Key created</h1>");
    // Signing out on A ends the session on B.
    let token = browser.get(&a.router, "/ui/keys").await.csrf();
    let mut copy = browser.clone();
    browser
        .post(&a.router, "/ui/logout", &[("csrf", &token)])
        .await;
    assert_eq!(
        copy.get(&router_b, "/ui/keys").await.location(),
        Some("/ui/login")
    );
}
