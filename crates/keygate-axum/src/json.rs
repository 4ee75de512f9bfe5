//! Reading a request body as JSON: syntax errors are 400; a body that is
//! not an object, a key given twice in one object, or a field of the
//! wrong shape are 422 naming the field.

use std::collections::HashSet;
use std::fmt;

use axum::http::StatusCode;
use keygate::{Error, FieldError};
use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// `bytes` as `T`, every problem as an [`ApiError`].
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Syntax first, so a truncated body is "malformed", never a field error.
    let duplicate = first_duplicate_key(bytes).map_err(|e| malformed(&e))?;
    let mut value: Value = serde_json::from_slice(bytes).map_err(|e| malformed(&e))?;
    // Every body is an object; serde would also read a struct from an
    // array (`[60]` as `{"grace_seconds": 60}`).
    let Some(object) = value.as_object_mut() else {
        return Err(Error::validation("", "the body must be a JSON object").into());
    };
    integral_floats_as_integers(object);
    // serde_json keeps the last of two equal keys: `{"scopes": ["read"],
    // "scopes": ["keygate:admin"]}` would be read as the admin scope by
    // keygate and maybe as `read` by a proxy or a log reader in front of it.
    if let Some(field) = duplicate {
        return Err(Error::validation(field, "is given more than once in the same object").into());
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let message = strip_position(&e.inner().to_string());
        let field = field_path(e.path(), &message);
        Error::Validation(vec![FieldError::new(field, message)]).into()
    })
}

/// JSON (and JSON Schema) count `16.0` as the integer 16; serde refuses
/// it for an integer field. Numbers without a fractional part become
/// integers at any depth (`credits.remaining`, `rate_limits[0].limit`),
/// except under the top-level `meta`, the application's own data, which is
/// stored exactly as sent.
fn integral_floats_as_integers(object: &mut Map<String, Value>) {
    for (key, value) in object.iter_mut() {
        if key != "meta" {
            integral_float_as_integer(value);
        }
    }
}

fn integral_float_as_integer(value: &mut Value) {
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    match value {
        Value::Array(items) => items.iter_mut().for_each(integral_float_as_integer),
        Value::Object(object) => object.values_mut().for_each(integral_float_as_integer),
        Value::Number(n) if n.is_f64() => {
            let Some(f) = n.as_f64() else { return };
            // In range, the casts are exact: `f` is an integer below 2^64.
            if f.fract() == 0.0 && (0.0..2.0 * TWO_POW_63).contains(&f) {
                *value = Value::from(f as u64);
            } else if f.fract() == 0.0 && (-TWO_POW_63..0.0).contains(&f) {
                *value = Value::from(f as i64);
            }
        }
        _ => {}
    }
}

/// Reads the whole document (trailing characters included) and returns the
/// dotted path (`meta.plan`, `scopes`) of the first key that appears twice
/// in one object, at any depth. Keys are compared after unescaping, as
/// serde_json compares them when it builds a map.
fn first_duplicate_key(bytes: &[u8]) -> Result<Option<String>, serde_json::Error> {
    let mut found = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    DuplicateKeys {
        path: String::new(),
        found: &mut found,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(found)
}

/// A visitor that walks any JSON value (serde_json's recursion limit
/// applies) and records the first repeated object key.
struct DuplicateKeys<'a> {
    /// Where the value being read sits.
    path: String,
    found: &'a mut Option<String>,
}

fn child(path: &str, segment: &str) -> String {
    if path.is_empty() {
        segment.to_owned()
    } else {
        format!("{path}.{segment}")
    }
}

impl<'de> DeserializeSeed<'de> for DuplicateKeys<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for DuplicateKeys<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Self { path, found } = self;
        let mut index = 0usize;
        loop {
            let item = DuplicateKeys {
                path: child(&path, &index.to_string()),
                found: &mut *found,
            };
            if seq.next_element_seed(item)?.is_none() {
                return Ok(());
            }
            index += 1;
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Self { path, found } = self;
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = child(&path, &key);
            if !seen.insert(key) && found.is_none() {
                *found = Some(at.clone());
            }
            map.next_value_seed(DuplicateKeys {
                path: at,
                found: &mut *found,
            })?;
        }
        Ok(())
    }
}

fn malformed(e: &serde_json::Error) -> ApiError {
    ApiError::bad_request(
        StatusCode::BAD_REQUEST,
        format!("Malformed JSON: {}", strip_position(&e.to_string())),
    )
}

/// The field a data error is about, as `a.0.b`. serde reports missing and
/// unknown fields at their parent, naming them in the message.
fn field_path(path: &serde_path_to_error::Path, message: &str) -> String {
    use serde_path_to_error::Segment;
    let mut parts: Vec<String> = path
        .iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(index.to_string()),
            Segment::Map { key } => Some(key.clone()),
            Segment::Enum { variant } => Some(variant.clone()),
            Segment::Unknown => None,
        })
        .collect();
    if message.starts_with("missing field") || message.starts_with("unknown field") {
        if let Some(name) = message.split('`').nth(1) {
            if parts.last().map(String::as_str) != Some(name) {
                parts.push(name.to_owned());
            }
        }
    }
    parts.join(".")
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        scopes: Option<Vec<String>>,
        meta: Option<serde_json::Value>,
    }

    fn field_of(json: &str) -> String {
        match parse_json::<Body>(json.as_bytes()) {
            Err(ApiError::Keygate(Error::Validation(v))) => v[0].field.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn data_errors_name_the_field() {
        assert_eq!(field_of(r#"{"scopes": []}"#), "name");
        assert_eq!(field_of(r#"{"name": 1}"#), "name");
        assert_eq!(field_of(r#"{"name": "a", "scopes": [1]}"#), "scopes.0");
        assert_eq!(field_of(r#"{"name": "a", "bogus": 1}"#), "bogus");
    }

    #[test]
    fn duplicate_keys_are_422_naming_the_field() {
        for (json, field) in [
            (
                r#"{"name": "a", "scopes": ["read"], "scopes": ["x"]}"#,
                "scopes",
            ),
            (r#"{"name": "a", "name": "a"}"#, "name"),
            // Equal once unescaped.
            (r#"{"name": "a", "n\u0061me": "b"}"#, "name"),
            (
                r#"{"name": "a", "meta": {"p": 1, "q": {"r": 1, "r": 2}}}"#,
                "meta.q.r",
            ),
            (
                r#"{"name": "a", "meta": {"l": [{}, {"k": 1, "k": 1}]}}"#,
                "meta.l.1.k",
            ),
        ] {
            assert_eq!(field_of(json), field, "{json}");
        }
        // The same key in two different objects is fine.
        let ok: Body = parse_json(br#"{"name": "a", "meta": {"name": {"name": 1}}}"#).unwrap();
        assert_eq!(ok.name, "a");
    }

    #[test]
    fn integral_floats_read_as_integers_except_in_meta() {
        #[derive(serde::Deserialize, Debug)]
        struct Page {
            limit: u64,
            offset: i64,
            meta: serde_json::Value,
            #[serde(default)]
            nested: Vec<std::collections::BTreeMap<String, u64>>,
        }
        let page: Page = parse_json(
            br#"{"limit": 16.0, "offset": -2.0, "meta": {"x": 1.0, "l": [2.0]}, "nested": [{"n": 3.0}]}"#,
        )
        .unwrap();
        assert_eq!((page.limit, page.offset), (16, -2));
        assert_eq!(page.meta["x"].to_string(), "1.0");
        assert_eq!(page.meta["l"][0].to_string(), "2.0");
        assert_eq!(page.nested[0]["n"], 3);
        // Large integral floats below 2^53 are read exactly (serde_json's
        // default parsing made this one 4413014293651177.5: a 422 in CI).
        let big: Page = parse_json(
            br#"{"limit": 4413014293651178.0, "offset": -4413014293651178.0, "meta": null}"#,
        )
        .unwrap();
        assert_eq!(
            (big.limit, big.offset),
            (4_413_014_293_651_178, -4_413_014_293_651_178)
        );
        for bad in [
            r#"{"limit": 16.5}"#,
            r#"{"limit": 1e30}"#,
            r#"{"limit": -1.0}"#,
        ] {
            let e = parse_json::<Page>(bad.as_bytes()).unwrap_err();
            assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        }
    }

    #[test]
    fn bodies_are_objects() {
        for bad in [
            "[\"a\", null]",
            "null",
            "\"a\"",
            "1",
            r#"[{"a": 1, "a": 2}]"#,
        ] {
            match parse_json::<Body>(bad.as_bytes()) {
                Err(ApiError::Keygate(Error::Validation(v))) => assert_eq!(v[0].field, "", "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn syntax_errors_are_400() {
        for bad in [
            r#"{"name": "#,
            r#"{"name": "a"} x"#,
            "nope",
            // Malformed wins over a duplicate seen before the error.
            r#"{"name": "a", "name": "#,
            &format!("{}{}", "[".repeat(200), "]".repeat(200)),
        ] {
            let e = parse_json::<Body>(bad.as_bytes()).unwrap_err();
            assert_eq!(e.status(), StatusCode::BAD_REQUEST, "{bad}");
        }
    }
}
