//! `RequireScopes`: a tower layer that lets a request through only with a
//! key holding every required scope, and within its usage limits.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes, HttpBody};
use axum::http::header::Entry;
use axum::http::{HeaderMap, Request, Response, Uri};
use axum::response::IntoResponse;
use axum::BoxError;
use keygate::{ApiKey, ApiKeyService, Error, FieldError, Usage, Verified, MAX_COST};
use tower::{Layer, Service};

use crate::error::{
    rate_limit_values, ApiError, RATELIMIT_LIMIT, RATELIMIT_REMAINING, RATELIMIT_RESET,
};
use crate::extract::VerifiedKey;
use crate::sources::KeySources;

/// A service plus the places a key is read from: everything needed to
/// verify the key of a request. Cheap to clone.
///
/// Put it in your router state (or make it reachable with
/// [`FromRef`](axum::extract::FromRef)) to use the [`Scoped`](crate::Scoped)
/// extractor.
///
/// ```
/// use keygate::{ApiKeyService, InMemoryRepository};
/// use keygate_axum::{KeySources, KeyVerifier};
/// let service = ApiKeyService::builder(InMemoryRepository::new()).fast_hashing().build().unwrap();
/// let verifier = KeyVerifier::new(service).with_sources(KeySources::default().with_x_api_key());
/// let layer = verifier.require(["read"]);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone)]
pub struct KeyVerifier {
    service: ApiKeyService,
    sources: KeySources,
}

impl KeyVerifier {
    /// Reads keys from `Authorization: Bearer` only.
    ///
    /// ```
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let verifier = keygate_axum::KeyVerifier::new(service);
    /// assert_eq!(verifier.sources(), keygate_axum::KeySources::bearer_only());
    /// ```
    pub fn new(service: ApiKeyService) -> Self {
        Self {
            service,
            sources: KeySources::default(),
        }
    }

    /// Where keys are read from.
    ///
    /// ```
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// use keygate_axum::{KeySources, KeyVerifier};
    /// let v = KeyVerifier::new(service).with_sources(KeySources::all());
    /// assert_eq!(v.sources(), KeySources::all());
    /// ```
    pub fn with_sources(mut self, sources: KeySources) -> Self {
        self.sources = sources;
        self
    }

    /// The sources in use.
    ///
    /// ```
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let verifier = keygate_axum::KeyVerifier::new(service);
    /// assert!(!verifier.sources().query_param());
    /// ```
    pub fn sources(&self) -> KeySources {
        self.sources
    }

    /// The service keys are verified with.
    ///
    /// ```
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let verifier = keygate_axum::KeyVerifier::new(service);
    /// assert_eq!(verifier.service().key_format().prefix(), "ak_v1");
    /// ```
    pub fn service(&self) -> &ApiKeyService {
        &self.service
    }

    /// A layer requiring every scope in `scopes`. See [`RequireScopes::new`].
    ///
    /// ```
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let layer = keygate_axum::KeyVerifier::new(service).require(["read"]);
    /// assert_eq!(layer.scopes(), ["read"]);
    /// ```
    ///
    /// # Panics
    /// When a scope does not match `^[a-z][a-z0-9:_-]*$`.
    pub fn require<I, S>(&self, scopes: I) -> RequireScopes
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        RequireScopes::new(self.service.clone(), scopes).with_sources(self.sources)
    }

    /// Finds the key in the request and verifies it against `required`, at
    /// a cost of 1 (see [`verify_with`](Self::verify_with)).
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use axum::http::{HeaderMap, Uri};
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let verifier = keygate_axum::KeyVerifier::new(service);
    /// let uri: Uri = "/".parse().unwrap();
    /// let missing = verifier.verify(&HeaderMap::new(), &uri, &["read"]).await;
    /// assert!(matches!(missing, Err(keygate_axum::ApiError::Keygate(keygate::Error::KeyNotProvided))));
    /// # });
    /// ```
    ///
    /// # Errors
    /// The refusal as an [`ApiError`]: keygate's verification errors, or
    /// 400 when a key source appears twice (see [`KeySources::find`]).
    pub async fn verify<S: AsRef<str>>(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        required: &[S],
    ) -> Result<Arc<ApiKey>, ApiError> {
        Ok(self.verify_with(headers, uri, required, 1).await?.key)
    }

    /// Finds the key in the request, verifies it against `required` and
    /// takes `cost` (0..=1000) from its rate limits and credits (see
    /// [`ApiKeyService::verify_with`]). Returns the key and what the
    /// request used of its limits.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use axum::http::{HeaderMap, Uri};
    /// use keygate::{Credits, NewApiKey};
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let (_, key) = service.create(NewApiKey::named("metered").with_credits(Credits::new(10))).await.unwrap();
    /// let verifier = keygate_axum::KeyVerifier::new(service);
    /// let mut headers = HeaderMap::new();
    /// headers.insert("authorization", format!("Bearer {}", key.expose()).parse().unwrap());
    /// let uri: Uri = "/".parse().unwrap();
    /// let verified = verifier.verify_with(&headers, &uri, &[""; 0], 4).await.unwrap();
    /// assert_eq!(verified.usage.remaining, Some(6));
    /// # });
    /// ```
    ///
    /// # Errors
    /// As [`verify`](Self::verify), plus 429 when a rate-limit window or the
    /// credits have no room for `cost` (nothing is taken then).
    pub async fn verify_with<S: AsRef<str>>(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        required: &[S],
        cost: u64,
    ) -> Result<Verified, ApiError> {
        let Some(raw) = self.sources.find(headers, uri)? else {
            // Counted and logged like any verification.
            self.service.record_refusal(&Error::KeyNotProvided);
            return Err(Error::KeyNotProvided.into());
        };
        Ok(self.service.verify_with(&raw, required, cost).await?)
    }

    /// [`verify_with`](Self::verify_with) when it can be decided without
    /// waiting (see [`ApiKeyService::verify_now`]), else `None`, and then
    /// nothing was counted or taken.
    ///
    /// ```
    /// use axum::http::{HeaderMap, Uri};
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let verifier = keygate_axum::KeyVerifier::new(service);
    /// let uri: Uri = "/".parse().unwrap();
    /// // No key at all is decided at once.
    /// assert!(verifier.verify_now(&HeaderMap::new(), &uri, &["read"], 1).unwrap().is_err());
    /// ```
    pub fn verify_now<S: AsRef<str>>(
        &self,
        headers: &HeaderMap,
        uri: &Uri,
        required: &[S],
        cost: u64,
    ) -> Option<Result<Verified, ApiError>> {
        let raw = match self.sources.find(headers, uri) {
            Ok(Some(raw)) => raw,
            Ok(None) => {
                self.service.record_refusal(&Error::KeyNotProvided);
                return Some(Err(Error::KeyNotProvided.into()));
            }
            Err(e) => return Some(Err(e)),
        };
        let verified = self.service.verify_now(&raw, required, cost)?;
        Some(verified.map_err(ApiError::from))
    }
}

/// A tower [`Layer`] that admits a request only with a key holding **every**
/// given scope and room in its usage limits for the route's
/// [`cost`](Self::cost) (1 unless set), and hands the verified key to the
/// inner service as a [`VerifiedKey`] request extension. Refusals are
/// answered by [`ApiError`] (401, 403, 429 or 503 as the SPEC's tables
/// say); the inner service is not called.
///
/// When the key has rate limits, the response of an admitted request
/// carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
/// (whole seconds, rounded up) for the window with the least room left
/// ([`Usage::tightest`]), unless the inner service set `RateLimit-Limit`
/// itself. Keys without rate limits get no such headers.
///
/// Works with [`Router::route_layer`](axum::Router::route_layer) and with any
/// tower `Service<http::Request<B>>` (tonic, hyper, `service_fn`).
///
/// ```
/// use axum::{routing::get, Router};
/// use keygate::{ApiKeyService, InMemoryRepository};
/// use keygate_axum::{RequireScopes, VerifiedKey};
///
/// async fn report(VerifiedKey(key): VerifiedKey) -> String {
///     format!("hello {}", key.name.as_deref().unwrap_or("anonymous"))
/// }
///
/// let service = ApiKeyService::builder(InMemoryRepository::new()).fast_hashing().build().unwrap();
/// let app: Router = Router::new()
///     .route("/reports", get(report))
///     .route_layer(RequireScopes::new(service.clone(), ["read", "write"]));
/// ```
#[derive(Debug, Clone)]
pub struct RequireScopes {
    verifier: KeyVerifier,
    scopes: Arc<[String]>,
    cost: u64,
}

impl RequireScopes {
    /// Requires every scope of `scopes`, reading the key from
    /// `Authorization: Bearer` (change with [`with_sources`](Self::with_sources)).
    ///
    /// # Panics
    /// When a scope does not match `^[a-z][a-z0-9:_-]*$`: a route declared
    /// with an impossible scope is a programming error, like an invalid route
    /// path in axum. Use [`try_new`](Self::try_new) for scopes read at run time.
    pub fn new<I, S>(service: ApiKeyService, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        match Self::try_new(service, scopes) {
            Ok(layer) => layer,
            Err(e) => panic!("RequireScopes: {e}"),
        }
    }

    /// Like [`new`](Self::new), but returns a validation error for a bad scope.
    ///
    /// ```
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// use keygate_axum::RequireScopes;
    /// assert!(RequireScopes::try_new(service.clone(), ["api:read"]).is_ok());
    /// assert!(RequireScopes::try_new(service, ["Not A Scope"]).is_err());
    /// ```
    pub fn try_new<I, S>(service: ApiKeyService, scopes: I) -> Result<Self, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        let bad: Vec<FieldError> = scopes
            .iter()
            .filter(|s| !keygate::is_valid_scope(s))
            .map(|s| FieldError::new("scopes", format!("invalid scope {s:?}")))
            .collect();
        if !bad.is_empty() {
            return Err(Error::Validation(bad));
        }
        Ok(Self {
            verifier: KeyVerifier::new(service),
            scopes: scopes.into(),
            cost: 1,
        })
    }

    /// What one request to the route takes from the key's rate-limit
    /// windows and credits (default 1). 0 admits a request only when one
    /// more of cost 1 would pass, and takes nothing.
    ///
    /// ```
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// // An expensive export: 5 units of the key's limits per request.
    /// let layer = keygate_axum::RequireScopes::new(service, ["export"]).cost(5);
    /// assert_eq!(layer.request_cost(), 5);
    /// ```
    ///
    /// # Panics
    /// When `cost` is above [`MAX_COST`] (1000): like an invalid scope, a
    /// programming error in the route's declaration.
    pub fn cost(mut self, cost: u64) -> Self {
        assert!(
            cost <= MAX_COST,
            "RequireScopes: cost {cost} is above the maximum of {MAX_COST}"
        );
        self.cost = cost;
        self
    }

    /// What one request takes from the key's limits (see [`cost`](Self::cost)).
    ///
    /// ```
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// assert_eq!(keygate_axum::RequireScopes::new(service, ["read"]).request_cost(), 1);
    /// ```
    pub fn request_cost(&self) -> u64 {
        self.cost
    }

    /// Where keys are read from (default: `Authorization: Bearer` only).
    ///
    /// ```
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// use keygate_axum::{KeySources, RequireScopes};
    /// let layer = RequireScopes::new(service, ["read"]).with_sources(KeySources::default().with_x_api_key());
    /// # let _ = layer;
    /// ```
    pub fn with_sources(mut self, sources: KeySources) -> Self {
        self.verifier = self.verifier.with_sources(sources);
        self
    }

    /// The required scopes, in declared order.
    ///
    /// ```
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let layer = keygate_axum::RequireScopes::new(service, ["read", "write"]);
    /// assert_eq!(layer.scopes(), ["read", "write"]);
    /// ```
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }
}

impl<S> Layer<S> for RequireScopes {
    type Service = RequireScopesService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopesService {
            inner,
            guard: Arc::new(self.clone()),
        }
    }
}

/// The service made by [`RequireScopes`]. Its responses carry an axum
/// [`Body`], whatever the inner service's body type.
///
/// ```
/// use std::convert::Infallible;
/// use axum::{body::Body, http::{Request, Response}};
/// use keygate_axum::RequireScopes;
/// use tower::Layer;
/// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
/// let inner = tower::service_fn(|_req: Request<Body>| async {
///     Ok::<_, Infallible>(Response::new(Body::from("ok")))
/// });
/// let protected = RequireScopes::new(service, ["rpc:call"]).layer(inner);
/// # let _ = protected;
/// ```
#[derive(Debug, Clone)]
pub struct RequireScopesService<S> {
    inner: S,
    /// Behind one `Arc`: a request clones one counter, not one per field.
    guard: Arc<RequireScopes>,
}

impl<S> RequireScopesService<S> {
    /// The wrapped service.
    ///
    /// ```
    /// use tower::Layer;
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let protected = keygate_axum::RequireScopes::new(service, ["read"]).layer(42_u32);
    /// assert_eq!(*protected.get_ref(), 42);
    /// ```
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    ///
    /// ```
    /// use tower::Layer;
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let mut protected = keygate_axum::RequireScopes::new(service, ["read"]).layer(1_u32);
    /// *protected.get_mut() += 1;
    /// assert_eq!(protected.into_inner(), 2);
    /// ```
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The wrapped service, unwrapped.
    ///
    /// ```
    /// use tower::Layer;
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let protected = keygate_axum::RequireScopes::new(service, ["read"]).layer("inner");
    /// assert_eq!(protected.into_inner(), "inner");
    /// ```
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The layer's settings: scopes, cost, key sources.
    ///
    /// ```
    /// use tower::Layer;
    /// # let service = keygate::ApiKeyService::builder(keygate::InMemoryRepository::new()).fast_hashing().build().unwrap();
    /// let protected = keygate_axum::RequireScopes::new(service, ["read"]).cost(3).layer(());
    /// assert_eq!(protected.layer().scopes(), ["read"]);
    /// assert_eq!(protected.layer().request_cost(), 3);
    /// ```
    pub fn layer(&self) -> &RequireScopes {
        &self.guard
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScopesService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = RequireScopesFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let guard = &*self.guard;
        // The common case (a fresh cache hit, limits counted in process) is
        // decided here: no allocation, no clone of the inner service.
        let decided =
            guard
                .verifier
                .verify_now(request.headers(), request.uri(), &guard.scopes, guard.cost);
        let step = match decided {
            Some(Ok(Verified { key, usage })) => {
                request.extensions_mut().insert(VerifiedKey(key));
                Step::Admitted {
                    inner: self.inner.call(request),
                    usage,
                }
            }
            Some(Err(e)) => Step::Refused {
                response: Some(e.into_response()),
            },
            // The verification waits (store, shared limiter, hashing), then
            // the inner service: one allocation, as the future has no
            // nameable type.
            None => {
                // The clone is not ready; swap so the instance that was
                // polled ready is used.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let guard = self.guard.clone();
                Step::Waiting {
                    future: Box::pin(async move {
                        let verifier = &guard.verifier;
                        let (headers, uri) = (request.headers(), request.uri());
                        let verified =
                            verifier.verify_with(headers, uri, &guard.scopes, guard.cost);
                        match verified.await {
                            Ok(Verified { key, usage }) => {
                                request.extensions_mut().insert(VerifiedKey(key));
                                let response = inner.call(request).await?;
                                Ok(finish(response, &usage))
                            }
                            Err(e) => Ok(e.into_response()),
                        }
                    }),
                }
            }
        };
        RequireScopesFuture { step }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`RequireScopesService`].
    pub struct RequireScopesFuture<F, E> {
        #[pin]
        step: Step<F, E>,
    }
}

pin_project_lite::pin_project! {
    #[project = StepProj]
    enum Step<F, E> {
        // Verified without waiting: the inner service's future.
        Admitted {
            #[pin]
            inner: F,
            usage: Usage,
        },
        // Refused without waiting (taken when polled).
        Refused {
            response: Option<Response<Body>>,
        },
        // The verification had to wait: verification, then the inner service.
        Waiting {
            future: BoxFuture<Result<Response<Body>, E>>,
        },
    }
}

impl<F, E, ResBody> Future for RequireScopesFuture<F, E>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().step.project() {
            StepProj::Admitted { inner, usage } => match inner.poll(cx) {
                Poll::Ready(Ok(response)) => Poll::Ready(Ok(finish(response, usage))),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
            StepProj::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("RequireScopesFuture polled after completion"))),
            StepProj::Waiting { future } => future.as_mut().poll(cx),
        }
    }
}

/// The inner service's response with an axum body, and the `RateLimit-*`
/// headers of a key with rate limits (keys without: no header work).
fn finish<B>(response: Response<B>, usage: &Usage) -> Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut response = response.map(Body::new);
    if !usage.rate_limits.is_empty() {
        add_rate_limit_headers(&mut response, usage);
    }
    response
}

/// `RateLimit-*` of the window with the least room, unless the inner
/// service already described a limit of its own. Out of line: the future
/// of every request stays as small as without limits.
#[inline(never)]
fn add_rate_limit_headers(response: &mut Response<Body>, usage: &Usage) {
    let Some(window) = usage.tightest() else {
        return;
    };
    let headers = response.headers_mut();
    // One look-up both tells whether the inner service set a limit and
    // places ours.
    let Entry::Vacant(slot) = headers.entry(RATELIMIT_LIMIT) else {
        return;
    };
    let [limit, remaining, reset] = rate_limit_values(window, window.remaining);
    slot.insert(limit);
    headers.insert(RATELIMIT_REMAINING, remaining);
    headers.insert(RATELIMIT_RESET, reset);
}
