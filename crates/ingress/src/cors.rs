//! CORS from a function URL's `CorsConfig`: preflights are answered here, without invoking the function; the
//! replies to requests from an allowed origin carry the headers a browser needs to read them.

use axum::http::{HeaderName, HeaderValue, header};
use control::Cors;

/// Whether a request is a CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub fn is_preflight(method: &str, origin: Option<&str>, request_method: Option<&str>) -> bool {
    method == "OPTIONS" && origin.is_some() && request_method.is_some()
}

fn value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

fn allow_origin(c: &Cors, origin: &str) -> Vec<(HeaderName, HeaderValue)> {
    let any = c.origins.iter().any(|o| o == "*");
    let mut out = Vec::new();
    // With credentials a browser refuses `*`: the origin is echoed.
    let shown = if any && !c.credentials { "*" } else { origin };
    if let Some(v) = value(shown) {
        out.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, v));
    }
    if shown != "*" {
        out.push((header::VARY, HeaderValue::from_static("Origin")));
    }
    if c.credentials {
        out.push((
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        ));
    }
    out
}

/// The answer to a preflight: the headers of a 204, or why the request is not allowed (a 403).
pub fn preflight(
    c: &Cors,
    origin: &str,
    request_method: &str,
    request_headers: Option<&str>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    if !c.allows_origin(origin) {
        return Err(format!(
            "origin {origin} is not allowed by the function URL's CorsConfig"
        ));
    }
    if !c.allows_method(request_method) {
        return Err(format!(
            "method {request_method} is not allowed by the function URL's CorsConfig"
        ));
    }
    let mut out = allow_origin(c, origin);
    let methods = if c.methods.is_empty() || c.methods.iter().any(|m| m == "*") {
        request_method.to_string()
    } else {
        c.methods.join(",")
    };
    if let Some(v) = value(&methods) {
        out.push((header::ACCESS_CONTROL_ALLOW_METHODS, v));
    }
    let headers = if c.headers.iter().any(|h| h == "*") {
        request_headers.map(str::to_string)
    } else if c.headers.is_empty() {
        None
    } else {
        Some(c.headers.join(","))
    };
    if let Some(v) = headers.as_deref().filter(|h| !h.is_empty()).and_then(value) {
        out.push((header::ACCESS_CONTROL_ALLOW_HEADERS, v));
    }
    if let Some(age) = c.max_age {
        out.push((header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age)));
    }
    Ok(out)
}

/// The headers added to the reply of a request from `origin` (none when the origin is not allowed: the browser
/// then keeps the reply from the page).
pub fn actual(c: &Cors, origin: &str) -> Vec<(HeaderName, HeaderValue)> {
    if !c.allows_origin(origin) {
        return Vec::new();
    }
    let mut out = allow_origin(c, origin);
    if !c.expose_headers.is_empty()
        && let Some(v) = value(&c.expose_headers.join(","))
    {
        out.push((header::ACCESS_CONTROL_EXPOSE_HEADERS, v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cors(origins: &[&str], methods: &[&str], headers: &[&str], credentials: bool) -> Cors {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect();
        Cors {
            enable: true,
            origins: v(origins),
            methods: v(methods),
            headers: v(headers),
            expose_headers: vec!["X-Trace".into()],
            credentials,
            max_age: Some(600),
        }
    }

    fn get(h: &[(HeaderName, HeaderValue)], n: HeaderName) -> Option<&str> {
        h.iter()
            .find(|(k, _)| *k == n)
            .and_then(|(_, v)| v.to_str().ok())
    }

    #[test]
    fn preflights() {
        assert!(is_preflight("OPTIONS", Some("o"), Some("GET")));
        assert!(!is_preflight("OPTIONS", Some("o"), None));
        assert!(!is_preflight("GET", Some("o"), Some("GET")));
        let c = cors(
            &["https://a.example"],
            &["GET", "POST"],
            &["X-Token"],
            false,
        );
        let h = preflight(&c, "https://a.example", "POST", Some("x-token")).expect("allowed");
        assert_eq!(
            get(&h, header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some("https://a.example")
        );
        assert_eq!(
            get(&h, header::ACCESS_CONTROL_ALLOW_METHODS),
            Some("GET,POST")
        );
        assert_eq!(
            get(&h, header::ACCESS_CONTROL_ALLOW_HEADERS),
            Some("X-Token")
        );
        assert_eq!(get(&h, header::ACCESS_CONTROL_MAX_AGE), Some("600"));
        assert_eq!(get(&h, header::VARY), Some("Origin"));
        assert!(preflight(&c, "https://b.example", "POST", None).is_err());
        assert!(preflight(&c, "https://a.example", "DELETE", None).is_err());
    }

    #[test]
    fn wildcards_and_credentials() {
        let c = cors(&["*"], &["*"], &["*"], false);
        let h = preflight(&c, "https://x", "PUT", Some("a,b")).expect("allowed");
        assert_eq!(get(&h, header::ACCESS_CONTROL_ALLOW_ORIGIN), Some("*"));
        assert_eq!(get(&h, header::ACCESS_CONTROL_ALLOW_METHODS), Some("PUT"));
        assert_eq!(get(&h, header::ACCESS_CONTROL_ALLOW_HEADERS), Some("a,b"));
        let c = cors(&["*"], &[], &[], true);
        let h = preflight(&c, "https://x", "PUT", None).expect("allowed");
        assert_eq!(
            get(&h, header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some("https://x")
        );
        assert_eq!(
            get(&h, header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
            Some("true")
        );
    }

    #[test]
    fn replies_to_allowed_origins_carry_the_headers() {
        let c = cors(&["https://a.example"], &[], &[], false);
        let h = actual(&c, "https://a.example");
        assert_eq!(
            get(&h, header::ACCESS_CONTROL_ALLOW_ORIGIN),
            Some("https://a.example")
        );
        assert_eq!(
            get(&h, header::ACCESS_CONTROL_EXPOSE_HEADERS),
            Some("X-Trace")
        );
        assert!(actual(&c, "https://evil.example").is_empty());
    }
}
