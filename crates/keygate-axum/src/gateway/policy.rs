//! Gateway policies: which forwarded requests need which scopes, read
//! from TOML.

use std::fmt;
use std::ops::Range;

use keygate::{is_valid_scope, MAX_COST};
use serde::Deserialize;
use toml::Spanned;

/// What happens to a request no route matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DefaultAction {
    /// 403, whatever key it carries (`default = "deny"`, the default).
    #[default]
    Deny,
    /// 200 **without looking at any key** (`default = "allow"`): for
    /// public paths beside protected ones. Nothing identifies the caller
    /// to the upstream then.
    Allow,
}

impl DefaultAction {
    /// `"deny"` or `"allow"`, as written in a policy.
    ///
    /// ```
    /// assert_eq!(keygate_axum::gateway::DefaultAction::Allow.as_str(), "allow");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deny => "deny",
            Self::Allow => "allow",
        }
    }
}

/// A policy file that is not valid: where, and why.
///
/// ```
/// use keygate_axum::gateway::Policy;
/// let e = Policy::from_toml_str("[[route]]\npath = \"reports\"\n").unwrap_err();
/// assert_eq!((e.line, e.column), (2, 8));
/// assert!(e.reason.contains("must start with `/`"), "{e}");
/// assert!(e.to_string().starts_with("line 2, column 8: "));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based line of the offending text.
    pub line: usize,
    /// 1-based column (in characters) of the offending text.
    pub column: usize,
    /// What is wrong, in one line.
    pub reason: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.reason
        )
    }
}

impl std::error::Error for PolicyError {}

/// One `[[route]]`: methods, a path pattern, the scopes a key needs and
/// what a request costs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    methods: Option<Vec<String>>,
    pattern: PathPattern,
    scopes: Vec<String>,
    cost: u64,
    line: usize,
}

impl Route {
    /// The methods it matches; `None` when `methods` was left out (every
    /// method).
    pub fn methods(&self) -> Option<&[String]> {
        self.methods.as_deref()
    }

    /// The path pattern as written (`/reports/*`).
    pub fn path(&self) -> &str {
        &self.pattern.text
    }

    /// Scopes the key must all hold (none: any valid key).
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// What one request takes from the key's rate limits and credits.
    pub fn cost(&self) -> u64 {
        self.cost
    }

    /// The line of the policy file where the route is declared.
    pub fn line(&self) -> usize {
        self.line
    }

    /// True when `method` and the normalized `path` (see
    /// [`normalize_path`](super::normalize_path)) match the route.
    /// Case-sensitive, both.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|m| m.iter().any(|m| m == method))
            && self.pattern.matches(path)
    }
}

impl fmt::Display for Route {
    /// `GET,HEAD /reports/* scopes=read cost=1`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.methods {
            Some(m) => f.write_str(&m.join(","))?,
            None => f.write_str("*")?,
        }
        write!(f, " {} scopes=", self.pattern.text)?;
        if self.scopes.is_empty() {
            f.write_str("(any valid key)")?;
        } else {
            f.write_str(&self.scopes.join(","))?;
        }
        write!(f, " cost={}", self.cost)
    }
}

/// What the policy says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision<'a> {
    /// The first route that matches: the key must hold its scopes.
    Route(&'a Route),
    /// No route matches: the policy's default.
    Unmatched(DefaultAction),
}

/// A gateway policy: routes tried in order (the first match wins), and
/// what to do with a request none matches.
///
/// ```toml
/// default = "deny"            # unmatched requests: "deny" (403) or "allow"
/// [[route]]
/// methods = ["GET", "HEAD"]   # leave out to match every method
/// path = "/reports/*"         # `*` = one segment, `**` = any rest
/// scopes = ["read"]           # the key needs all of them
/// cost = 1                    # taken from its rate limits and credits (0..=1000)
/// ```
///
/// ```
/// use keygate_axum::gateway::{Decision, DefaultAction, Policy};
/// let policy = Policy::from_toml_str(r#"
///     [[route]]
///     methods = ["GET"]
///     path = "/reports/**"
///     scopes = ["read"]
/// "#).unwrap();
/// assert!(matches!(policy.decide("GET", "/reports/2024/q1"), Decision::Route(r) if r.scopes() == ["read"]));
/// assert_eq!(policy.decide("POST", "/reports/x"), Decision::Unmatched(DefaultAction::Deny));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    default: DefaultAction,
    routes: Vec<Route>,
}

impl Policy {
    /// Parses and validates a policy. Unknown fields, methods that are not
    /// uppercase HTTP tokens, path patterns that could never match (or are
    /// ambiguous), invalid scopes and costs outside 0..=1000 are errors
    /// naming the line and column of the offending value.
    ///
    /// # Errors
    /// The first problem found, as a [`PolicyError`].
    pub fn from_toml_str(text: &str) -> Result<Self, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            error_at(text, &span, e.message().trim().replace('\n', " "))
        })?;
        let default = match &raw.default {
            None => DefaultAction::Deny,
            Some(d) => match d.get_ref().as_str() {
                "deny" => DefaultAction::Deny,
                "allow" => DefaultAction::Allow,
                other => {
                    return Err(error_at(
                        text,
                        &d.span(),
                        format!("default must be \"deny\" or \"allow\", not {other:?}"),
                    ))
                }
            },
        };
        let routes = raw
            .route
            .into_iter()
            .map(|route| Route::validate(text, route))
            .collect::<Result<_, _>>()?;
        Ok(Self { default, routes })
    }

    /// What unmatched requests get.
    pub fn default_action(&self) -> DefaultAction {
        self.default
    }

    /// The routes, in the order they are tried.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The first route matching `method` and the normalized `path`, or the
    /// default.
    pub fn decide(&self, method: &str, path: &str) -> Decision<'_> {
        self.routes
            .iter()
            .find(|r| r.matches(method, path))
            .map_or(Decision::Unmatched(self.default), Decision::Route)
    }
}

impl std::str::FromStr for Policy {
    type Err = PolicyError;
    fn from_str(text: &str) -> Result<Self, PolicyError> {
        Self::from_toml_str(text)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    default: Option<Spanned<String>>,
    #[serde(default)]
    route: Vec<Spanned<RawRoute>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(default)]
    methods: Option<Spanned<Vec<Spanned<String>>>>,
    path: Spanned<String>,
    #[serde(default)]
    scopes: Vec<Spanned<String>>,
    #[serde(default)]
    cost: Option<Spanned<i64>>,
}

impl Route {
    fn validate(text: &str, raw: Spanned<RawRoute>) -> Result<Self, PolicyError> {
        let line = position(text, raw.span().start).0;
        let raw = raw.into_inner();
        let methods = match raw.methods {
            None => None,
            Some(list) => {
                if list.get_ref().is_empty() {
                    return Err(error_at(
                        text,
                        &list.span(),
                        "methods is empty: list some, or leave it out to match every method".into(),
                    ));
                }
                let mut methods: Vec<String> = Vec::with_capacity(list.get_ref().len());
                for method in list.into_inner() {
                    let name = method.get_ref();
                    if let Some(reason) = method_problem(name) {
                        return Err(error_at(text, &method.span(), reason));
                    }
                    if !methods.contains(name) {
                        methods.push(name.clone());
                    }
                }
                Some(methods)
            }
        };
        let pattern = PathPattern::parse(raw.path.get_ref())
            .map_err(|reason| error_at(text, &raw.path.span(), reason))?;
        let mut scopes: Vec<String> = Vec::with_capacity(raw.scopes.len());
        for scope in raw.scopes {
            let name = scope.get_ref();
            if !is_valid_scope(name) {
                return Err(error_at(
                    text,
                    &scope.span(),
                    format!(
                        "invalid scope {name:?}: must match ^[a-z][a-z0-9:_-]*$ (at most 64 characters)"
                    ),
                ));
            }
            if !scopes.contains(name) {
                scopes.push(name.clone());
            }
        }
        let cost = match raw.cost {
            None => 1,
            Some(cost) => u64::try_from(*cost.get_ref())
                .ok()
                .filter(|c| *c <= MAX_COST)
                .ok_or_else(|| {
                    error_at(
                        text,
                        &cost.span(),
                        format!("cost {} is out of range: 0 to {MAX_COST}", cost.get_ref()),
                    )
                })?,
        };
        Ok(Self {
            methods,
            pattern,
            scopes,
            cost,
            line,
        })
    }
}

/// Why `method` cannot be a method of a route, if it cannot.
fn method_problem(method: &str) -> Option<String> {
    if method == "*" {
        return Some("\"*\" is not a method: leave methods out to match every method".into());
    }
    let token = !method.is_empty()
        && method
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        return Some(format!("invalid method {method:?}: not an HTTP token"));
    }
    if method.bytes().any(|b| b.is_ascii_lowercase()) {
        return Some(format!(
            "invalid method {method:?}: methods are case-sensitive, write {:?}",
            method.to_ascii_uppercase()
        ));
    }
    None
}

/// A path pattern: literal segments, `*` (exactly one segment) and a
/// final `**` (the rest of the path: zero or more segments). One trailing
/// slash is ignored, in patterns and in paths.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PathPattern {
    text: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Rest,
}

impl PathPattern {
    fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("path {text:?} must start with `/`"));
        };
        if let Some(c) = text
            .chars()
            .find(|c| c.is_control() || matches!(c, '?' | '#' | '\\'))
        {
            return Err(format!(
                "path {text:?} contains {c:?}: patterns match the path alone (no query, no fragment, no backslash)"
            ));
        }
        if has_escape(text) {
            return Err(format!(
                "path {text:?} contains a percent-escape: patterns match the decoded path, write the character itself"
            ));
        }
        if text.contains("//") {
            return Err(format!(
                "path {text:?} has an empty segment (`//`): such paths are refused, so it would never match"
            ));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut segments = Vec::new();
        if !rest.is_empty() {
            let parts: Vec<&str> = rest.split('/').collect();
            for (i, part) in parts.iter().enumerate() {
                let segment = match *part {
                    "." | ".." => {
                        return Err(format!(
                            "path {text:?} has a dot segment: paths are matched after dot segments are removed, so it would never match"
                        ))
                    }
                    "**" if i + 1 == parts.len() => Segment::Rest,
                    "**" => {
                        return Err(format!(
                            "path {text:?}: `**` may only be the last segment"
                        ))
                    }
                    "*" => Segment::One,
                    literal if literal.contains('*') => {
                        return Err(format!(
                            "path {text:?}: `*` must be a whole segment (`*` = one segment, `**` = the rest)"
                        ))
                    }
                    literal => Segment::Literal(literal.to_owned()),
                };
                segments.push(segment);
            }
        }
        Ok(Self {
            text: text.to_owned(),
            segments,
        })
    }

    /// `path` is normalized: it starts with `/` and has no empty segment
    /// but a trailing one.
    fn matches(&self, path: &str) -> bool {
        let rest = path.strip_prefix('/').unwrap_or(path);
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let mut parts = rest.split('/').filter(|p| !p.is_empty());
        for segment in &self.segments {
            match segment {
                Segment::Rest => return true,
                Segment::One => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Segment::Literal(literal) => {
                    if parts.next() != Some(literal.as_str()) {
                        return false;
                    }
                }
            }
        }
        parts.next().is_none()
    }
}

/// True when `text` holds `%` followed by two hex digits.
fn has_escape(text: &str) -> bool {
    text.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1].is_ascii_hexdigit() && w[2].is_ascii_hexdigit())
}

fn error_at(text: &str, span: &Range<usize>, reason: String) -> PolicyError {
    let (line, column) = position(text, span.start);
    PolicyError {
        line,
        column,
        reason,
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"default = "deny"            # unmatched requests: "deny" (403) or "allow"
[[route]]
methods = ["GET", "HEAD"]
path = "/reports/*"         # `*` = one segment, `**` = any rest
scopes = ["read"]
cost = 1
[[route]]
methods = ["POST", "PUT", "PATCH", "DELETE"]
path = "/reports/**"
scopes = ["write"]
"#;

    fn err(text: &str) -> PolicyError {
        Policy::from_toml_str(text).expect_err(text)
    }

    fn route<'a>(policy: &'a Policy, method: &str, path: &str) -> Option<&'a str> {
        match policy.decide(method, path) {
            Decision::Route(r) => Some(r.path()),
            Decision::Unmatched(_) => None,
        }
    }

    #[test]
    fn gateway_policy_spec_example_parses() {
        let policy = Policy::from_toml_str(EXAMPLE).unwrap();
        assert_eq!(policy.default_action(), DefaultAction::Deny);
        let routes = policy.routes();
        assert_eq!(routes.len(), 2);
        assert_eq!(routes[0].methods().unwrap(), ["GET", "HEAD"]);
        assert_eq!(routes[0].path(), "/reports/*");
        assert_eq!(routes[0].scopes(), ["read"]);
        assert_eq!(routes[0].cost(), 1);
        assert_eq!(routes[1].scopes(), ["write"]);
        assert_eq!(routes[1].cost(), 1, "cost defaults to 1");
        assert_eq!((routes[0].line(), routes[1].line()), (2, 7));
        assert_eq!(
            routes[0].to_string(),
            "GET,HEAD /reports/* scopes=read cost=1"
        );
        // Nothing at all: deny everything.
        let empty = Policy::from_toml_str("").unwrap();
        assert_eq!(empty, Policy::default());
        assert_eq!(
            empty.decide("GET", "/"),
            Decision::Unmatched(DefaultAction::Deny)
        );
        let open = Policy::from_toml_str("default = \"allow\"").unwrap();
        assert_eq!(open.default_action(), DefaultAction::Allow);
    }

    #[test]
    fn gateway_policy_errors_name_line_and_column() {
        for (text, line, column, says) in [
            (
                "default = \"deny\"\n[[route]]\npath = \"/a\"\nmetods = [\"GET\"]\n",
                4,
                1,
                "unknown field `metods`",
            ),
            ("bogus = 1\n", 1, 1, "unknown field `bogus`"),
            (
                "default = \"open\"\n",
                1,
                11,
                "default must be \"deny\" or \"allow\"",
            ),
            ("default = \"deny\n", 1, 16, "invalid basic string"),
            (
                "[[route]]\nmethods = [\"GET\"]\n",
                1,
                1,
                "missing field `path`",
            ),
            (
                "[[route]]\npath = \"/a\"\nmethods = [\"get\"]\n",
                3,
                12,
                "write \"GET\"",
            ),
            (
                "[[route]]\npath = \"/a\"\nmethods = [\"GET\", \"BAD METHOD\"]\n",
                3,
                19,
                "not an HTTP token",
            ),
            (
                "[[route]]\npath = \"/a\"\nmethods = [\"*\"]\n",
                3,
                12,
                "leave methods out",
            ),
            (
                "[[route]]\npath = \"/a\"\nmethods = []\n",
                3,
                11,
                "methods is empty",
            ),
            (
                "[[route]]\npath = \"/a\"\nmethods = \"GET\"\n",
                3,
                11,
                "expected a sequence",
            ),
            ("[[route]]\npath = \"a/b\"\n", 2, 8, "must start with `/`"),
            (
                "[[route]]\npath = \"/a/**/b\"\n",
                2,
                8,
                "`**` may only be the last segment",
            ),
            ("[[route]]\npath = \"/a//b\"\n", 2, 8, "empty segment"),
            ("[[route]]\npath = \"//\"\n", 2, 8, "empty segment"),
            ("[[route]]\npath = \"/a/../b\"\n", 2, 8, "dot segment"),
            ("[[route]]\npath = \"/a/x*\"\n", 2, 8, "whole segment"),
            ("[[route]]\npath = \"/a?x=1\"\n", 2, 8, "no query"),
            ("[[route]]\npath = \"/a%20b\"\n", 2, 8, "percent-escape"),
            (
                "\n\n[[route]]\npath = \"/a\"\nscopes = [\"read\", \"Write\"]\n",
                5,
                19,
                "invalid scope \"Write\"",
            ),
            (
                "[[route]]\npath = \"/a\"\ncost = 1001\n",
                3,
                8,
                "cost 1001 is out of range: 0 to 1000",
            ),
            (
                "[[route]]\npath = \"/a\"\ncost = -1\n",
                3,
                8,
                "cost -1 is out of range",
            ),
            (
                "[[route]]\npath = \"/a\"\ncost = \"5\"\n",
                3,
                8,
                "invalid type",
            ),
            ("[route]\npath = \"/a\"\n", 1, 1, "expected a sequence"),
        ] {
            let e = err(text);
            assert_eq!((e.line, e.column), (line, column), "{text:?}: {e}");
            assert!(e.reason.contains(says), "{text:?}: {e}");
            assert!(!e.reason.contains('\n'), "{text:?}: one line: {e:?}");
        }
        // Costs at the bounds are fine.
        for cost in [0, 1000] {
            let text = format!("[[route]]\npath = \"/a\"\ncost = {cost}\n");
            assert_eq!(
                Policy::from_toml_str(&text).unwrap().routes()[0].cost(),
                cost
            );
        }
    }

    #[test]
    fn gateway_policy_matches_segments() {
        let policy = Policy::from_toml_str(
            r#"
            [[route]]
            methods = ["GET"]
            path = "/"
            [[route]]
            methods = ["GET"]
            path = "/reports/*"
            [[route]]
            methods = ["GET"]
            path = "/files/**"
            [[route]]
            methods = ["GET"]
            path = "/users/*/keys/"
            [[route]]
            path = "/**"
            scopes = ["admin"]
            "#,
        )
        .unwrap();
        for (path, want) in [
            ("/", "/"),
            ("/reports/x", "/reports/*"),
            ("/reports/x/", "/reports/*"),
            // `*` is exactly one segment.
            ("/reports", "/**"),
            ("/reports/", "/**"),
            ("/reports/x/y", "/**"),
            // `**` is any rest, none included.
            ("/files", "/files/**"),
            ("/files/", "/files/**"),
            ("/files/a", "/files/**"),
            ("/files/a/b/c", "/files/**"),
            ("/filesx", "/**"),
            ("/users/7/keys", "/users/*/keys/"),
            ("/users/7/keys/", "/users/*/keys/"),
            ("/users/7/keys/1", "/**"),
            // Case-sensitive.
            ("/REPORTS/x", "/**"),
            ("/Files/a", "/**"),
            ("/reports/%2e%2e", "/reports/*"),
        ] {
            assert_eq!(route(&policy, "GET", path), Some(want), "GET {path}");
        }
        // Methods are exact and case-sensitive; a route without methods takes all.
        assert_eq!(route(&policy, "POST", "/reports/x"), Some("/**"));
        assert_eq!(route(&policy, "get", "/reports/x"), Some("/**"));
    }

    #[test]
    fn gateway_policy_first_match_wins_and_default_applies() {
        let policy = Policy::from_toml_str(
            r#"
            default = "allow"
            [[route]]
            methods = ["GET", "HEAD"]
            path = "/reports/*"
            scopes = ["read"]
            cost = 3
            [[route]]
            methods = ["GET", "POST"]
            path = "/reports/**"
            scopes = ["write", "read", "write"]
            "#,
        )
        .unwrap();
        let Decision::Route(first) = policy.decide("GET", "/reports/a") else {
            panic!("no match")
        };
        assert_eq!(
            (first.scopes(), first.cost()),
            (&["read".to_owned()][..], 3)
        );
        let Decision::Route(second) = policy.decide("POST", "/reports/a") else {
            panic!("no match")
        };
        assert_eq!(second.scopes(), ["write", "read"], "duplicates dropped");
        assert_eq!(
            policy.decide("HEAD", "/reports/a/b"),
            Decision::Unmatched(DefaultAction::Allow)
        );
        assert_eq!(
            policy.decide("DELETE", "/reports/a"),
            Decision::Unmatched(DefaultAction::Allow)
        );
        assert_eq!(
            policy.decide("GET", "/admin"),
            Decision::Unmatched(DefaultAction::Allow)
        );
    }

    #[test]
    fn gateway_policy_positions_count_characters() {
        assert_eq!(position("ab\ncd", 0), (1, 1));
        assert_eq!(position("ab\ncd", 3), (2, 1));
        assert_eq!(position("ab\ncd", 4), (2, 2));
        assert_eq!(position("é\nx", 1), (1, 1));
        assert_eq!(position("éa", 2), (1, 2));
        assert_eq!(position("ab", 99), (1, 3));
    }
}
