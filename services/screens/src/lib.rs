//! The screens people use — the kiosk, the kitchen display, the pickup
//! board and the menu admin — as static pages with a little JavaScript,
//! compiled into the binary that serves them and talking to the same APIs
//! through the same gateway as any other client.
//!
//! Every page answers with a strict Content-Security-Policy: scripts,
//! styles, images and requests from this origin only, no inline code, no
//! framing. Assets are gzipped once at start and revalidated with their
//! `ETag`. The kiosk's QR code comes from the order service, drawn as SVG
//! (`GET /orders/{id}/qr.svg`), so no outside service ever sees it.

use std::collections::HashMap;
use std::io::Write;
use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use service_kit::error::ApiError;
use service_kit::etag::already_has;
use sha2::{Digest, Sha256};

/// Where the screens live: the gateway routes this prefix (and `/`) to
/// the service that serves them.
pub const PREFIX: &str = "/screens";

/// The four screens, by the path under [`PREFIX`] each is served at.
pub const PAGES: [&str; 4] = ["kiosk", "kitchen", "pickup", "admin"];

/// What a page may load and do: nothing from elsewhere, no inline code,
/// the QR drawn from a `blob:` of this page's own making.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' blob:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

struct Asset {
    content_type: &'static str,
    plain: &'static [u8],
    gzip: Vec<u8>,
    etag: String,
}

macro_rules! assets {
    ($($name:literal => $type:expr),* $(,)?) => {
        [$(($name, $type, include_bytes!(concat!("../assets/", $name)) as &'static [u8])),*]
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ASSETS: LazyLock<HashMap<&'static str, Asset>> = LazyLock::new(|| {
    assets![
        "kiosk.html" => HTML,
        "kitchen.html" => HTML,
        "pickup.html" => HTML,
        "admin.html" => HTML,
        "screens.css" => CSS,
        "common.js" => JS,
        "cpf.js" => JS,
        "kiosk.js" => JS,
        "kitchen.js" => JS,
        "pickup.js" => JS,
        "admin.js" => JS,
        "icon.svg" => "image/svg+xml",
    ]
    .into_iter()
    .map(|(name, content_type, plain)| {
        let digest = Sha256::digest(plain);
        let etag = format!("\"{}\"", hex(&digest[..12]));
        (
            name,
            Asset {
                content_type,
                plain,
                gzip: gzip(plain),
                etag,
            },
        )
    })
    .collect()
});

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(bytes);
    encoder.finish().unwrap_or_default()
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        // The gateway's own address opens the kiosk (`?pos=` kept).
        .route("/", get(to_kiosk))
        .route(PREFIX, get(to_kiosk))
        .route("/screens/{page}", get(page))
        .route("/screens/assets/{file}", get(asset))
}

async fn to_kiosk(RawQuery(query): RawQuery) -> Redirect {
    match query {
        Some(q) => Redirect::to(&format!("/screens/kiosk?{q}")),
        None => Redirect::to("/screens/kiosk"),
    }
}

async fn page(Path(page): Path<String>, headers: HeaderMap) -> Response {
    if !PAGES.contains(&page.as_str()) {
        return ApiError::NotFound(format!("no screen {page}; there are {}", PAGES.join(", ")))
            .into_response();
    }
    serve(&format!("{page}.html"), &headers)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    // Pages are served at their own address, not as assets.
    if file.ends_with(".html") {
        return ApiError::NotFound(format!("no asset {file}")).into_response();
    }
    serve(&file, &headers)
}

fn serve(name: &str, headers: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.get(name) else {
        return ApiError::NotFound(format!("no asset {name}")).into_response();
    };
    let gzip = accepts_gzip(headers);
    // Each encoding is its own representation, with its own tag.
    let etag = if gzip {
        format!("{}-gz\"", asset.etag.trim_end_matches('"'))
    } else {
        asset.etag.clone()
    };
    let mut response = if already_has(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else if gzip {
        let mut r = asset.gzip.clone().into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        asset.plain.into_response()
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, etag);
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    // Always revalidated: a deploy shows at once, and costs a 304 otherwise.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    protect(h);
    response
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

/// The headers that keep a page to itself.
fn protect(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=(), payment=()"),
    );
}

/// Each asset's size as served compressed: what a first load costs.
pub fn compressed_sizes() -> Vec<(&'static str, usize)> {
    let mut sizes: Vec<_> = ASSETS.iter().map(|(n, a)| (*n, a.gzip.len())).collect();
    sizes.sort();
    sizes
}

#[cfg(test)]
mod tests;
