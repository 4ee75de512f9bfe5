//! The dashboard's stylesheet and script, embedded in the binary and
//! served under names that carry a hash of their bytes, so browsers may
//! cache them forever and a new build is fetched at once.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::UiError;

const CSS: &str = include_str!("../../assets/dashboard/dashboard.css");
const JS: &str = include_str!("../../assets/dashboard/dashboard.js");

/// One embedded file: its public name and bytes.
struct Asset {
    name: String,
    content_type: &'static str,
    body: &'static str,
}

impl Asset {
    fn new(stem: &str, ext: &str, content_type: &'static str, body: &'static str) -> Self {
        let digest = Sha256::digest(body.as_bytes());
        // 16 hex characters: a new name for any change, short URLs.
        let hash = hex::encode(&digest[..8]);
        Self {
            name: format!("{stem}-{hash}.{ext}"),
            content_type,
            body,
        }
    }
}

static ASSETS: LazyLock<[Asset; 2]> = LazyLock::new(|| {
    [
        Asset::new("dashboard", "css", "text/css; charset=utf-8", CSS),
        Asset::new("dashboard", "js", "text/javascript; charset=utf-8", JS),
    ]
});

static CSS_URL: LazyLock<String> = LazyLock::new(|| format!("/ui/assets/{}", ASSETS[0].name));
static JS_URL: LazyLock<String> = LazyLock::new(|| format!("/ui/assets/{}", ASSETS[1].name));

/// The stylesheet's URL.
pub(crate) fn css_url() -> &'static str {
    &CSS_URL
}

/// The script's URL.
pub(crate) fn js_url() -> &'static str {
    &JS_URL
}

/// `GET /ui/assets/{name}`: the file, cached for a year; 404 for any other
/// name (an old hash included).
pub(crate) async fn serve(Path(name): Path<String>) -> Result<Response, UiError> {
    let asset = ASSETS
        .iter()
        .find(|a| a.name == name)
        .ok_or(UiError::NotFound)?;
    Ok((
        [
            (CONTENT_TYPE, asset.content_type),
            (CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        asset.body,
    )
        .into_response())
}
