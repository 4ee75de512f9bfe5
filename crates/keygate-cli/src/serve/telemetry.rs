//! SPEC §14 for `keygate serve`: the Prometheus recorder and `GET /metrics`,
//! `keygate_http_requests_total{method,route,status}`, request ids, and
//! what the one log line per request (`io.rs`) learns from the router.
//!
//! The core library records the verification metrics through the `metrics`
//! facade ([`keygate::telemetry`]); this module installs the recorder they
//! go to ([`Prometheus`]: rendering on demand, no listener of its own; the
//! latency histogram in fixed buckets) before the service is built, and
//! serves its rendering.
//!
//! Counting a request allocates nothing: the route template is the
//! router's own `Arc<str>` ([`MatchedPath`]), handed to the server in a
//! task-local, and the request counter's handle is looked up by borrowed
//! route, method and status (registered on first use).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{LazyLock, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Result;
use axum::extract::{MatchedPath, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderName, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use keygate::telemetry::prometheus::Prometheus;
use keygate::{ApiKeyService, Verification};
use keygate_axum::{RequireScopes, DEFAULT_ADMIN_SCOPE};
use keygate_sqlx::SqlRepository;
use metrics::{Counter, Gauge, Unit};
use serde_json::json;
use tower::{Layer, Service};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

/// Requests answered, by method, route template and status.
pub(super) const HTTP_REQUESTS_TOTAL: &str = "keygate_http_requests_total";
/// 1 while the key store answers, 0 while it is known to be down.
pub(super) const STORE_UP: &str = "keygate_store_up";
/// The request id header, kept from the request or generated, and echoed.
pub(super) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The `route` label of a request no route matched (a 404).
const UNMATCHED: &str = "unmatched";
/// Longest request id kept from a request; a longer one, or one with
/// characters other than visible ASCII (quotes and backslashes excluded),
/// is replaced by a generated one, so a log line can always show it as is.
const MAX_REQUEST_ID: usize = 128;
/// How often the recorder's upkeep runs (see [`Prometheus::run_upkeep`]).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The recorder of the process, and what renders it.
#[derive(Clone)]
pub(super) struct Metrics {
    prometheus: Prometheus,
}

impl Metrics {
    /// Installs the recorder for the whole process. Call before building the
    /// service: it takes its metric handles when built.
    pub(super) fn install() -> Result<Self> {
        let prometheus = Prometheus::install()?;
        metrics::describe_counter!(
            HTTP_REQUESTS_TOTAL,
            Unit::Count,
            "HTTP requests answered, by method, route template and status"
        );
        metrics::describe_gauge!(
            STORE_UP,
            "1 while the key store answers, 0 while it is known to be down"
        );
        let upkeep = prometheus.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            loop {
                tick.tick().await;
                upkeep.run_upkeep();
            }
        });
        Ok(Self { prometheus })
    }

    /// `GET /metrics`: without authentication for a listener of its own
    /// (`open`), else for keys holding the admin scope only.
    pub(super) fn route(
        &self,
        service: &ApiKeyService,
        repo: &SqlRepository,
        open: bool,
    ) -> Router {
        let scrape = Scrape {
            prometheus: self.prometheus.clone(),
            service: service.clone(),
            repo: repo.clone(),
            store_up: metrics::gauge!(STORE_UP),
        };
        let route = Router::new()
            .route("/metrics", get(render))
            .with_state(scrape);
        if open {
            route.fallback(|| async {
                (StatusCode::NOT_FOUND, Json(json!({"detail": "Not Found"})))
            })
        } else {
            route.route_layer(RequireScopes::new(service.clone(), [DEFAULT_ADMIN_SCOPE]))
        }
    }
}

#[derive(Clone)]
struct Scrape {
    prometheus: Prometheus,
    service: ApiKeyService,
    repo: SqlRepository,
    store_up: Gauge,
}

/// The gauges read at scrape time, then everything in the Prometheus text
/// format.
async fn render(State(scrape): State<Scrape>) -> Response {
    scrape.service.update_gauges();
    let up = scrape.repo.down().is_none();
    scrape.store_up.set(if up { 1.0 } else { 0.0 });
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        scrape.prometheus.render(),
    )
        .into_response()
}

/// Every request of `router` gets an `x-request-id` (the request's own, or
/// a generated UUID v4), echoed in its response, and tells the server which
/// route template it matched (see [`observe`]).
pub(super) fn observe_requests(router: Router) -> Router {
    router
        .layer(NoteRouteLayer)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Drops a request id that is not fit for the logs (see
/// [`MAX_REQUEST_ID`]), so that one is generated instead.
pub(super) fn drop_unfit_request_id(headers: &mut HeaderMap) {
    let fit = |id: &[u8]| {
        !id.is_empty()
            && id.len() <= MAX_REQUEST_ID
            && id
                .iter()
                .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
    };
    if headers
        .get(X_REQUEST_ID)
        .is_some_and(|id| !fit(id.as_bytes()))
    {
        headers.remove(X_REQUEST_ID);
    }
}

tokio::task_local! {
    /// The route template the request being handled matched.
    static ROUTE: RefCell<Option<MatchedPath>>;
}

/// Runs the handling of one request; returns its output, the last key
/// verification made (for the log line) and the route template matched.
pub(super) async fn observe<F: Future>(
    handling: F,
) -> (F::Output, Option<Verification>, Option<MatchedPath>) {
    ROUTE
        .scope(RefCell::new(None), async move {
            let (output, seen) = keygate::capture_verification(handling).await;
            (output, seen, ROUTE.with(|route| route.borrow_mut().take()))
        })
        .await
}

/// Counts an answered request in `keygate_http_requests_total`.
pub(super) fn count_request(method: &Method, route: Option<&MatchedPath>, status: u16) {
    let route = route.map_or(UNMATCHED, MatchedPath::as_str);
    REQUESTS.increment(method_label(method), route, status);
}

/// The `method` label: the standard methods, `OTHER` for the rest (a
/// client may send any token).
fn method_label(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "CONNECT" => "CONNECT",
        _ => "OTHER",
    }
}

/// The request counters, registered on first use. The labels are bounded:
/// route templates of the router, standard methods, status codes.
static REQUESTS: LazyLock<RequestCounters> = LazyLock::new(RequestCounters::default);

type PerRoute = Vec<(&'static str, u16, Counter)>;

#[derive(Default)]
struct RequestCounters {
    by_route: RwLock<HashMap<Box<str>, PerRoute, foldhash::fast::RandomState>>,
}

impl RequestCounters {
    /// Adds one to the counter of these labels (under the read lock, after
    /// the first time).
    fn increment(&self, method: &'static str, route: &str, status: u16) {
        let find = |per_route: &PerRoute| {
            per_route
                .iter()
                .position(|(m, s, _)| *m == method && *s == status)
        };
        {
            let by_route = self.by_route.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(per_route) = by_route.get(route) {
                if let Some(i) = find(per_route) {
                    per_route[i].2.increment(1);
                    return;
                }
            }
        }
        let mut by_route = self
            .by_route
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let per_route = by_route.entry(route.into()).or_default();
        let i = find(per_route).unwrap_or_else(|| {
            let counter = metrics::counter!(
                HTTP_REQUESTS_TOTAL,
                "method" => method,
                "route" => route.to_owned(),
                "status" => status.to_string(),
            );
            per_route.push((method, status, counter));
            per_route.len() - 1
        });
        per_route[i].2.increment(1);
    }
}

/// Puts the route template a request matched where [`observe`] finds it.
#[derive(Clone, Copy)]
struct NoteRouteLayer;

impl<S> Layer<S> for NoteRouteLayer {
    type Service = NoteRoute<S>;

    fn layer(&self, inner: S) -> NoteRoute<S> {
        NoteRoute(inner)
    }
}

#[derive(Clone)]
struct NoteRoute<S>(S);

impl<S, B> Service<Request<B>> for NoteRoute<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> S::Future {
        if let Some(path) = request.extensions().get::<MatchedPath>() {
            // Outside `observe` (no server around): nobody asks.
            let _ = ROUTE.try_with(|route| *route.borrow_mut() = Some(path.clone()));
        }
        self.0.call(request)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn request_ids_unfit_for_logs_are_replaced() {
        for (id, kept) in [
            ("abc-123", true),
            ("0b9c2f5e-3d0e-4a51-9f0e-5c1d6d7e8f90", true),
            ("a/b+c=", true),
            (&"x".repeat(MAX_REQUEST_ID), true),
            (&"x".repeat(MAX_REQUEST_ID + 1), false),
            ("two words", false),
            ("say \"hi\"", false),
            ("back\\slash", false),
            ("", false),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(X_REQUEST_ID, HeaderValue::from_str(id).unwrap());
            drop_unfit_request_id(&mut headers);
            assert_eq!(headers.contains_key(X_REQUEST_ID), kept, "{id:?}");
        }
    }

    #[test]
    fn methods_outside_the_standard_ones_share_a_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let odd = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&odd), "OTHER");
    }

    #[test]
    fn request_counters_are_taken_once_per_label_set() {
        let counters = RequestCounters::default();
        counters.increment("GET", "/a", 200);
        counters.increment("GET", "/a", 200);
        counters.increment("GET", "/a", 404);
        counters.increment("POST", "/a", 200);
        counters.increment("GET", UNMATCHED, 404);
        let by_route = counters.by_route.read().unwrap();
        assert_eq!(by_route.len(), 2);
        assert_eq!(by_route["/a"].len(), 3);
    }
}
