//! The namespace over HTTP: `POST /api/v1/index` (nodes' batches: open to the boot network,
//! each batch signed and bound to its node), `GET /api/v1/tree/PATH` and `GET
//! /api/v1/search?q=` (readers, behind the dashboard's read gate).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use swarmboot_namespace::batch::{MAX_BATCH_LEN, SIGNATURE_HEADER};
use swarmboot_urls::routes;
use tracing::info;

use crate::namespace::BatchFailure;
use crate::state::AppState;

/// What nodes send: open to the boot network whatever `[http] dashboard` says.
pub fn machine_routes() -> Router<AppState> {
    Router::new().route(routes::INDEX, post(index).layer(axum::extract::DefaultBodyLimit::max(MAX_BATCH_LEN)))
}

/// What readers read (behind `crate::dashboard::read_gate`).
pub fn read_routes() -> Router<AppState> {
    Router::new().route(routes::TREE_ROOT, get(tree_root)).route(routes::TREE, get(tree)).route(routes::SEARCH, get(search))
}

/// A node's index batch: the reply as JSON; 400 unreadable or forged, 403 not the node's live
/// key or address, 413 over the bound.
async fn index(State(s): State<AppState>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let signature = headers.get(SIGNATURE_HEADER).and_then(|v| v.to_str().ok()).map(str::to_string);
    let state = s.clone();
    let done = tokio::task::spawn_blocking(move || state.namespace.take(&state.fleet, &state.nodes, peer.ip(), &body, signature.as_deref())).await;
    match done {
        Ok(Ok(reply)) => Json(reply).into_response(),
        Ok(Err(e)) => {
            let status = match &e {
                BatchFailure::Bad(_) => StatusCode::BAD_REQUEST,
                BatchFailure::NotItsKey(_) | BatchFailure::NotItsAddress(_) => StatusCode::FORBIDDEN,
                BatchFailure::OverBound(_) => StatusCode::PAYLOAD_TOO_LARGE,
                BatchFailure::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            info!(%peer, %status, error = %e, "index batch refused");
            (status, format!("{e}\n")).into_response()
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "index task failed\n").into_response(),
    }
}

async fn tree_root(State(s): State<AppState>) -> Response {
    tree_at(s, String::new()).await
}

async fn tree(State(s): State<AppState>, Path(path): Path<String>) -> Response {
    tree_at(s, path).await
}

async fn tree_at(s: AppState, path: String) -> Response {
    let state = s.clone();
    let wanted = path.clone();
    match tokio::task::spawn_blocking(move || state.namespace.tree(&state.nodes, &wanted)).await {
        Ok(Ok(Some(v))) => Json(v).into_response(),
        Ok(Ok(None)) => (StatusCode::NOT_FOUND, format!("nothing at {path:?} on the live nodes\n")).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "tree task failed\n").into_response(),
    }
}

/// `/api/v1/search`'s query.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    pub q: String,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Hits per search unless `limit` says fewer.
pub const DEFAULT_HITS: usize = 100;

async fn search(State(s): State<AppState>, Query(sq): Query<SearchQuery>) -> Response {
    let q = match swarmboot_namespace::query::Query::parse(&sq.q) {
        Ok(q) => q,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("q: {e}\n")).into_response(),
    };
    let limit = sq.limit.unwrap_or(DEFAULT_HITS).clamp(1, crate::index_store::MAX_HITS);
    let state = s.clone();
    match tokio::task::spawn_blocking(move || state.namespace.search(&state.nodes, &q, &sq.q, limit)).await {
        Ok(Ok(v)) => Json(v).into_response(),
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "search task failed\n").into_response(),
    }
}
