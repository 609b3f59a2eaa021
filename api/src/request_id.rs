//! Every request gets an id (`req-<uuid>`), answered in `x-openstack-request-id` and
//! `x-compute-request-id` (as Cinder does, faults included), carried by the request's
//! span and handed to handlers (and from them into RPC).

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The request's id.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The middleware.
pub(crate) async fn assign(mut req: Request, next: Next) -> Response {
    let id = format!("req-{}", uuid::Uuid::new_v4());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut resp = next.run(req).instrument(span).await;
    let v = HeaderValue::from_str(&id).expect("ascii");
    resp.headers_mut()
        .insert("x-openstack-request-id", v.clone());
    resp.headers_mut().insert("x-compute-request-id", v);
    resp
}
