//! The bounded HTTP/1.1 accept loop the boot server and the elchOS node agent serve with.
//!
//! axum's own `serve` has no connection caps and no header timeout, so a few LAN hosts could
//! hold every file descriptor with idle connections. Here each connection takes a place from
//! an [`Admission`] (capped per address and in all; over the cap it is closed at once and
//! counted), and hyper's header read timeout bounds both a request's headers and the idle
//! time between keep-alive requests. [`html::escape`] is how both make text safe in a page;
//! [`ranges`] says which bytes a `Range` asks of a file and its content type.

pub mod html;
pub mod ranges;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use swarmboot_swarm::admission::Admission;
use tower::ServiceExt;
use tracing::warn;

/// How the listener bounds its connections.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub admission: Admission,
    /// A request's headers must arrive within this; it also ends a connection idle between
    /// requests for as long (hyper's header read timeout runs from the wait for each head).
    pub header_timeout: std::time::Duration,
}

/// Serves `app` on `listener` until `shutdown` changes: one task per connection, HTTP/1.1 with
/// keep-alive, connections over the caps closed as they come (`on_refused` is called for
/// each). Handlers see the peer's address as `ConnectInfo<SocketAddr>`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnectionLimits,
    on_refused: Arc<dyn Fn() + Send + Sync>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    warn!(error = %e, "http accept");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return Ok(()),
        };
        let Some(permit) = limits.admission.admit(peer.ip()) else {
            on_refused();
            continue;
        };
        let app = app.clone();
        let header_timeout = limits.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let _ = stream.set_nodelay(true);
            let service = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
                app.clone().oneshot(req.map(Body::new))
            });
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(header_timeout).keep_alive(true);
            if let Err(e) = http.serve_connection(hyper_util::rt::TokioIo::new(stream), service).await {
                tracing::debug!(%peer, error = %e, "http connection ended");
            }
        });
    }
}
