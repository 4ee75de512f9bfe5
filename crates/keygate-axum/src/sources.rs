//! Where in a request the API key is looked for.

use std::borrow::Cow;

use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderName, StatusCode, Uri};
use keygate::Error;

use crate::error::ApiError;

/// The header read when [`KeySources::with_x_api_key`] is on.
pub const X_API_KEY: &str = "x-api-key";
/// The query parameter read when [`KeySources::with_query_param`] is on.
pub const API_KEY_PARAM: &str = "api_key";

/// Which parts of a request may carry the key, tried in this order:
/// `Authorization: Bearer <key>` (on by default; the scheme is
/// case-insensitive), `X-API-Key: <key>` and the `api_key` query parameter
/// (both opt-in: query strings end up in access logs and browser history).
///
/// ```
/// use keygate_axum::KeySources;
/// let sources = KeySources::default().with_x_api_key().with_query_param();
/// assert!(sources.x_api_key() && sources.query_param() && sources.bearer());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySources {
    bearer: bool,
    x_api_key: bool,
    query_param: bool,
}

impl Default for KeySources {
    fn default() -> Self {
        Self::bearer_only()
    }
}

impl KeySources {
    /// Only `Authorization: Bearer <key>` (the default).
    ///
    /// ```
    /// assert_eq!(keygate_axum::KeySources::bearer_only(), Default::default());
    /// ```
    pub const fn bearer_only() -> Self {
        Self {
            bearer: true,
            x_api_key: false,
            query_param: false,
        }
    }

    /// Every source: Bearer, `X-API-Key` and `?api_key=`.
    ///
    /// ```
    /// assert!(keygate_axum::KeySources::all().query_param());
    /// ```
    pub const fn all() -> Self {
        Self {
            bearer: true,
            x_api_key: true,
            query_param: true,
        }
    }

    /// Also accept the `X-API-Key` header.
    ///
    /// ```
    /// assert!(keygate_axum::KeySources::default().with_x_api_key().x_api_key());
    /// ```
    pub const fn with_x_api_key(mut self) -> Self {
        self.x_api_key = true;
        self
    }

    /// Also accept the `api_key` query parameter.
    ///
    /// ```
    /// assert!(keygate_axum::KeySources::default().with_query_param().query_param());
    /// ```
    pub const fn with_query_param(mut self) -> Self {
        self.query_param = true;
        self
    }

    /// Stop accepting `Authorization: Bearer` (for APIs that use it for
    /// something else).
    ///
    /// ```
    /// let s = keygate_axum::KeySources::default().with_x_api_key().without_bearer();
    /// assert!(!s.bearer());
    /// ```
    pub const fn without_bearer(mut self) -> Self {
        self.bearer = false;
        self
    }

    /// True when `Authorization: Bearer` is read.
    ///
    /// ```
    /// assert!(keygate_axum::KeySources::default().bearer());
    /// ```
    pub const fn bearer(&self) -> bool {
        self.bearer
    }

    /// True when `X-API-Key` is read.
    ///
    /// ```
    /// assert!(!keygate_axum::KeySources::default().x_api_key());
    /// ```
    pub const fn x_api_key(&self) -> bool {
        self.x_api_key
    }

    /// True when `?api_key=` is read.
    ///
    /// ```
    /// assert!(!keygate_axum::KeySources::default().query_param());
    /// ```
    pub const fn query_param(&self) -> bool {
        self.query_param
    }

    /// The presented key, from the first enabled source that carries one.
    /// `Ok(None)` when no source does; [`Error::InvalidKey`] (401) when a
    /// source carries bytes that are not text; 400 when an enabled source
    /// appears more than once (two `Authorization` headers, two `X-API-Key`
    /// headers, two `api_key` parameters): which one counts would be a
    /// guess, and a proxy and the server could guess differently.
    ///
    /// ```
    /// use axum::http::{HeaderMap, Uri};
    /// use keygate_axum::KeySources;
    /// let mut headers = HeaderMap::new();
    /// headers.insert("authorization", "bearer ak_v1-abc-def".parse().unwrap());
    /// let uri: Uri = "/x".parse().unwrap();
    /// let key = KeySources::default().find(&headers, &uri).unwrap();
    /// assert_eq!(key.as_deref(), Some("ak_v1-abc-def"));
    ///
    /// headers.append("authorization", "Bearer ak_v1-other-key".parse().unwrap());
    /// let twice = KeySources::default().find(&headers, &uri).unwrap_err();
    /// assert_eq!(twice.status(), axum::http::StatusCode::BAD_REQUEST);
    /// ```
    pub fn find<'a>(
        &self,
        headers: &'a HeaderMap,
        uri: &'a Uri,
    ) -> Result<Option<Cow<'a, str>>, ApiError> {
        self.refuse_repeated(headers, uri)?;
        if self.bearer {
            // One look-up for both: was it sent twice (400), and its value.
            let mut values = headers.get_all(AUTHORIZATION).iter();
            if let Some(value) = values.next() {
                if values.next().is_some() {
                    return Err(repeated("Authorization header"));
                }
                let value = header_text(value)?;
                if let Some(token) = bearer_token(value) {
                    return Ok(Some(Cow::Borrowed(token)));
                }
            }
        }
        if self.x_api_key {
            if let Some(value) = headers.get(X_API_KEY) {
                let value = header_text(value)?.trim_ascii();
                if !value.is_empty() {
                    return Ok(Some(Cow::Borrowed(value)));
                }
            }
        }
        if self.query_param {
            if let Some(value) = query_value(uri.query().unwrap_or(""), API_KEY_PARAM) {
                if !value.trim().is_empty() {
                    return Ok(Some(value));
                }
            }
        }
        Ok(None)
    }
}

impl KeySources {
    /// 400 when an enabled source is present more than once.
    fn refuse_repeated(&self, headers: &HeaderMap, uri: &Uri) -> Result<(), ApiError> {
        let twice = |name: HeaderName| headers.get_all(name).iter().nth(1).is_some();
        // (A repeated Authorization header is caught by `find` itself.)
        let repeated = if self.x_api_key && twice(HeaderName::from_static(X_API_KEY)) {
            Some("X-API-Key header")
        } else if self.query_param
            && form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .filter(|(k, _)| k == API_KEY_PARAM)
                .nth(1)
                .is_some()
        {
            Some("api_key query parameter")
        } else {
            None
        };
        repeated.map_or(Ok(()), |what| Err(self::repeated(what)))
    }
}

/// The 400 for a source sent more than once.
fn repeated(what: &str) -> ApiError {
    ApiError::bad_request(
        StatusCode::BAD_REQUEST,
        format!("More than one {what}: send the API key once"),
    )
}

/// A header value as text. Plain UTF-8 validation, which is word-at-a-time
/// on ASCII (`HeaderValue::to_str` checks byte by byte for visible ASCII);
/// anything but a key's characters is refused by key parsing all the same.
fn header_text(value: &axum::http::HeaderValue) -> Result<&str, Error> {
    std::str::from_utf8(value.as_bytes()).map_err(|_| Error::InvalidKey)
}

/// The token of `Bearer <token>`, scheme case-insensitive, ASCII spaces
/// around the token ignored; `None` for other schemes or an empty token.
fn bearer_token(value: &str) -> Option<&str> {
    const SCHEME: &str = "bearer ";
    let value = value.trim_ascii_start();
    let scheme = value.get(..SCHEME.len())?;
    let token = value[SCHEME.len()..].trim_ascii();
    (scheme.eq_ignore_ascii_case(SCHEME) && !token.is_empty()).then_some(token)
}

/// The first value of `name` in a query string, percent-decoded. Malformed
/// escapes stay as they are (and then fail key parsing as invalid).
fn query_value<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn try_find(
        sources: KeySources,
        headers: &[(&str, &str)],
        uri: &str,
    ) -> Result<Option<String>, ApiError> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let uri: Uri = uri.parse().unwrap();
        Ok(sources.find(&map, &uri)?.map(Cow::into_owned))
    }

    fn find(sources: KeySources, headers: &[(&str, &str)], uri: &str) -> Option<String> {
        try_find(sources, headers, uri).unwrap()
    }

    #[test]
    fn a_source_given_twice_is_400() {
        let twice = [
            (
                KeySources::default(),
                vec![("authorization", "Bearer a"), ("authorization", "Bearer b")],
                "/",
            ),
            // Whatever the schemes: which header counts would be a guess.
            (
                KeySources::default(),
                vec![("authorization", "Basic a"), ("authorization", "Bearer b")],
                "/",
            ),
            (
                KeySources::default().with_x_api_key(),
                vec![("x-api-key", "a"), ("X-API-Key", "a")],
                "/",
            ),
            (KeySources::all(), vec![], "/?api_key=a&x=1&api_key=b"),
        ];
        for (sources, headers, uri) in twice {
            let e = try_find(sources, &headers, uri).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{headers:?} {uri}");
        }
        // A source that is not enabled is not looked at.
        let ignored = [("x-api-key", "a"), ("x-api-key", "b")];
        assert_eq!(
            find(KeySources::default(), &ignored, "/?api_key=1&api_key=2"),
            None
        );
        // One of each source is fine: Bearer wins.
        let each = [("authorization", "Bearer a"), ("x-api-key", "b")];
        assert_eq!(
            find(KeySources::all(), &each, "/?api_key=c"),
            Some("a".into())
        );
    }

    #[test]
    fn bearer_tokens_are_the_text_after_one_scheme_and_spaces() {
        for (value, token) in [
            ("Bearer k", Some("k")),
            ("  Bearer   k  ", Some("k")),
            ("bearer k l", Some("k l")),
            ("Bearer", None),
            ("Bearer ", None),
            ("Bearer    ", None),
            ("Bearer\tk", None),
            ("Bearerk", None),
            ("Bear k", None),
            ("Basic k", None),
            ("Béarer k", None),
            ("", None),
            ("Bearer \tk\t", Some("k")),
            // Only ASCII spaces are trimmed: this token then fails parsing.
            ("Bearer k\u{a0}", Some("k\u{a0}")),
        ] {
            assert_eq!(bearer_token(value), token, "{value:?}");
        }
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let header = format!("{scheme} k-1-2");
            assert_eq!(
                find(KeySources::default(), &[("authorization", &header)], "/"),
                Some("k-1-2".into())
            );
        }
        assert_eq!(
            find(
                KeySources::default(),
                &[("authorization", "Basic abc")],
                "/"
            ),
            None
        );
        assert_eq!(
            find(KeySources::default(), &[("authorization", "Bearer ")], "/"),
            None
        );
    }

    #[test]
    fn opt_in_sources_are_ignored_unless_enabled() {
        let h = [("x-api-key", "k-1-2")];
        assert_eq!(find(KeySources::default(), &h, "/?api_key=q"), None);
        assert_eq!(
            find(KeySources::default().with_x_api_key(), &h, "/"),
            Some("k-1-2".into())
        );
        assert_eq!(
            find(
                KeySources::default().with_query_param(),
                &[],
                "/?a=1&api_key=k%2D1-2"
            ),
            Some("k-1-2".into())
        );
    }

    #[test]
    fn bearer_wins_over_other_sources() {
        let h = [("authorization", "Bearer first"), ("x-api-key", "second")];
        assert_eq!(
            find(KeySources::all(), &h, "/?api_key=third"),
            Some("first".into())
        );
    }

    #[test]
    fn bad_percent_encoding_never_yields_a_key() {
        let uri: Uri = "/?api_key=%zz".parse().unwrap();
        let headers = HeaderMap::new();
        let found = KeySources::all().find(&headers, &uri).unwrap();
        assert_eq!(found.as_deref(), Some("%zz"));
        assert!(keygate::KeyFormat::default().parse("%zz").is_err());
    }
}
