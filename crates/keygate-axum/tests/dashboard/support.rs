//! Shared setup for the dashboard tests: a service and a session store in
//! one SQLite database (as `keygate serve` has them), and a tiny browser
//! that keeps the session cookie and reads CSRF tokens from pages.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use keygate::{ApiKey, ApiKeyService, NewApiKey, Pepper};
use keygate_axum::dashboard::Dashboard;
use keygate_axum::DEFAULT_ADMIN_SCOPE;
use keygate_sqlx::SqlRepository;
use tower::ServiceExt;
use tower_sessions_sqlx_store::SqliteStore;

pub(crate) const SESSION_TABLE: &str = "keygate_ui_sessions";

/// A dashboard over a fresh database, with one admin key.
pub(crate) struct Ui {
    pub service: ApiKeyService,
    pub repo: SqlRepository,
    pub router: Router,
    /// The admin key's plaintext and entity.
    pub admin: String,
    pub admin_key: ApiKey,
}

impl Ui {
    pub(crate) async fn new() -> Self {
        Self::with(|d| d).await
    }

    /// With the dashboard's settings changed by `configure`.
    pub(crate) async fn with(configure: impl FnOnce(Dashboard) -> Dashboard) -> Self {
        Self::at("sqlite::memory:", configure).await
    }

    /// Over the SQLite database at `url`.
    pub(crate) async fn at(url: &str, configure: impl FnOnce(Dashboard) -> Dashboard) -> Self {
        let (service, repo, store) = open(url).await;
        let (admin_key, admin) = key(&service, "admin", &[DEFAULT_ADMIN_SCOPE]).await;
        let router = configure(Dashboard::new(service.clone())).router(store.clone());
        Self {
            service,
            repo,
            router,
            admin,
            admin_key,
        }
    }

    /// Sessions in the store.
    pub(crate) async fn sessions(&self) -> i64 {
        sqlx::query_scalar(&format!("select count(*) from {SESSION_TABLE}"))
            .fetch_one(self.repo.sqlite().unwrap().pool())
            .await
            .unwrap()
    }

    /// Every stored session record, as text.
    pub(crate) async fn session_data(&self) -> String {
        let rows: Vec<Vec<u8>> = sqlx::query_scalar(&format!("select data from {SESSION_TABLE}"))
            .fetch_all(self.repo.sqlite().unwrap().pool())
            .await
            .unwrap();
        rows.iter()
            .map(|r| String::from_utf8_lossy(r).into_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A browser signed in with the admin key.
    pub(crate) async fn signed_in(&self) -> Browser {
        let mut browser = Browser::default();
        let page = browser.sign_in(&self.router, &self.admin).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.text);
        browser
    }
}

/// A fast service, its store and a session store in the same database.
pub(crate) async fn open(url: &str) -> (ApiKeyService, SqlRepository, SqliteStore) {
    let repo = SqlRepository::connect(url).await.unwrap();
    repo.migrate().await.unwrap();
    let service = ApiKeyService::builder(repo.clone())
        .pepper(Pepper::new("test-pepper").unwrap())
        .fast_hashing()
        .without_cache()
        .build()
        .unwrap();
    let store = SqliteStore::new(repo.sqlite().unwrap().pool().clone())
        .with_table_name(SESSION_TABLE)
        .unwrap();
    store.migrate().await.unwrap();
    (service, repo, store)
}

pub(crate) async fn key(service: &ApiKeyService, name: &str, scopes: &[&str]) -> (ApiKey, String) {
    let (entity, plain) = service
        .create(NewApiKey::named(name).with_scopes(scopes.iter().copied()))
        .await
        .unwrap();
    (entity, plain.expose().to_owned())
}

/// Keeps the session cookie between requests, as a browser would.
#[derive(Default, Clone)]
pub(crate) struct Browser {
    pub cookie: Option<String>,
}

impl Browser {
    pub(crate) async fn get(&mut self, router: &Router, uri: &str) -> Page {
        self.send(router, Method::GET, uri, None).await
    }

    /// A form POST with these fields (the CSRF token is the caller's).
    pub(crate) async fn post(
        &mut self,
        router: &Router,
        uri: &str,
        fields: &[(&str, &str)],
    ) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.send(router, Method::POST, uri, Some(body)).await
    }

    /// Reads the form at `page_uri` for its token, then posts `fields` and
    /// the token to `action`.
    pub(crate) async fn submit(
        &mut self,
        router: &Router,
        page_uri: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> Page {
        let token = self.get(router, page_uri).await.csrf();
        let mut all = fields.to_vec();
        all.push(("csrf", &token));
        self.post(router, action, &all).await
    }

    pub(crate) async fn sign_in(&mut self, router: &Router, key: &str) -> Page {
        self.submit(router, "/ui/login", "/ui/login", &[("api_key", key)])
            .await
    }

    async fn send(
        &mut self,
        router: &Router,
        method: Method,
        uri: &str,
        body: Option<String>,
    ) -> Page {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, format!("keygate_session={cookie}"));
        }
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(body)),
            None => request.body(Body::empty()),
        }
        .unwrap();
        let response = router.clone().oneshot(request).await.unwrap();
        let page = Page::read(response).await;
        if let Some(set) = page.set_cookie() {
            let value = set
                .split(';')
                .next()
                .and_then(|kv| kv.strip_prefix("keygate_session="))
                .unwrap()
                .to_owned();
            let removed = value.is_empty() || set.contains("Max-Age=0");
            self.cookie = (!removed).then_some(value);
        }
        page
    }
}

/// A response, read.
#[derive(Debug)]
pub(crate) struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Page {
    pub(crate) async fn read(response: axum::response::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Self {
            status,
            headers,
            text: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub(crate) fn location(&self) -> Option<&str> {
        self.header("location")
    }

    pub(crate) fn set_cookie(&self) -> Option<&str> {
        self.header("set-cookie")
    }

    /// The page's CSRF token (every form carries the same).
    #[track_caller]
    pub(crate) fn csrf(&self) -> String {
        let marker = r#"name="csrf" value=""#;
        let start = self
            .text
            .find(marker)
            .unwrap_or_else(|| panic!("no CSRF field in:\n{}", self.text))
            + marker.len();
        let end = self.text[start..].find('"').unwrap() + start;
        self.text[start..end].to_owned()
    }

    /// The text of the element with this id (first match, tags kept).
    pub(crate) fn element(&self, id: &str) -> Option<&str> {
        let start = self.text.find(&format!("id=\"{id}\""))?;
        let open_end = self.text[start..].find('>')? + start + 1;
        let close = self.text[open_end..].find("</")? + open_end;
        Some(&self.text[open_end..close])
    }

    #[track_caller]
    pub(crate) fn assert(&self, status: StatusCode, contains: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(
            self.text.contains(contains),
            "no {contains:?} in:\n{}",
            self.text
        );
    }
}
