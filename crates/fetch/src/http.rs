//! A small HTTP/1.1 client over hyper for the boot server's plain `http://` URLs: GETs of whole
//! bodies with a size limit and of byte ranges, and POSTs (check-ins, operators' orders). One
//! connection per request (a handful per boot on a LAN; nothing to pool).

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Bytes;
use hyper::{header, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("`{0}` is not an http:// URL with a host")]
    BadUrl(String),
    #[error("cannot connect to {host}: {source}")]
    Connect { host: String, source: std::io::Error },
    #[error("{0}")]
    Protocol(String),
    #[error("timed out after {0:?}")]
    TimedOut(Duration),
    #[error("HTTP status {status}")]
    Status { status: u16 },
    #[error("the reply is larger than {0} bytes")]
    TooLarge(usize),
    #[error("asked for bytes {start}..{end}, got {got} bytes")]
    ShortRange { start: u64, end: u64, got: usize },
}

impl HttpError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, HttpError::Status { status: 404 })
    }
}

/// GETs `url`; the body must be at most `limit` bytes. `range`: bytes `start..end` (the reply
/// must be exactly those).
pub async fn get(url: &str, range: Option<(u64, u64)>, limit: usize, timeout: Duration) -> Result<Bytes, HttpError> {
    get_with_headers(url, range, limit, timeout).await.map(|(body, _)| body)
}

/// [`get`], and the reply's headers.
pub async fn get_with_headers(url: &str, range: Option<(u64, u64)>, limit: usize, timeout: Duration) -> Result<(Bytes, hyper::HeaderMap), HttpError> {
    tokio::time::timeout(timeout, get_inner(url, range, limit)).await.map_err(|_| HttpError::TimedOut(timeout))?
}

/// A connection to `url`'s host: the request sender, the connection's task, the `Host` value
/// and the path with its query.
async fn connect<B>(url: &str) -> Result<(hyper::client::conn::http1::SendRequest<B>, tokio::task::JoinHandle<()>, String, String), HttpError>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let uri: Uri = url.parse().map_err(|_| HttpError::BadUrl(url.into()))?;
    if uri.scheme_str() != Some("http") {
        return Err(HttpError::BadUrl(url.into()));
    }
    let host = uri.host().ok_or_else(|| HttpError::BadUrl(url.into()))?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let authority = uri.authority().map(|a| a.to_string()).unwrap_or_else(|| host.clone());
    let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|source| HttpError::Connect { host: authority.clone(), source })?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| HttpError::Protocol(e.to_string()))?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    Ok((sender, conn, authority, path))
}

/// POSTs `body` with `headers` to `url`: the reply's status and body (at most `limit` bytes),
/// whatever the status (the server says why it refused in the body).
pub async fn post(url: &str, headers: &[(&str, &str)], body: Vec<u8>, limit: usize, timeout: Duration) -> Result<(u16, Bytes), HttpError> {
    tokio::time::timeout(timeout, async {
        let (mut sender, conn, authority, path) = connect::<Full<Bytes>>(url).await?;
        let mut req = Request::post(path.as_str()).header(header::HOST, &authority).header(header::USER_AGENT, "swarmboot").header(header::CONTENT_TYPE, "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|e| HttpError::Protocol(e.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|e| HttpError::Protocol(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = Limited::new(resp.into_body(), limit).collect().await.map_err(|e| HttpError::Protocol(e.to_string()))?;
        conn.abort();
        Ok((status, body.to_bytes()))
    })
    .await
    .map_err(|_| HttpError::TimedOut(timeout))?
}

async fn get_inner(url: &str, range: Option<(u64, u64)>, limit: usize) -> Result<(Bytes, hyper::HeaderMap), HttpError> {
    let (mut sender, conn, authority, path) = connect::<Empty<Bytes>>(url).await?;
    let mut req = Request::get(path.as_str()).header(header::HOST, &authority).header(header::USER_AGENT, "swarmboot-fetch");
    if let Some((start, end)) = range {
        req = req.header(header::RANGE, format!("bytes={start}-{}", end - 1));
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| HttpError::Protocol(e.to_string()))?;
    let resp = sender.send_request(req).await.map_err(|e| HttpError::Protocol(e.to_string()))?;
    let status = resp.status();
    let ok = match range {
        Some(_) => status == StatusCode::PARTIAL_CONTENT,
        None => status == StatusCode::OK,
    };
    if !ok {
        conn.abort();
        return Err(HttpError::Status { status: status.as_u16() });
    }
    let (parts, body) = resp.into_parts();
    let body = Limited::new(body, limit).collect().await.map_err(|e| {
        if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
            HttpError::TooLarge(limit)
        } else {
            HttpError::Protocol(e.to_string())
        }
    })?;
    conn.abort();
    let bytes = body.to_bytes();
    if let Some((start, end)) = range {
        if bytes.len() as u64 != end - start {
            return Err(HttpError::ShortRange { start, end, got: bytes.len() });
        }
    }
    Ok((bytes, parts.headers))
}
