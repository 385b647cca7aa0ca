//! The dashboard's page frame and its pieces, for every page the server renders (the fleet,
//! machines, images and server pages, the files and search pages): the navigation, the live
//! part the script refreshes, the security headers (a Content-Security-Policy with no inline
//! script), the two vendored assets, and sizes, durations and times in words.

use std::fmt::Write;

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use swarmboot_httpd::html::escape;

/// The pages in the navigation: (path, name).
const NAV: &[(&str, &str)] = &[("/", "Fleet"), ("/images", "Images"), ("/files", "Files"), ("/server", "Server"), ("/login", "Sign in")];

const CSS: &str = include_str!("../assets/dashboard.css");
const JS: &str = include_str!("../assets/dashboard.js");
/// No script but our file, no inline script or style, no frames, no plugins.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// `/assets/NAME`: the stylesheet and the script.
pub async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind) = match name.as_str() {
        "dashboard.css" => (CSS, "text/css; charset=utf-8"),
        "dashboard.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// An HTML response with the dashboard's security headers.
pub fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A whole page: the navigation, `main` (its live part in `#live`), the script.
pub fn page(title: &str, current: &str, intro: &str, live: &str) -> String {
    let mut nav = String::new();
    for (href, name) in NAV {
        let aria = if *name == current { " aria-current=\"page\"" } else { "" };
        let _ = write!(nav, "<a href=\"{href}\"{aria}>{name}</a>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · swarmboot</title><link rel=\"stylesheet\" href=\"/assets/dashboard.css\"></head>\n\
         <body><header><span class=\"brand\">swarmboot</span><nav aria-label=\"Pages\">{nav}</nav>\
         <span id=\"status\" role=\"status\" aria-live=\"polite\">server-rendered</span></header>\n\
         <main><h1>{title}</h1>{intro}<div id=\"live\">{live}</div></main>\n\
         <script src=\"/assets/dashboard.js\" defer></script></body></html>\n",
        title = escape(title)
    )
}

/// `3 s`, `4 min 10 s`, `2 h 5 min`, `3 d 4 h`.
pub fn duration(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

/// Bytes in B, KiB, MiB, GiB.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Unix ms as `HH:MM:SS` UTC (the day too when it is not today's).
pub fn clock(ms: u64) -> String {
    if ms == 0 {
        return "-".into();
    }
    let s = ms / 1000;
    let today = crate::fleet::now_ms() / 1000 / 86400;
    let (d, rem) = (s / 86400, s % 86400);
    let hms = format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    if d == today {
        hms
    } else {
        format!("{} days ago, {hms}", today.saturating_sub(d))
    }
}
