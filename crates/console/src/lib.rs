//! The web console: a single-page application under `/console`, its files compiled into the binary with
//! `include_bytes!` (no directory to deploy, nothing fetched at run time).
//!
//! The console is a pure client of the public API: the browser keeps the SecretId/SecretKey in the tab's
//! `sessionStorage` and signs every call with TC3-HMAC-SHA256 through WebCrypto, exactly as an SDK would. The
//! server side therefore holds no session and adds no endpoint beyond these static files. Every reply carries a
//! strict Content-Security-Policy (scripts, styles and connections from this origin only, no inline code, never
//! framed), `no-referrer`, `nosniff`, and an ETag with `Cache-Control: no-cache` so a browser revalidates cheaply
//! and never runs assets older than the binary. Files are sent gzipped to clients that accept it (compressed once).

use std::sync::OnceLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

/// The policy sent with every console reply: everything from this origin only (`connect-src 'self'` is the API on
/// the same listener), no inline script or style, no plugins, no `<base>`, no form submissions, never framed.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self'; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
#[derive(Debug)]
pub struct Asset {
    /// The path under `/console/assets/`.
    pub name: &'static str,
    pub content_type: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $ty:expr) => {
        Asset {
            name: $name,
            content_type: $ty,
            bytes: include_bytes!(concat!("../assets/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the console is made of, besides `index.html`.
pub static ASSETS: &[Asset] = &[
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("tc3.js", JS),
    asset!("ui.js", JS),
    asset!("live.js", JS),
    asset!("charts.js", JS),
    asset!("pages.js", JS),
    asset!("function.js", JS),
    asset!("favicon.svg", "image/svg+xml"),
];

/// The application's shell.
pub static INDEX: &[u8] = include_bytes!("../assets/index.html");

/// The console's routes: `/console`, `/console/` and `/console/assets/<file>`; merge them into the API router.
pub fn router() -> Router {
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/assets/{name}", get(asset))
}

/// A file as served: its bytes, their gzip form when that is smaller, and the ETag of each.
struct Prepared {
    content_type: &'static str,
    plain: &'static [u8],
    tag: String,
    gzip: Option<(Vec<u8>, String)>,
}

/// The shell, then every asset in `ASSETS` order; compressed once, on first use.
fn prepared() -> &'static [Prepared] {
    static FILES: OnceLock<Vec<Prepared>> = OnceLock::new();
    FILES.get_or_init(|| {
        std::iter::once(("text/html; charset=utf-8", INDEX))
            .chain(ASSETS.iter().map(|a| (a.content_type, a.bytes)))
            .map(|(content_type, plain)| {
                let hash = hex::encode(Sha256::digest(plain));
                let gzip = gzip(plain)
                    .filter(|z| z.len() < plain.len())
                    .map(|z| (z, format!("\"{}-gz\"", &hash[..20])));
                Prepared {
                    content_type,
                    plain,
                    tag: format!("\"{}\"", &hash[..20]),
                    gzip,
                }
            })
            .collect()
    })
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(bytes).ok()?;
    z.finish().ok()
}

/// Whether `Accept-Encoding` admits gzip (listed, or `*`, without `q=0`).
fn accepts_gzip(req: &HeaderMap) -> bool {
    let Some(v) = req
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    v.split(',').any(|item| {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or("");
        let refused = parts.any(|p| {
            p.strip_prefix("q=")
                .and_then(|q| q.parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
    })
}

async fn index(headers: HeaderMap) -> Response {
    serve(&headers, &prepared()[0])
}

async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => serve(&headers, &prepared()[i + 1]),
        None => {
            let mut r = (StatusCode::NOT_FOUND, "no such console file").into_response();
            secure(r.headers_mut());
            r
        }
    }
}

fn serve(req: &HeaderMap, file: &'static Prepared) -> Response {
    let (body, tag, gzipped): (&'static [u8], &str, bool) = match &file.gzip {
        Some((z, tag)) if accepts_gzip(req) => (z.as_slice(), tag, true),
        _ => (file.plain, &file.tag, false),
    };
    let fresh = req
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = (StatusCode::OK, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(file.content_type),
        );
        if gzipped {
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(tag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    secure(h);
    r
}

fn secure(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str, etag: Option<&str>) -> (StatusCode, HeaderMap, Vec<u8>) {
        get_with(path, etag, None).await
    }

    async fn get_with(
        path: &str,
        etag: Option<&str>,
        encoding: Option<&str>,
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let mut req = Request::get(path);
        if let Some(t) = etag {
            req = req.header(header::IF_NONE_MATCH, t);
        }
        if let Some(e) = encoding {
            req = req.header(header::ACCEPT_ENCODING, e);
        }
        let resp = router()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("reply");
        let (parts, body) = resp.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes().to_vec();
        (parts.status, parts.headers, bytes)
    }

    fn text(b: &[u8]) -> &str {
        std::str::from_utf8(b).expect("utf-8")
    }

    #[tokio::test]
    async fn every_file_is_served_with_its_type_and_the_policy() {
        let (status, h, body) = get("/console", None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        assert_eq!(body, INDEX);
        for a in ASSETS {
            let (status, h, body) = get(&format!("/console/assets/{}", a.name), None).await;
            assert_eq!(status, StatusCode::OK, "{}", a.name);
            assert_eq!(h[header::CONTENT_TYPE], a.content_type, "{}", a.name);
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
            assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(h[header::CACHE_CONTROL], "no-cache");
            assert_eq!(body, a.bytes);
        }
        let (status, h, _) = get("/console/assets/nope.js", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(h[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
        let (status, _, _) = get("/console/assets/..%2Fsrc%2Flib.rs", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn a_matching_etag_is_not_modified() {
        let (_, h, _) = get("/console/assets/app.js", None).await;
        let tag = h[header::ETAG].to_str().expect("etag").to_string();
        let (status, h2, body) = get("/console/assets/app.js", Some(&tag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        assert_eq!(h2[header::ETAG], tag.as_str());
        let (status, _, _) = get("/console/assets/app.js", Some("\"other\"")).await;
        assert_eq!(status, StatusCode::OK);
        let (_, hi, _) = get("/console/", None).await;
        assert_ne!(hi[header::ETAG], tag.as_str(), "each file has its own tag");
    }

    #[tokio::test]
    async fn gzip_when_accepted_with_its_own_tag() {
        use std::io::Read;
        let (status, h, body) = get_with(
            "/console/assets/function.js",
            None,
            Some("gzip, deflate, br"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CONTENT_ENCODING], "gzip");
        assert_eq!(h[header::VARY], "Accept-Encoding");
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(body.as_slice())
            .read_to_end(&mut plain)
            .expect("gunzip");
        let js = ASSETS
            .iter()
            .find(|a| a.name == "function.js")
            .expect("asset");
        assert_eq!(plain, js.bytes);
        assert!(
            body.len() * 2 < js.bytes.len(),
            "{} of {}",
            body.len(),
            js.bytes.len()
        );
        let gz_tag = h[header::ETAG].to_str().expect("tag").to_string();
        // Not accepted (absent, or refused with q=0): the plain bytes, under another tag.
        for enc in [None, Some("gzip;q=0"), Some("br")] {
            let (_, h2, body2) = get_with("/console/assets/function.js", None, enc).await;
            assert!(h2.get(header::CONTENT_ENCODING).is_none(), "{enc:?}");
            assert_eq!(body2, js.bytes);
            assert_ne!(h2[header::ETAG], gz_tag.as_str());
        }
        let (status, _, _) =
            get_with("/console/assets/function.js", Some(&gz_tag), Some("gzip")).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        let (status, _, _) = get_with("/console/assets/function.js", Some(&gz_tag), None).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the gzip tag does not validate the plain file"
        );
    }

    /// The policy forbids inline code: the shell must load everything from files, and the scripts must not build
    /// markup from strings (which would also be the way in for injected text).
    #[test]
    fn no_inline_code_and_no_markup_from_strings() {
        let index = text(INDEX);
        assert!(!index.contains("<style"), "inline <style> in index.html");
        assert!(!index.contains(" style="), "style attribute in index.html");
        for part in index.split(" on").skip(1) {
            let attr: String = part
                .chars()
                .take_while(|c| c.is_ascii_lowercase())
                .collect();
            assert!(
                attr.is_empty() || !part[attr.len()..].starts_with('='),
                "event handler attribute on{attr} in index.html"
            );
        }
        for tag in index.split("<script").skip(1) {
            let head = tag.split('>').next().unwrap_or("");
            assert!(head.contains("src="), "inline <script> in index.html");
        }
        for a in ASSETS.iter().filter(|a| a.content_type == JS) {
            let src = text(a.bytes);
            for banned in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "eval(",
                "new Function",
                "document.write",
            ] {
                assert!(!src.contains(banned), "{} uses {banned}", a.name);
            }
            assert!(
                !src.contains("setAttribute(\"style\"") && !src.contains(".cssText"),
                "{} sets inline styles",
                a.name
            );
        }
    }

    /// Every file the shell, the stylesheet and the modules refer to is embedded, and every embedded file is used.
    #[test]
    fn references_resolve_to_embedded_files() {
        let mut used = std::collections::BTreeSet::new();
        let mut refer = |src: &str, prefix: &str| {
            for part in src.split(prefix).skip(1) {
                let name: String = part
                    .chars()
                    .take_while(|c| {
                        c.is_ascii_alphanumeric() || *c == '.' || *c == '-' || *c == '_'
                    })
                    .collect();
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "`{prefix}{name}` is not embedded"
                );
                used.insert(name);
            }
        };
        refer(text(INDEX), "/console/assets/");
        for a in ASSETS.iter().filter(|a| a.content_type == JS) {
            refer(text(a.bytes), "from \"./");
        }
        for a in ASSETS {
            assert!(
                used.contains(a.name),
                "{} is embedded but never loaded",
                a.name
            );
        }
    }

    /// The first page (the shell and everything it loads) stays small; the browser tests measure it on the wire.
    #[test]
    fn the_first_page_is_under_200_kb() {
        let total: usize = INDEX.len() + ASSETS.iter().map(|a| a.bytes.len()).sum::<usize>();
        assert!(total < 200 * 1024, "{total} bytes");
    }
}
