//! What hyper drives a connection through, each part moving the
//! connection's [`ConnState`] from phase to phase (see `conn.rs`): the
//! socket ([`Tracked`]), the router seen as hyper's service
//! ([`ConnService`]), the request body with its deadline ([`DeadlineBody`])
//! and the response body ([`TrackedBody`]).

use std::convert::Infallible;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, Request, Response, StatusCode};
use axum::response::IntoResponse;
use axum::{BoxError, Json, Router};
use http_body::{Body as _, Frame, SizeHint};
use hyper::body::Incoming;
use keygate::Verification;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;
use tower_service::Service as _;

use super::conn::ConnState;
use super::telemetry::{self, X_REQUEST_ID};

/// The socket, noting reads and writes in the connection's state.
pub(super) struct Tracked {
    pub(super) stream: TcpStream,
    pub(super) state: Arc<ConnState>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.state.on_read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.state.on_write();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.state.on_write();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The router, seen from hyper: tracks the phases, puts the body deadline
/// on request bodies, answers 408 when it passed, counts each request in
/// `keygate_http_requests_total` and logs one line per request: method,
/// path, final status, latency, request id, and the key id and outcome of
/// its key check (see `telemetry.rs`).
pub(super) struct ConnService {
    pub(super) router: Router,
    pub(super) state: Arc<ConnState>,
    pub(super) body_timeout: Duration,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let started = Instant::now();
        let state = self.state.clone();
        let has_body = !request.body().is_end_stream();
        state.request_started(has_body);
        let mut request = if has_body {
            let deadline = Box::pin(tokio::time::sleep(self.body_timeout));
            let state = state.clone();
            request.map(move |inner| {
                Body::new(DeadlineBody {
                    inner,
                    deadline,
                    state,
                    done: false,
                })
            })
        } else {
            request.map(Body::new)
        };
        // The path only: a query string may carry a key.
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        telemetry::drop_unfit_request_id(request.headers_mut());
        let mut router = self.router.clone();
        let body_timeout = self.body_timeout;
        Box::pin(async move {
            let handling = async {
                poll_fn(|cx| tower_service::Service::<Request<Body>>::poll_ready(&mut router, cx))
                    .await
                    .unwrap_or_else(|never| match never {});
                router
                    .call(request)
                    .await
                    .unwrap_or_else(|never| match never {})
            };
            let (mut response, seen, route) = telemetry::observe(handling).await;
            if state.body_timed_out.load(Relaxed) {
                let request_id = response.headers_mut().remove(X_REQUEST_ID);
                response = body_timeout_response(body_timeout);
                if let Some(id) = request_id {
                    response.headers_mut().insert(X_REQUEST_ID, id);
                }
            }
            let status = response.status().as_u16();
            telemetry::count_request(&method, route.as_ref(), status);
            // The key id and outcome of the request's key check, if any;
            // never the key itself.
            tracing::info!(
                %method,
                path,
                status,
                micros = started.elapsed().as_micros() as u64,
                request_id = response
                    .headers()
                    .get(X_REQUEST_ID)
                    .and_then(|id| id.to_str().ok()),
                key_id = seen.as_ref().and_then(Verification::key_id),
                outcome = seen.map(|seen| seen.outcome().as_str()),
                "request"
            );
            state.responding();
            Ok(response.map(|inner| TrackedBody { inner, state }))
        })
    }
}

/// 408 `{"detail": …}`, and the connection is closed after it (the rest of
/// the body may still be on its way).
fn body_timeout_response(timeout: Duration) -> Response<Body> {
    let detail = format!("request body not received within {} s", timeout.as_secs());
    (
        StatusCode::REQUEST_TIMEOUT,
        [(header::CONNECTION, "close")],
        Json(json!({ "detail": detail })),
    )
        .into_response()
}

#[derive(Debug)]
struct BodyTimeout;

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request body timeout")
    }
}

impl std::error::Error for BodyTimeout {}

/// A request body that fails once its deadline has passed (the whole body,
/// not each chunk: a body trickling in byte by byte fails too).
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
    state: Arc<ConnState>,
    done: bool,
}

impl DeadlineBody {
    fn finish(&mut self) {
        self.done = true;
        self.state.body_finished();
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        // What has arrived is delivered even past the deadline.
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if this.inner.is_end_stream() {
                    this.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.state.body_timed_out.store(true, Relaxed);
                this.finish();
                Poll::Ready(Some(Err(BodyTimeout.into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for DeadlineBody {
    fn drop(&mut self) {
        // Dropped unread: the handler goes on without it.
        self.state.body_finished();
    }
}

/// A response body; when hyper drops it (written, or the connection is
/// gone) the connection is idle again.
pub(super) struct TrackedBody {
    inner: Body,
    state: Arc<ConnState>,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for TrackedBody {
    fn drop(&mut self) {
        self.state.request_done();
    }
}
