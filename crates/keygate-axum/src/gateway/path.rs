//! The forwarded request's path as the policy sees it: query dropped,
//! percent-decoded once, dot segments removed (RFC 3986 §5.2.4), and
//! everything that two HTTP servers could read two ways refused.

use std::fmt;

/// Why a forwarded path is refused (the gateway answers 403: nginx turns
/// any other refusal of an auth request into a 500).
///
/// Each of these is a path that some server between the client and the
/// service could resolve differently from the policy, so it is not
/// matched at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PathRefusal {
    /// The URI does not start with `/` (e.g. `*`, or an absolute URI).
    NotAbsolute,
    /// A `%` not followed by two hexadecimal digits.
    BadEscape,
    /// `%2F`: a slash that is not a separator here, and may be one upstream.
    EncodedSlash,
    /// A backslash, raw or as `%5C`: a separator for some servers.
    Backslash,
    /// A control character (NUL included), raw or percent-encoded.
    ControlCharacter,
    /// The decoded bytes are not UTF-8 (e.g. the overlong `%C0%AE`).
    NotUtf8,
    /// An empty segment (`//`) anywhere but at the end.
    EmptySegment,
    /// A segment that is a dot segment once a `;` parameter is cut off
    /// (`..;x`, `.;x`): Java servlet containers read it as `..`.
    DotSegmentWithParameter,
    /// More `..` segments than there are segments to climb out of.
    AboveRoot,
}

impl PathRefusal {
    /// The reason in a few words, for the `detail` of the 403 and the logs.
    ///
    /// ```
    /// use keygate_axum::gateway::{normalize_path, PathRefusal};
    /// assert_eq!(normalize_path("/a/%2F"), Err(PathRefusal::EncodedSlash));
    /// assert_eq!(PathRefusal::EncodedSlash.reason(), "encoded slash (%2F) in the path");
    /// ```
    pub fn reason(self) -> &'static str {
        match self {
            Self::NotAbsolute => "the forwarded URI is not an absolute path",
            Self::BadEscape => "malformed percent-encoding in the path",
            Self::EncodedSlash => "encoded slash (%2F) in the path",
            Self::Backslash => "backslash in the path",
            Self::ControlCharacter => "control character in the path",
            Self::NotUtf8 => "the decoded path is not UTF-8",
            Self::EmptySegment => "empty path segment (//)",
            Self::DotSegmentWithParameter => "dot segment with a ; parameter in the path",
            Self::AboveRoot => "the path climbs above /",
        }
    }
}

impl fmt::Display for PathRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for PathRefusal {}

/// The path of a request target as policies match it.
///
/// 1. The query (`?…`) and any fragment (`#…`) are dropped.
/// 2. The path is percent-decoded **once**: `%252e` becomes the literal
///    segment `%2e`, never a dot. Refused: a malformed escape, `%2F`, a
///    backslash (raw or `%5C`), a control character (raw or encoded, NUL
///    included), bytes that do not decode to UTF-8.
/// 3. Dot segments are removed (RFC 3986 §5.2.4): `/a/./b` → `/a/b`,
///    `/a/b/../c` → `/a/c`, `/a/.` → `/a/`. Refused: a `..` that climbs
///    above `/`, an empty segment (`//`) anywhere but at the very end,
///    and `..;x` / `.;x` (a dot segment for servlet containers).
///
/// Case is kept: matching is case-sensitive.
///
/// ```
/// use keygate_axum::gateway::{normalize_path, PathRefusal};
/// assert_eq!(normalize_path("/reports/../admin?x=1").as_deref(), Ok("/admin"));
/// assert_eq!(normalize_path("/reports/%2e%2e/admin").as_deref(), Ok("/admin"));
/// assert_eq!(normalize_path("/reports/%252e%252e/x").as_deref(), Ok("/reports/%2e%2e/x"));
/// assert_eq!(normalize_path("//admin"), Err(PathRefusal::EmptySegment));
/// assert_eq!(normalize_path("/../admin"), Err(PathRefusal::AboveRoot));
/// ```
///
/// # Errors
/// The [`PathRefusal`] of a path that must not be matched.
pub fn normalize_path(target: &str) -> Result<String, PathRefusal> {
    let end = target.find(['?', '#']).unwrap_or(target.len());
    let raw = &target[..end];
    if !raw.starts_with('/') {
        return Err(PathRefusal::NotAbsolute);
    }
    let decoded = decode(raw.as_bytes())?;
    let decoded = String::from_utf8(decoded).map_err(|_| PathRefusal::NotUtf8)?;
    remove_dot_segments(&decoded)
}

/// Percent-decodes `raw` once, refusing what must not reach the matcher.
fn decode(raw: &[u8]) -> Result<Vec<u8>, PathRefusal> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let byte = raw[i];
        let decoded = if byte == b'%' {
            let hi = raw.get(i + 1).copied().and_then(hex);
            let lo = raw.get(i + 2).copied().and_then(hex);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathRefusal::BadEscape);
            };
            i += 3;
            let b = hi << 4 | lo;
            if b == b'/' {
                return Err(PathRefusal::EncodedSlash);
            }
            b
        } else {
            i += 1;
            byte
        };
        match decoded {
            b'\\' => return Err(PathRefusal::Backslash),
            0..=0x1f | 0x7f => return Err(PathRefusal::ControlCharacter),
            _ => out.push(decoded),
        }
    }
    Ok(out)
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §5.2.4 on a decoded absolute path, refusing `//`, climbs
/// above the root and dot segments with parameters.
fn remove_dot_segments(path: &str) -> Result<String, PathRefusal> {
    let rest = &path[1..];
    let mut kept: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    let mut segments = rest.split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        match segment {
            "" if last => trailing_slash = true,
            "" => return Err(PathRefusal::EmptySegment),
            "." => trailing_slash = last,
            ".." => {
                if kept.pop().is_none() {
                    return Err(PathRefusal::AboveRoot);
                }
                trailing_slash = last;
            }
            _ => {
                let before_parameter = segment.split(';').next().unwrap_or(segment);
                if segment.contains(';') && matches!(before_parameter, "." | "..") {
                    return Err(PathRefusal::DotSegmentWithParameter);
                }
                kept.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for segment in &kept {
        out.push('/');
        out.push_str(segment);
    }
    if trailing_slash || kept.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        normalize_path(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn gateway_path_dot_segments_are_removed() {
        for (raw, want) in [
            ("/", "/"),
            ("/reports/x", "/reports/x"),
            ("/reports/x/", "/reports/x/"),
            ("/reports/./x", "/reports/x"),
            ("/reports/../admin", "/admin"),
            ("/reports/x/..", "/reports/"),
            ("/reports/x/.", "/reports/x/"),
            ("/reports/.", "/reports/"),
            ("/reports/..", "/"),
            ("/a/b/c/../../d", "/a/d"),
            ("/.", "/"),
            ("/reports/%2e%2e/admin", "/admin"),
            ("/reports/%2E%2e/admin", "/admin"),
            ("/reports/%2e/x", "/reports/x"),
            ("/reports/.../x", "/reports/.../x"),
            ("/reports/..x/y", "/reports/..x/y"),
            ("/reports/x;v=1", "/reports/x;v=1"),
            // Decoded once: the upstream decodes once too and sees `%2e`.
            ("/reports/%252e%252e/admin", "/reports/%2e%2e/admin"),
            ("/reports/%252e/x", "/reports/%2e/x"),
            ("/reports/%252F", "/reports/%2F"),
            // Query and fragment are not part of the path.
            ("/reports/x?y=/../../admin", "/reports/x"),
            ("/reports/x#frag", "/reports/x"),
            ("/a%20b/%C3%A9", "/a b/é"),
            ("/REPORTS/x", "/REPORTS/x"),
        ] {
            assert_eq!(ok(raw), want, "{raw}");
        }
    }

    #[test]
    fn gateway_path_tricks_are_refused() {
        use PathRefusal::*;
        for (raw, why) in [
            ("", NotAbsolute),
            ("*", NotAbsolute),
            ("http://host/admin", NotAbsolute),
            ("reports/x", NotAbsolute),
            ("//admin", EmptySegment),
            ("/reports//x", EmptySegment),
            ("/reports/x//", EmptySegment),
            ("/..", AboveRoot),
            ("/../admin", AboveRoot),
            ("/reports/../../admin", AboveRoot),
            ("/%2e%2e/admin", AboveRoot),
            ("/reports%2Fx", EncodedSlash),
            ("/reports%2fx", EncodedSlash),
            ("/reports/%2F..%2Fadmin", EncodedSlash),
            ("/reports%5Cx", Backslash),
            ("/reports%5cx", Backslash),
            ("/reports\\..\\admin", Backslash),
            ("/reports/%00", ControlCharacter),
            ("/reports/%0a", ControlCharacter),
            ("/reports/%7F", ControlCharacter),
            ("/reports/a\tb", ControlCharacter),
            ("/reports/%", BadEscape),
            ("/reports/%2", BadEscape),
            ("/reports/%zz", BadEscape),
            ("/reports/%C0%AE%C0%AE/admin", NotUtf8),
            ("/reports/%ff", NotUtf8),
            ("/reports/..;/admin", DotSegmentWithParameter),
            ("/reports/.;x/admin", DotSegmentWithParameter),
            ("/reports/%2e%2e;/admin", DotSegmentWithParameter),
        ] {
            assert_eq!(normalize_path(raw), Err(why), "{raw:?}");
        }
    }
}
