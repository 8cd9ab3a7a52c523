//! The HTTP and WebSocket transport: warp routes that carry GraphQL, the
//! probes and the metrics, and the graceful shutdown.
//!
//! The transport authenticates (see [`crate::auth`]) and hands the GraphQL
//! layer a [`Caller`] or an [`AuthRejection`] plus a [`RequestId`] in each
//! request's data; it never decides what a caller may see. It also enforces
//! what async-graphql leaves to the host: body size, batch size, WebSocket
//! message size, a connection-init timeout, a cap on subscriptions per
//! connection and server keep-alive pings. It also decides which requests
//! run at all (see [`crate::admission`]): a saturated node refuses at once
//! with RATE_LIMITED and a retry delay instead of making everyone wait.
//!
//! [`serve_executor`] is generic over the GraphQL executor so the transport
//! can be exercised on its own; [`serve`] wires the real application.

use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
    future::Future,
    net::SocketAddr,
    sync::Arc,
    time::Instant,
};

use async_graphql::{
    http::{WebSocket as GqlWebSocket, WebSocketProtocols, WsMessage},
    BatchRequest, BatchResponse, Data, Executor,
};
use async_trait::async_trait;
use futures::{FutureExt, SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tracing::Instrument;
use uuid::Uuid;
use warp::{
    http::{HeaderValue, StatusCode},
    ws::Message,
    Filter, Rejection, Reply,
};

use crate::{
    admission::{self, Admission, Kind, Refusal, SocketSlot, Sockets},
    auth::Authenticator,
    config::Limits,
    context::{AuthRejection, Caller, RequestId},
    metrics::Metrics,
};

/// What /readyz reports when the node may not take traffic yet.
#[async_trait]
pub trait Readiness: Send + Sync + 'static {
    /// `Ok` when the database answers and the read model is close enough to
    /// the log head; `Err` says why not (logged and shown on /readyz).
    async fn check(&self) -> Result<(), String>;
}

/// Everything the transport needs, whatever the schema.
pub struct Transport<E: Executor> {
    pub executor: E,
    pub auth: Authenticator,
    pub limits: Limits,
    pub metrics: Metrics,
    pub readiness: Arc<dyn Readiness>,
    /// `GET /attachments/<id>` (issue 16); `None`: no such route.
    pub downloads: Option<Arc<dyn Downloads>>,
    /// cluster (issue 12): the other nodes of a region (`POST
    /// /internal/slice`, whole requests forwarded); `None`: a lone node.
    pub peers: Option<Arc<dyn Peers>>,
}

// cluster (issue 12)
/// The error extension marking a request decided nowhere because another
/// node holds what it needs: the transport forwards the whole request.
pub const FORWARD_EXTENSION: &str = "forward";

/// The other nodes of a region, seen from the transport.
#[async_trait]
pub trait Peers: Send + Sync + 'static {
    /// Answers `POST /internal/slice` from another node, authenticated by
    /// the node key it presents.
    async fn slice(&self, node_key: Option<&str>, body: &[u8]) -> Result<Vec<u8>, DownloadRefusal>;
    /// Sends a GraphQL request as it came to a live node holding
    /// `partition`; its status and body.
    async fn forward(
        &self,
        partition: &str,
        authorization: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(u16, Vec<u8>), DownloadRefusal>;
    /// The partition to send a query of `caller` to whole, when everything
    /// it is about is held by another node (`None`: answered here).
    fn home_elsewhere(&self, caller: &Caller) -> Option<String>;
}

impl<E: Executor> std::fmt::Debug for Transport<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("auth", &self.auth)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// A server that is listening. Dropping it does not stop it: call
/// [`RunningServer::shutdown`] or resolve the shutdown future given to
/// [`serve_executor`], then await [`RunningServer::stopped`].
#[derive(Debug)]
pub struct RunningServer {
    /// The bound address (the real port when asked for port 0).
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    readiness: Arc<dyn Readiness>,
}

impl std::fmt::Debug for dyn Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Readiness")
    }
}

impl RunningServer {
    /// Resolves once /readyz would answer 200 (the read model has caught up
    /// with the log), or with the last reason after `timeout`. The server
    /// answers meanwhile; this is for a command line that wants to announce
    /// a URL that is already fast.
    pub async fn wait_ready(&self, timeout: std::time::Duration) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.readiness.check().await {
                Ok(()) => return Ok(()),
                Err(reason) if tokio::time::Instant::now() >= deadline => return Err(reason),
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }

    /// The same server, with `after` run once it has stopped (before
    /// [`RunningServer::stopped`] resolves): what it serves shuts down after it.
    pub fn then(self, after: impl Future<Output = ()> + Send + 'static) -> RunningServer {
        let RunningServer {
            addr,
            stop,
            task,
            readiness,
        } = self;
        let task = tokio::spawn(async move {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "server task failed");
            }
            after.await;
        });
        RunningServer {
            addr,
            stop,
            task,
            readiness,
        }
    }

    /// Starts the graceful shutdown.
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Resolves once in-flight requests have finished (or the grace period
    /// ran out) and every WebSocket was closed.
    pub async fn stopped(self) {
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "server task failed");
        }
    }
}

struct Shared<E: Executor> {
    transport: Transport<E>,
    stopping: watch::Receiver<bool>,
    admission: Admission,
    sockets: Sockets,
}

/// Binds `listen` and serves until `shutdown` resolves.
pub async fn serve_executor<E, F>(
    transport: Transport<E>,
    listen: SocketAddr,
    shutdown: F,
) -> Result<RunningServer, warp::hyper::Error>
where
    E: Executor,
    F: Future<Output = ()> + Send + 'static,
{
    let (stop, stopping) = watch::channel(false);
    let grace = transport.limits.shutdown_grace;
    let readiness = transport.readiness.clone();
    let admission = Admission::new(&transport.limits, transport.metrics.clone());
    let sockets = Sockets::new(&transport.limits);
    let shared = Arc::new(Shared {
        transport,
        stopping: stopping.clone(),
        admission,
        sockets,
    });
    let routes = routes(shared.clone());

    let mut signal = stopping.clone();
    let stop_on_external = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = shutdown => { stop_on_external.send_replace(true); }
            _ = signal.wait_for(|s| *s) => {}
        }
    });

    let mut graceful = stopping.clone();
    // As `warp::serve` binds, with the routes behind [`front`].
    let mut incoming = warp::hyper::server::conn::AddrIncoming::bind(&listen)?;
    incoming.set_nodelay(true);
    let addr = incoming.local_addr();
    let routes = warp::service(routes);
    let front_shared = shared.clone();
    let service = warp::hyper::service::make_service_fn(move |_| {
        let (routes, shared) = (routes.clone(), front_shared.clone());
        std::future::ready(Ok::<_, Infallible>(warp::hyper::service::service_fn(
            move |request| front(shared.clone(), routes.clone(), request),
        )))
    });
    let server = warp::hyper::Server::builder(incoming)
        .serve(service)
        .with_graceful_shutdown(async move {
            let _ = graceful.wait_for(|s| *s).await;
            tracing::info!("shutting down: no new connections; waiting for in-flight requests");
        })
        .map(|served| {
            if let Err(e) = served {
                tracing::error!(error = %e, "server error");
            }
        });
    let mut deadline = stopping;
    let task = tokio::spawn(async move {
        let server = tokio::spawn(server);
        let abort = server.abort_handle();
        tokio::select! {
            _ = server => {}
            () = async {
                let _ = deadline.wait_for(|s| *s).await;
                tokio::time::sleep(grace).await;
            } => {
                tracing::warn!(grace_secs = grace.as_secs(), "grace period over; dropping remaining connections");
                abort.abort();
            }
        }
        // Keep the transport (and the executor's app) alive until every route is done.
        drop(shared);
        tracing::info!("server stopped");
    });
    tracing::info!(%addr, "listening");
    Ok(RunningServer {
        addr,
        stop,
        task,
        readiness,
    })
}

fn routes<E: Executor>(
    shared: Arc<Shared<E>>,
) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let with = {
        let shared = shared.clone();
        warp::any().map(move || shared.clone())
    };
    let limits = shared.transport.limits.clone();

    // Uploads (issue 16): a multipart body goes to its own route, with a
    // larger bound than a JSON body's.
    let graphql_multipart = warp::path("graphql")
        .and(warp::path::end())
        .and(warp::post())
        .and(
            warp::header::<String>("content-type").and_then(|ct: String| async move {
                if is_multipart(&ct) {
                    Ok(ct)
                } else {
                    Err(warp::reject::not_found())
                }
            }),
        )
        .and(warp::body::content_length_limit(
            limits
                .max_body_bytes
                .saturating_add(limits.max_upload_bytes),
        ))
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>("accept-encoding"))
        .and(warp::body::stream())
        .and(with.clone())
        .then(
            |content_type: String,
             authorization: Option<String>,
             accept_encoding: Option<String>,
             body,
             shared: Arc<Shared<E>>| async move {
                let gzip = crate::encoding::accepts_gzip(accept_encoding.as_deref());
                Box::pin(graphql_multipart(
                    shared,
                    content_type,
                    authorization,
                    gzip,
                    body,
                ))
                .await
            },
        );

    let attachments = warp::path!("attachments" / String)
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and(with.clone())
        .then(
            |id: String, authorization: Option<String>, shared: Arc<Shared<E>>| async move {
                Box::pin(download(shared, id, authorization)).await
            },
        );

    let graphql_post = warp::path("graphql")
        .and(warp::path::end())
        .and(warp::post())
        .and(warp::body::content_length_limit(limits.max_body_bytes))
        .and(warp::ext::optional::<Admitted>())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<String>(
            registre_app::cluster::FORWARDED_HEADER,
        ))
        .and(warp::header::optional::<String>("accept-encoding"))
        .and(warp::body::bytes())
        .and(with.clone())
        .then(
            |admitted: Option<Admitted>,
             authorization: Option<String>,
             forwarded: Option<String>,
             accept_encoding: Option<String>,
             body: warp::hyper::body::Bytes,
             shared: Arc<Shared<E>>| async move {
                let gzip = crate::encoding::accepts_gzip(accept_encoding.as_deref());
                graphql_http(
                    shared,
                    admitted,
                    authorization,
                    forwarded.is_some(),
                    gzip,
                    body,
                )
                .await
            },
        );

    // cluster (issue 12): another node asks for a slice of the model.
    let internal_slice = warp::path!("internal" / "slice")
        .and(warp::post())
        .and(warp::body::content_length_limit(4096))
        .and(warp::header::optional::<String>(
            registre_app::cluster::NODE_KEY_HEADER,
        ))
        .and(warp::body::bytes())
        .and(with.clone())
        .then(
            |key: Option<String>, body: warp::hyper::body::Bytes, shared: Arc<Shared<E>>| async move {
                Box::pin(internal_slice(shared, key, body)).await
            },
        );

    let graphql_ws = warp::path("graphql")
        .and(warp::path::end())
        .and(warp::ws())
        .and(async_graphql_warp::graphql_protocol())
        .and(with.clone())
        .map(
            |ws: warp::ws::Ws, protocol: WebSocketProtocols, shared: Arc<Shared<E>>| {
                let max = shared.transport.limits.ws_max_message_bytes;
                // tungstenite's own cap sits well above ours so that ours, with its
                // clear close reason, is the one a client meets; beyond four times
                // the limit the connection is simply dropped while reading.
                let reply = ws
                    .max_message_size(max.saturating_mul(4))
                    .max_frame_size(max.saturating_mul(4))
                    .on_upgrade(move |socket| websocket(shared, socket, protocol));
                warp::reply::with_header(
                    reply,
                    "sec-websocket-protocol",
                    protocol.sec_websocket_protocol(),
                )
            },
        );

    let graphiql = warp::path("graphql")
        .and(warp::path::end())
        .and(warp::get())
        .and(warp::header::optional::<String>("accept"))
        .map(|accept: Option<String>| {
            if accept.as_deref().is_some_and(|a| a.contains("text/html")) {
                crate::graphiql::page()
            } else {
                error_reply(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "INVALID_INPUT",
                    "send GraphQL with POST /graphql (application/json), or open this URL in a browser",
                )
            }
        });

    let graphiql_assets = warp::path!("graphiql" / String / String)
        .and(warp::get())
        .and_then(|version: String, name: String| async move {
            crate::graphiql::asset(&version, &name).ok_or_else(warp::reject::not_found)
        });

    // pages (issue 18): the web client at `/`, its files beside.
    let pages = warp::path::end()
        .and(warp::get())
        .and(warp::header::optional::<String>("accept-encoding"))
        .map(|encoding: Option<String>| crate::pages::page(encoding.as_deref()));
    let pages_assets = warp::path!("app" / String / String)
        .and(warp::get())
        .and(warp::header::optional::<String>("accept-encoding"))
        .and_then(
            |version: String, name: String, encoding: Option<String>| async move {
                crate::pages::asset(&version, &name, encoding.as_deref())
                    .ok_or_else(warp::reject::not_found)
            },
        );

    // The printable bulletin (evaluation, issue 14): the report card's
    // GraphQL query, run for the caller, rendered as a PDF.
    let bulletin = warp::path!("bulletins" / String / String)
        .and(warp::get())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::query::<HashMap<String, String>>())
        .and(with.clone())
        .then(
            |student: String,
             file: String,
             authorization: Option<String>,
             query: HashMap<String, String>,
             shared: Arc<Shared<E>>| async move {
                Box::pin(bulletin_http(
                    shared,
                    student,
                    file,
                    authorization,
                    query.get("at").cloned(),
                ))
                .await
            },
        );

    let healthz = warp::path("healthz")
        .and(warp::path::end())
        .and(warp::get())
        .map(|| warp::reply::json(&json!({ "status": "ok" })));

    let readyz = warp::path("readyz")
        .and(warp::path::end())
        .and(warp::get())
        .and(with.clone())
        .then(|shared: Arc<Shared<E>>| async move {
            if *shared.stopping.borrow() {
                return warp::reply::with_status(
                    warp::reply::json(&json!({ "status": "stopping" })),
                    StatusCode::SERVICE_UNAVAILABLE,
                );
            }
            match shared.transport.readiness.check().await {
                Ok(()) => warp::reply::with_status(
                    warp::reply::json(&json!({ "status": "ready" })),
                    StatusCode::OK,
                ),
                Err(reason) => {
                    tracing::warn!(%reason, "not ready");
                    warp::reply::with_status(
                        warp::reply::json(&json!({ "status": "not ready", "reason": reason })),
                        StatusCode::SERVICE_UNAVAILABLE,
                    )
                }
            }
        });

    let metrics = warp::path("metrics")
        .and(warp::path::end())
        .and(warp::get())
        .and(with)
        .map(|shared: Arc<Shared<E>>| {
            warp::reply::with_header(
                shared.transport.metrics.render(),
                "content-type",
                "text/plain; version=0.0.4",
            )
        });

    let refused = shared.transport.metrics.refused.clone();
    // POST first: under a surge nearly every request is one, and each filter
    // it fails before its own costs a rejection.
    graphql_multipart
        .or(graphql_post)
        .or(attachments)
        .or(internal_slice)
        .or(graphql_ws)
        .or(graphiql)
        .or(graphiql_assets)
        .or(pages)
        .or(pages_assets)
        .or(bulletin)
        .or(healthz)
        .or(readyz)
        .or(metrics)
        .recover(move |rejection: Rejection| {
            let refused = refused.clone();
            let max = limits.max_body_bytes;
            async move { Ok::<_, Infallible>(rejection_reply(&rejection, max, &refused)) }
        })
}

/// A place taken in front of the routes ([`front`]) for a `POST /graphql`,
/// handed to its handler in the request's extensions; `started` is when the
/// request began waiting for it.
#[derive(Clone)]
struct Admitted {
    permit: Arc<parking_lot::Mutex<Option<admission::Permit>>>,
    started: Instant,
}

/// The node's HTTP service: the routes, with admission for `POST /graphql`
/// (a JSON body) done before them. At ten times its capacity nine requests
/// in ten are refused, and each refusal is then answered without running
/// the routes' filters (header and body extraction, one rejection per route
/// tried before the right one) or building the handler's future.
async fn front<E, S>(
    shared: Arc<Shared<E>>,
    mut routes: S,
    request: warp::http::Request<warp::hyper::Body>,
) -> Result<warp::reply::Response, Infallible>
where
    E: Executor,
    S: warp::hyper::service::Service<
        warp::http::Request<warp::hyper::Body>,
        Response = warp::reply::Response,
        Error = Infallible,
    >,
{
    let limit = shared.transport.limits.max_body_bytes;
    let Some(length) = graphql_json_post(&request).filter(|&length| length <= limit) else {
        // Everything else, and bodies the route refuses, as the routes say.
        return routes.call(request).await;
    };
    let started = Instant::now();
    let admission = &shared.admission;
    let (mut request, permit) = match admission.try_admit(Kind::Read) {
        Some(permit) => (request, permit),
        None => {
            // No place at once: whether it is a mutation decides, and
            // that is in the body (already read with the head, usually).
            let (parts, body) = request.into_parts();
            let Ok(body) = warp::hyper::body::to_bytes(body).await else {
                return Ok(error_reply(
                    StatusCode::BAD_REQUEST,
                    "INVALID_INPUT",
                    "the request body could not be read",
                ));
            };
            debug_assert!(body.len() as u64 <= length);
            match admission.admit(|| admission::kind_of_body(&body)).await {
                Ok(permit) => (
                    warp::http::Request::from_parts(parts, warp::hyper::Body::from(body)),
                    permit,
                ),
                Err(refusal) => {
                    return Ok(rate_limited_reply(refusal, admission.retry_after_secs()))
                }
            }
        }
    };
    request.extensions_mut().insert(Admitted {
        permit: Arc::new(parking_lot::Mutex::new(Some(permit))),
        started,
    });
    routes.call(request).await
}

/// The declared length of a `POST /graphql` request with a body other than
/// multipart (the route of uploads admits its own).
fn graphql_json_post(request: &warp::http::Request<warp::hyper::Body>) -> Option<u64> {
    if request.method() != warp::http::Method::POST || request.uri().path() != "/graphql" {
        return None;
    }
    let headers = request.headers();
    let multipart = headers
        .get(warp::http::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(is_multipart);
    if multipart {
        return None;
    }
    headers
        .get(warp::http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Whether a `Content-Type` is a multipart form: the GraphQL multipart
/// request of uploads, which has a route (and an admission) of its own.
fn is_multipart(content_type: &str) -> bool {
    const MULTIPART: &str = "multipart/form-data";
    content_type
        .trim_start()
        .get(..MULTIPART.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(MULTIPART))
}

/// A GraphQL-shaped error body, so that clients parse every refusal the same way.
fn error_reply(status: StatusCode, code: &str, message: &str) -> warp::reply::Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}

/// 429 with `Retry-After`, and the same delay in the GraphQL error, so
/// that clients which only read the body back off too.
fn rate_limited_reply(refusal: Refusal, retry_after: u64) -> warp::reply::Response {
    // Built by hand: a saturated node writes thousands of these a second.
    let body = format!(
        r#"{{"errors":[{{"message":"{}","extensions":{{"code":"RATE_LIMITED","retryAfter":{retry_after}}}}}]}}"#,
        refusal.message()
    );
    let mut reply = warp::http::Response::new(warp::hyper::Body::from(body));
    *reply.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    let headers = reply.headers_mut();
    headers.insert(
        warp::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("retry-after", HeaderValue::from(retry_after));
    reply
}

fn rejection_reply(
    rejection: &Rejection,
    max_body: u64,
    refused: &prometheus::IntCounterVec,
) -> warp::reply::Response {
    let (status, code, message, reason) = if rejection.is_not_found() {
        (
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no such route".to_string(),
            "not_found",
        )
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "INVALID_INPUT",
            format!("the request body exceeds {max_body} bytes"),
            "body_too_large",
        )
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        (
            StatusCode::LENGTH_REQUIRED,
            "INVALID_INPUT",
            "a Content-Length header is required".to_string(),
            "length_required",
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "INVALID_INPUT",
            "method not allowed".to_string(),
            "method",
        )
    } else {
        (
            StatusCode::BAD_REQUEST,
            "INVALID_INPUT",
            "bad request".to_string(),
            "bad_request",
        )
    };
    refused.with_label_values(&[reason]).inc();
    error_reply(status, code, &message)
}

/// Adds what the GraphQL layer reads from the transport to a request's data.
fn auth_data(auth: Option<Result<Caller, AuthRejection>>, request_id: RequestId) -> Data {
    let mut data = Data::default();
    data.insert(request_id);
    match auth {
        Some(Ok(caller)) => data.insert(caller),
        Some(Err(rejection)) => data.insert(rejection),
        None => {}
    }
    data
}

async fn graphql_http<E: Executor>(
    shared: Arc<Shared<E>>,
    admitted: Option<Admitted>,
    authorization: Option<String>,
    forwarded: bool,
    gzip: bool,
    body: warp::hyper::body::Bytes,
) -> warp::reply::Response {
    // Admitted in front of the routes as a rule; here for a request
    // [`front`] let through (a path warp matches that it does not).
    let taken = admitted.and_then(|a| a.permit.lock().take().map(|p| (a.started, p)));
    let (started, _permit) = match taken {
        Some(taken) => taken,
        None => {
            let started = Instant::now();
            // Before anything costly: token verification, parsing, execution.
            match shared
                .admission
                .admit(|| admission::kind_of_body(&body))
                .await
            {
                Ok(permit) => (started, permit),
                Err(refusal) => {
                    return rate_limited_reply(refusal, shared.admission.retry_after_secs())
                }
            }
        }
    };
    let request_id = RequestId(Uuid::now_v7());
    let span = tracing::info_span!("graphql", request_id = %request_id.0, transport = "http");
    // Boxed: the executor's future is large, and unboxed it would be part of
    // every request's future, refusals included (moved, so copied, each time
    // a request starts: at ten times capacity, most of them refusals).
    Box::pin(
        async move {
            let t = &shared.transport;
            let batch: BatchRequest = match serde_json::from_slice(&body) {
                Ok(batch) => batch,
                Err(e) => {
                    t.metrics.refused.with_label_values(&["bad_json"]).inc();
                    return error_reply(
                        StatusCode::BAD_REQUEST,
                        "INVALID_INPUT",
                        &format!("the body is not a GraphQL request: {e}"),
                    );
                }
            };
            let forward = (!forwarded).then_some(&body);
            run_batch(
                &shared,
                authorization,
                batch,
                started,
                request_id,
                forward,
                gzip,
            )
            .await
        }
        .instrument(span),
    )
    .await
}

// cluster (issue 12)
/// `POST /internal/slice`: admitted as a read, answered to a node that
/// presents the node key.
async fn internal_slice<E: Executor>(
    shared: Arc<Shared<E>>,
    key: Option<String>,
    body: warp::hyper::body::Bytes,
) -> warp::reply::Response {
    let _permit = match shared.admission.admit(|| admission::Kind::Read).await {
        Ok(permit) => permit,
        Err(refusal) => return rate_limited_reply(refusal, shared.admission.retry_after_secs()),
    };
    let Some(peers) = &shared.transport.peers else {
        return error_reply(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route");
    };
    match peers.slice(key.as_deref(), &body).await {
        Ok(bytes) => {
            let mut reply = warp::http::Response::new(warp::hyper::Body::from(bytes));
            reply.headers_mut().insert(
                warp::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/zstd"),
            );
            reply
        }
        Err(refusal) => error_reply(
            StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            refusal.code,
            &refusal.message,
        ),
    }
}

/// The partition a response asks to be forwarded for: a single operation
/// decided nowhere ([`FORWARD_EXTENSION`]) of which no field answered, so
/// that running it again elsewhere repeats nothing.
/// Sends a request as it came to a node holding `partition`, counted by
/// `reason` and outcome in `registre_forwarded_requests_total`.
async fn forward_whole<E: Executor>(
    t: &Transport<E>,
    peers: &dyn Peers,
    reason: &str,
    partition: &str,
    authorization: &Option<String>,
    body: &warp::hyper::body::Bytes,
) -> Result<(u16, Vec<u8>), DownloadRefusal> {
    let answer = peers
        .forward(partition, authorization.as_deref(), body.to_vec())
        .await;
    let outcome = if answer.is_ok() {
        "answered"
    } else {
        "unavailable"
    };
    t.metrics
        .forwarded
        .with_label_values(&[reason, outcome])
        .inc();
    answer
}

/// Another node's answer to a request forwarded whole, as this node's.
fn forwarded_reply(
    (status, bytes): (u16, Vec<u8>),
    request_id: RequestId,
) -> warp::reply::Response {
    let mut reply = warp::http::Response::new(warp::hyper::Body::from(bytes));
    *reply.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    reply.headers_mut().insert(
        warp::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(value) = HeaderValue::from_str(&request_id.0.to_string()) {
        reply.headers_mut().insert("x-request-id", value);
    }
    reply
}

fn forward_target(response: &BatchResponse) -> Option<String> {
    let BatchResponse::Single(r) = response else {
        return None;
    };
    let answered_nothing = match &r.data {
        async_graphql::Value::Null => true,
        async_graphql::Value::Object(fields) => fields
            .values()
            .all(|v| matches!(v, async_graphql::Value::Null)),
        _ => false,
    };
    if !answered_nothing {
        return None;
    }
    r.errors.iter().find_map(|e| {
        let ext = e.extensions.as_ref()?;
        if !matches!(
            ext.get(FORWARD_EXTENSION),
            Some(async_graphql::Value::Boolean(true))
        ) {
            return None;
        }
        match ext.get("partition")? {
            async_graphql::Value::String(p) => Some(p.clone()),
            _ => None,
        }
    })
}

/// A GraphQL multipart request (an upload, issue 16): admitted as a write
/// before anything is read, its body bounded by `Content-Length` (the
/// route's limit) and each file by `max_upload_bytes` while it streams in,
/// so a file past the limit is refused before it is buffered whole.
async fn graphql_multipart<E: Executor>(
    shared: Arc<Shared<E>>,
    content_type: String,
    authorization: Option<String>,
    gzip: bool,
    body: impl futures::Stream<Item = Result<impl warp::Buf, warp::Error>> + Send + 'static,
) -> warp::reply::Response {
    use futures::TryStreamExt;
    let started = Instant::now();
    let _permit = match shared.admission.admit(|| admission::Kind::Write).await {
        Ok(permit) => permit,
        Err(refusal) => return rate_limited_reply(refusal, shared.admission.retry_after_secs()),
    };
    let request_id = RequestId(Uuid::now_v7());
    let span = tracing::info_span!("graphql", request_id = %request_id.0, transport = "multipart");
    async move {
        let t = &shared.transport;
        let options = async_graphql::http::MultipartOptions::default()
            .max_file_size(usize::try_from(t.limits.max_upload_bytes).unwrap_or(usize::MAX))
            .max_num_files(t.limits.max_upload_files);
        let reader = body
            .map_ok(|mut buf| {
                let remaining = warp::Buf::remaining(&buf);
                warp::Buf::copy_to_bytes(&mut buf, remaining)
            })
            .map_err(std::io::Error::other)
            .into_async_read();
        let batch = match async_graphql::http::receive_batch_body(
            Some(content_type),
            reader,
            options,
        )
        .await
        {
            Ok(batch) => batch,
            Err(async_graphql::ParseRequestError::PayloadTooLarge) => {
                t.metrics
                    .refused
                    .with_label_values(&["upload_too_large"])
                    .inc();
                return error_reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "INVALID_INPUT",
                    &format!(
                        "a file exceeds the {} bytes allowed",
                        t.limits.max_upload_bytes
                    ),
                );
            }
            Err(e) => {
                t.metrics
                    .refused
                    .with_label_values(&["bad_multipart"])
                    .inc();
                return error_reply(
                    StatusCode::BAD_REQUEST,
                    "INVALID_INPUT",
                    &format!("the body is not a GraphQL multipart request: {e}"),
                );
            }
        };
        run_batch(
            &shared,
            authorization,
            batch,
            started,
            request_id,
            None,
            gzip,
        )
        .await
    }
    .instrument(span)
    .await
}

/// Runs a parsed batch for an HTTP request: checks its size, authenticates,
/// executes, logs and answers. `forward`: the body as it came, when the
/// request may be forwarded whole to another node (cluster, issue 12).
async fn run_batch<E: Executor>(
    shared: &Arc<Shared<E>>,
    authorization: Option<String>,
    batch: BatchRequest,
    started: Instant,
    request_id: RequestId,
    forward: Option<&warp::hyper::body::Bytes>,
    gzip: bool,
) -> warp::reply::Response {
    {
        let t = &shared.transport;
        let operations = match &batch {
            BatchRequest::Single(_) => 1,
            BatchRequest::Batch(list) => list.len(),
        };
        if operations == 0 || operations > t.limits.max_batch_operations {
            t.metrics.refused.with_label_values(&["batch_size"]).inc();
            return error_reply(
                StatusCode::BAD_REQUEST,
                "INVALID_INPUT",
                &format!(
                    "a batch must hold between 1 and {} operations; this one holds {operations}",
                    t.limits.max_batch_operations
                ),
            );
        }
        let auth = t.auth.authenticate(authorization.as_deref()).await;
        let caller_kind = match &auth {
            None => "anonymous",
            Some(Err(_)) => "refused",
            Some(Ok(c)) if c.admin => "admin",
            Some(Ok(_)) => "authenticated",
        };
        // cluster (issue 12): a query about someone whose schools another
        // node folds is answered by that node, whole, in one hop. Should
        // it not answer, the request is answered here (from slices).
        if let (Some(body), Some(peers), Some(Ok(caller)), BatchRequest::Single(r)) =
            (forward, &t.peers, &auth, &batch)
        {
            let query = !crate::admission::is_mutation(&r.query, r.operation_name.as_deref());
            if let Some(partition) = query.then(|| peers.home_elsewhere(caller)).flatten() {
                let answer =
                    forward_whole(t, peers.as_ref(), "home", &partition, &authorization, body)
                        .await;
                if let Ok(answer) = answer {
                    return forwarded_reply(answer, request_id);
                }
            }
        }
        let batch = match batch {
            BatchRequest::Single(r) => BatchRequest::Single(with_data(r, &auth, request_id)),
            BatchRequest::Batch(list) => BatchRequest::Batch(
                list.into_iter()
                    .map(|r| with_data(r, &auth, request_id))
                    .collect(),
            ),
        };
        let response = t.executor.execute_batch(batch).await;
        // cluster (issue 12): decided nowhere here; the node holding it answers.
        if let (Some(body), Some(peers), Some(partition)) =
            (forward, &t.peers, forward_target(&response))
        {
            let answer = forward_whole(
                t,
                peers.as_ref(),
                "elsewhere",
                &partition,
                &authorization,
                body,
            )
            .await;
            return match answer {
                Ok(answer) => forwarded_reply(answer, request_id),
                Err(refusal) => {
                    let mut reply = warp::reply::json(&json!({
                        "data": null,
                        "errors": [{
                            "message": refusal.message,
                            "extensions": { "code": refusal.code, "partition": partition },
                        }],
                    }))
                    .into_response();
                    if let Ok(value) = HeaderValue::from_str(&request_id.0.to_string()) {
                        reply.headers_mut().insert("x-request-id", value);
                    }
                    reply
                }
            };
        }
        // Not forwarded (already forwarded once, or a field answered): the
        // client sees UNAVAILABLE and the partition, not the internal mark.
        let mut response = response;
        let answers: Vec<&mut async_graphql::Response> = match &mut response {
            BatchResponse::Single(r) => vec![r],
            BatchResponse::Batch(list) => list.iter_mut().collect(),
        };
        for r in answers {
            for e in &mut r.errors {
                if let Some(ext) = e.extensions.as_mut() {
                    ext.unset(FORWARD_EXTENSION);
                }
            }
        }
        let errors = match &response {
            BatchResponse::Single(r) => {
                t.metrics.observe_response("http", r);
                r.errors.len()
            }
            BatchResponse::Batch(list) => list
                .iter()
                .map(|r| {
                    t.metrics.observe_response("http", r);
                    r.errors.len()
                })
                .sum(),
        };
        let elapsed = started.elapsed();
        t.metrics
            .latency
            .with_label_values(&["graphql"])
            .observe(elapsed.as_secs_f64());
        tracing::info!(
            caller = caller_kind,
            operations,
            errors,
            elapsed_ms = elapsed.as_millis() as u64,
            "graphql request"
        );
        let mut reply = answer(&response, gzip);
        if let Ok(value) = HeaderValue::from_str(&request_id.0.to_string()) {
            reply.headers_mut().insert("x-request-id", value);
        }
        reply
    }
}

/// A GraphQL answer as JSON, gzipped when the client accepts it and it is
/// large enough to gain from it.
fn answer(response: &BatchResponse, gzip: bool) -> warp::reply::Response {
    use warp::http::header;
    let json = match serde_json::to_vec(response) {
        Ok(json) => json,
        Err(e) => {
            return error_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                &format!("the answer does not serialize: {e}"),
            )
        }
    };
    let packed = (gzip && json.len() >= crate::encoding::GZIP_ANSWERS_FROM)
        .then(|| crate::encoding::gzip(&json, 1))
        .filter(|packed| !packed.is_empty());
    let compressed = packed.is_some();
    let mut reply = warp::reply::Response::new(packed.unwrap_or(json).into());
    let headers = reply.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if compressed {
        headers.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    reply
}

/// What a download answers (issue 16).
#[derive(Debug)]
pub struct DownloadReply {
    pub name: String,
    pub content_type: String,
    pub bytes: Vec<u8>,
}

/// Why a download is refused: an HTTP status and a GraphQL-shaped code.
#[derive(Debug)]
pub struct DownloadRefusal {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl From<&registre_app::ApiError> for DownloadRefusal {
    fn from(e: &registre_app::ApiError) -> Self {
        use registre_app::ApiError;
        let status = match e {
            ApiError::Unauthenticated(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::InvalidInput { .. } => 400,
            ApiError::RateLimited(_) | ApiError::RetryLater { .. } => 429,
            ApiError::Unavailable(_)
            | ApiError::Elsewhere(_)
            | ApiError::PartitionUnavailable(_) => 503,
            ApiError::Conflict(_) => 409,
            ApiError::Internal(_) => 500,
        };
        DownloadRefusal {
            status,
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// Serves `GET /attachments/<id>` for an authenticated caller; the
/// transport admits and authenticates, the application decides.
#[async_trait]
pub trait Downloads: Send + Sync + 'static {
    async fn download(&self, caller: &Caller, id: &str) -> Result<DownloadReply, DownloadRefusal>;
}

/// `filename*` of RFC 6266/8187: UTF-8, percent-encoded.
fn content_disposition(name: &str) -> String {
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("attachment; filename*=UTF-8''{encoded}")
}

async fn download<E: Executor>(
    shared: Arc<Shared<E>>,
    id: String,
    authorization: Option<String>,
) -> warp::reply::Response {
    let _permit = match shared.admission.admit(|| admission::Kind::Read).await {
        Ok(permit) => permit,
        Err(refusal) => return rate_limited_reply(refusal, shared.admission.retry_after_secs()),
    };
    let t = &shared.transport;
    let Some(downloads) = &t.downloads else {
        return error_reply(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route");
    };
    let caller = match t.auth.authenticate(authorization.as_deref()).await {
        Some(Ok(caller)) => caller,
        Some(Err(rejection)) => {
            return error_reply(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", &rejection.0)
        }
        None => {
            return error_reply(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "a bearer token is required",
            )
        }
    };
    match downloads.download(&caller, &id).await {
        Ok(file) => {
            let mut reply = warp::http::Response::new(warp::hyper::Body::from(file.bytes));
            let headers = reply.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&file.content_type) {
                headers.insert(warp::http::header::CONTENT_TYPE, v);
            }
            if let Ok(v) = HeaderValue::from_str(&content_disposition(&file.name)) {
                headers.insert(warp::http::header::CONTENT_DISPOSITION, v);
            }
            // The type was sniffed on upload; browsers must not guess another.
            headers.insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            headers.insert(
                warp::http::header::CACHE_CONTROL,
                HeaderValue::from_static("private, no-store"),
            );
            reply
        }
        Err(refusal) => error_reply(
            StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            refusal.code,
            &refusal.message,
        ),
    }
}

/// GET /bulletins/<student>/<period>.pdf[?at=<RFC 3339>]: the report card's
/// query run for the caller (admission, token, policy, access log: all as
/// for the GraphQL query), with a [`PrintBulletin`] that the report card's
/// resolver renders the PDF into. `at`: the report card as the log stood
/// then (`studentAsOf`, AUDITOR). A refusal answers the GraphQL error's code
/// with its HTTP status.
async fn bulletin_http<E: Executor>(
    shared: Arc<Shared<E>>,
    student: String,
    file: String,
    authorization: Option<String>,
    at: Option<String>,
) -> warp::reply::Response {
    use crate::graphql::evaluation::PrintBulletin;
    let _permit = match shared.admission.admit(|| Kind::Read).await {
        Ok(permit) => permit,
        Err(refusal) => return rate_limited_reply(refusal, shared.admission.retry_after_secs()),
    };
    let Some(period) = file.strip_suffix(".pdf") else {
        return error_reply(StatusCode::NOT_FOUND, "NOT_FOUND", "no such route");
    };
    let request_id = RequestId(Uuid::now_v7());
    let t = &shared.transport;
    let auth = t.auth.authenticate(authorization.as_deref()).await;
    let (query, variables) = match &at {
        None => (
            "query Bulletin($student: ID!, $period: ID!) { student(id: $student) { reportCard(periodId: $period) { final } } }",
            json!({ "student": student, "period": period }),
        ),
        Some(at) => (
            "query Bulletin($student: ID!, $period: ID!, $at: DateTime!) { studentAsOf(id: $student, at: $at) { reportCard(periodId: $period) { final } } }",
            json!({ "student": student, "period": period, "at": at }),
        ),
    };
    let sink = PrintBulletin::default();
    let request = async_graphql::Request::new(query)
        .variables(async_graphql::Variables::from_json(variables))
        .data(sink.clone());
    let response = t
        .executor
        .execute(with_data(request, &auth, request_id))
        .await;
    t.metrics.observe_response("http", &response);
    let printed = sink.0.lock().take();
    if let Some(pdf) = printed {
        let mut reply = warp::http::Response::new(warp::hyper::Body::from(pdf));
        let headers = reply.headers_mut();
        headers.insert(
            warp::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/pdf"),
        );
        if let Ok(value) =
            HeaderValue::from_str(&format!("inline; filename=\"bulletin-{period}.pdf\""))
        {
            headers.insert(warp::http::header::CONTENT_DISPOSITION, value);
        }
        if let Ok(value) = HeaderValue::from_str(&request_id.0.to_string()) {
            headers.insert("x-request-id", value);
        }
        return reply;
    }
    let error = response.errors.first();
    let code = error
        .and_then(|e| e.extensions.as_ref())
        .and_then(|x| x.get("code"))
        .and_then(|c| match c {
            async_graphql::Value::String(s) => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "NOT_FOUND".to_owned());
    let status = match code.as_str() {
        "UNAUTHENTICATED" => StatusCode::UNAUTHORIZED,
        "FORBIDDEN" => StatusCode::FORBIDDEN,
        "NOT_FOUND" => StatusCode::NOT_FOUND,
        "INVALID_INPUT" => StatusCode::BAD_REQUEST,
        "RATE_LIMITED" => StatusCode::TOO_MANY_REQUESTS,
        "UNAVAILABLE" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let message = error.map_or("no report card for this student and period", |e| {
        e.message.as_str()
    });
    error_reply(status, &code, message)
}

fn with_data(
    request: async_graphql::Request,
    auth: &Option<Result<Caller, AuthRejection>>,
    request_id: RequestId,
) -> async_graphql::Request {
    let request = request.data(request_id);
    match auth {
        Some(Ok(caller)) => request.data(caller.clone()),
        Some(Err(rejection)) => request.data(rejection.clone()),
        None => request,
    }
}

/// The fields of a protocol message the transport looks at.
#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    #[serde(default)]
    payload: Option<serde_json::Value>,
}

/// A server message, as the transport reads it for bookkeeping and metrics.
#[derive(Deserialize)]
struct Outgoing {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    #[serde(default)]
    payload: serde_json::Value,
}

async fn websocket<E: Executor>(
    shared: Arc<Shared<E>>,
    socket: warp::ws::WebSocket,
    protocol: WebSocketProtocols,
) {
    let connection_id = RequestId(Uuid::now_v7());
    let span = tracing::info_span!("websocket", request_id = %connection_id.0, protocol = protocol.sec_websocket_protocol());
    websocket_session(shared, socket, protocol, connection_id)
        .instrument(span)
        .await
}

/// Messages queued for one client's writer. When full, the session stops
/// producing (and so, soon, reading) until the writer catches up; a client
/// that does not read at all is disconnected by the writer's timeout.
const WS_OUTGOING_QUEUE: usize = 64;

/// Client messages handed to the protocol engine and not yet consumed. When
/// full, the session stops reading the socket (TCP pushes back on the client)
/// but keeps running its timers, its outgoing messages and the shutdown.
const WS_INCOMING_QUEUE: usize = 16;

/// Writes a session's outgoing messages, each within `timeout`, so that the
/// session itself never waits on a client that does not read. Ends after a
/// close frame, on a failed or timed-out write, or when the session drops
/// its sender.
async fn ws_writer(
    mut sink: futures::stream::SplitSink<warp::ws::WebSocket, Message>,
    mut outgoing: mpsc::Receiver<Message>,
    timeout: std::time::Duration,
) {
    while let Some(message) = outgoing.recv().await {
        let closing = message.is_close();
        match tokio::time::timeout(timeout, sink.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
        if closing {
            break;
        }
    }
    let _ = tokio::time::timeout(timeout, sink.close()).await;
}

/// How a session ended: the log line, and the close frame to send (if any).
struct Ending {
    reason: String,
    close: Option<(u16, String)>,
}

impl Ending {
    fn quiet(reason: impl Into<String>) -> Ending {
        Ending {
            reason: reason.into(),
            close: None,
        }
    }

    fn close(code: u16, reason: impl Into<String>) -> Ending {
        let reason = reason.into();
        Ending {
            close: Some((code, reason.clone())),
            reason,
        }
    }

    fn writer_gone() -> Ending {
        Ending::quiet("client went away (a write failed or timed out)")
    }
}

async fn websocket_session<E: Executor>(
    shared: Arc<Shared<E>>,
    socket: warp::ws::WebSocket,
    protocol: WebSocketProtocols,
    connection_id: RequestId,
) {
    let t = &shared.transport;
    t.metrics.open_websockets.inc();
    tracing::info!("websocket opened");
    let (sink, incoming) = socket.split();
    let (out, outgoing) = mpsc::channel::<Message>(WS_OUTGOING_QUEUE);
    let mut writer = tokio::spawn(ws_writer(sink, outgoing, t.limits.ws_write_timeout));

    let ending = match shared.sockets.open() {
        Some(slot) => websocket_loop(&shared, incoming, &out, protocol, connection_id, slot).await,
        None => {
            shared.admission.refused_for("anonymous_sockets");
            Ending::close(
                4429,
                format!(
                    "too many unauthenticated connections on this server; retry in {} s",
                    shared.admission.retry_after_secs()
                ),
            )
        }
    };
    let write_timeout = t.limits.ws_write_timeout;
    if let Some((code, reason)) = &ending.close {
        let close = Message::close_with(*code, reason.clone());
        let _ = tokio::time::timeout(write_timeout, out.send(close)).await;
    }
    drop(out);
    if tokio::time::timeout(write_timeout, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    t.metrics.open_websockets.dec();
    tracing::info!(reason = %ending.reason, "websocket closed");
}

/// One session's protocol loop. No branch waits on the client: messages
/// are read only while there is room to hand them on and to answer them,
/// and written through the writer's queue, so the init timeout, keep-alives
/// and the shutdown always run, and a client flooding the socket without
/// reading it is pushed back by TCP instead of wedging the session.
async fn websocket_loop<E: Executor>(
    shared: &Arc<Shared<E>>,
    mut incoming: futures::stream::SplitStream<warp::ws::WebSocket>,
    out: &mpsc::Sender<Message>,
    protocol: WebSocketProtocols,
    connection_id: RequestId,
    slot: SocketSlot,
) -> Ending {
    let t = &shared.transport;
    let limits = &t.limits;
    let (to_graphql, from_client) = mpsc::channel::<Vec<u8>>(WS_INCOMING_QUEUE);
    let auth = t.auth.clone();
    let slot = Arc::new(parking_lot::Mutex::new(slot));
    // Set by the init callback when the caller already holds every socket
    // allowed; the protocol's own refusal is then replaced by a 4429 close.
    let over_limit = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let per_person = limits.max_sockets_per_person;
    let mut graphql = {
        let slot = slot.clone();
        let over_limit = over_limit.clone();
        GqlWebSocket::new(
            t.executor.clone(),
            ReceiverStream::new(from_client),
            protocol,
        )
        .on_connection_init(move |payload: serde_json::Value| async move {
            let header = payload
                .get("Authorization")
                .or_else(|| payload.get("authorization"))
                .and_then(|v| v.as_str())
                .map(str::to_string);
            let auth = auth.authenticate(header.as_deref()).await;
            if let Some(Ok(caller)) = &auth {
                if !slot.lock().attribute(&caller.subject) {
                    over_limit.store(true, std::sync::atomic::Ordering::Release);
                    return Err(async_graphql::Error::new(format!(
                        "at most {per_person} connections per person"
                    )));
                }
            }
            Ok(auth_data(auth, connection_id))
        })
    };
    let limited = || over_limit.load(std::sync::atomic::Ordering::Acquire);
    let limited_close = || {
        shared.admission.refused_for("sockets_per_person");
        Ending::close(
            4429,
            format!(
                "at most {per_person} open connections per person; close one or retry in {} s",
                shared.admission.retry_after_secs()
            ),
        )
    };
    let send = |message: Message| out.try_send(message).is_ok();

    let init_deadline = tokio::time::sleep(limits.ws_init_timeout);
    tokio::pin!(init_deadline);
    let mut keepalive = tokio::time::interval_at(
        tokio::time::Instant::now() + limits.ws_keepalive,
        limits.ws_keepalive,
    );
    let mut stopping = shared.stopping.clone();
    let mut initialized = false;
    let mut active: HashSet<String> = HashSet::new();
    // Places held by queries and mutations run over the socket, until their result.
    let mut permits: HashMap<String, admission::Permit> = HashMap::new();
    let mut pending: Option<Vec<u8>> = None;
    let cap = limits.ws_max_subscriptions;

    let ending = loop {
        tokio::select! {
            message = incoming.next(), if pending.is_none() && out.capacity() > 0 => {
                let message = match message {
                    Some(Ok(message)) => message,
                    Some(Err(e)) => break Ending::quiet(format!("transport error: {e}")),
                    None => break Ending::quiet("client went away"),
                };
                if message.is_close() {
                    break Ending::quiet("client closed");
                }
                if !(message.is_text() || message.is_binary()) {
                    continue;
                }
                let bytes = message.into_bytes();
                if bytes.len() > limits.ws_max_message_bytes {
                    break Ending::close(1009, format!("message exceeds {} bytes", limits.ws_max_message_bytes));
                }
                if let Ok(envelope) = serde_json::from_slice::<Envelope>(&bytes) {
                    match (envelope.kind.as_str(), envelope.id) {
                        ("connection_init", _) => initialized = true,
                        ("subscribe" | "start", Some(_)) if !initialized => {
                            break Ending::close(4401, "Unauthorized");
                        }
                        ("subscribe" | "start", Some(id)) if !active.contains(&id) => {
                            let payload = envelope.payload.unwrap_or_default();
                            let refusal = if active.len() >= cap {
                                t.metrics.refused.with_label_values(&["subscription_cap"]).inc();
                                Some(format!("at most {cap} operations may run at once on one connection"))
                            } else if admission::is_subscription(&payload) {
                                (!shared.admission.has_room(Kind::Read)).then(|| {
                                    shared.admission.refused(Refusal::QueueFull);
                                    Refusal::QueueFull.message().to_string()
                                })
                            } else {
                                match shared.admission.try_admit(admission::kind_of_ws_payload(&payload)) {
                                    Some(permit) => {
                                        permits.insert(id.clone(), permit);
                                        None
                                    }
                                    None => {
                                        shared.admission.refused(Refusal::QueueFull);
                                        Some(Refusal::QueueFull.message().to_string())
                                    }
                                }
                            };
                            if let Some(message) = refusal {
                                let retry_after = shared.admission.retry_after_secs();
                                if !send(Message::text(ws_refusal(protocol, &id, &message, retry_after))) {
                                    break Ending::writer_gone();
                                }
                                continue;
                            }
                            active.insert(id);
                            t.metrics.open_subscriptions.inc();
                            t.metrics.requests.with_label_values(&["ws", "started"]).inc();
                        }
                        ("complete" | "stop", Some(id)) => {
                            permits.remove(&id);
                            if active.remove(&id) {
                                t.metrics.open_subscriptions.dec();
                            }
                        }
                        _ => {}
                    }
                }
                match to_graphql.try_send(bytes) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(bytes)) => pending = Some(bytes),
                    Err(mpsc::error::TrySendError::Closed(_)) => break Ending::quiet("protocol ended"),
                }
            }
            room = to_graphql.reserve(), if pending.is_some() => match room {
                Ok(room) => {
                    if let Some(bytes) = pending.take() {
                        room.send(bytes);
                    }
                }
                Err(_) => break Ending::quiet("protocol ended"),
            },
            room = out.reserve(), if out.capacity() == 0 => {
                // Room again (the reservation is given back at once).
                if room.is_err() {
                    break Ending::writer_gone();
                }
            }
            outgoing = graphql.next(), if out.capacity() > 0 => {
                if limited() {
                    break limited_close();
                }
                match outgoing {
                    Some(WsMessage::Text(text)) => {
                        if let Ok(Outgoing { kind, id: Some(id), payload }) = serde_json::from_str::<Outgoing>(&text) {
                            if kind == "complete" || kind == "error" {
                                permits.remove(&id);
                                if active.remove(&id) {
                                    t.metrics.open_subscriptions.dec();
                                }
                            }
                            if kind == "next" || kind == "data" {
                                permits.remove(&id);
                                t.metrics.observe_ws_result(&payload);
                            }
                        }
                        if !send(Message::text(text)) {
                            break Ending::writer_gone();
                        }
                    }
                    Some(WsMessage::Close(code, reason)) => break Ending::close(code, format!("protocol close {code}: {reason}")),
                    None => break Ending::quiet("protocol ended"),
                }
            },
            () = &mut init_deadline, if !initialized => {
                break Ending::close(4408, "Connection initialisation timeout");
            }
            _ = keepalive.tick() => {
                if initialized {
                    let ping = match protocol {
                        WebSocketProtocols::GraphQLWS => json!({ "type": "ping" }),
                        WebSocketProtocols::SubscriptionsTransportWS => json!({ "type": "ka" }),
                    };
                    // Skipped when the queue is full: the client is behind anyway.
                    if let Err(mpsc::error::TrySendError::Closed(_)) = out.try_send(Message::text(ping.to_string())) {
                        break Ending::writer_gone();
                    }
                }
            }
            () = out.closed() => break Ending::writer_gone(),
            () = async { let _ = stopping.wait_for(|s| *s).await; } => {
                break Ending::close(1001, "server shutting down");
            }
        }
    };
    t.metrics.open_subscriptions.sub(active.len() as i64);
    ending
}

/// An operation refused on a socket: an `error` for its id, the socket stays open.
fn ws_refusal(protocol: WebSocketProtocols, id: &str, message: &str, retry_after: u64) -> String {
    let error = json!({
        "message": message,
        "extensions": { "code": "RATE_LIMITED", "retryAfter": retry_after },
    });
    match protocol {
        WebSocketProtocols::GraphQLWS => json!({ "id": id, "type": "error", "payload": [error] }),
        WebSocketProtocols::SubscriptionsTransportWS => {
            json!({ "id": id, "type": "error", "payload": error })
        }
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> warp::http::Request<warp::hyper::Body> {
        let mut builder = warp::http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(warp::hyper::Body::empty()).expect("request")
    }

    #[test]
    fn only_json_posts_to_graphql_are_admitted_in_front_of_the_routes() {
        let json = [
            ("content-type", "application/json"),
            ("content-length", "42"),
        ];
        assert_eq!(
            graphql_json_post(&request("POST", "/graphql", &json)),
            Some(42)
        );
        assert_eq!(
            graphql_json_post(&request("POST", "/graphql", &[("content-length", "7")])),
            Some(7),
            "a body without a content type is the route's to judge, admitted first"
        );
        // Uploads admit in their own route; other paths and methods are the routes'.
        for content_type in [
            "multipart/form-data; boundary=x",
            "  Multipart/Form-Data; boundary=x",
        ] {
            let multipart = [("content-type", content_type), ("content-length", "42")];
            assert_eq!(
                graphql_json_post(&request("POST", "/graphql", &multipart)),
                None
            );
        }
        assert_eq!(graphql_json_post(&request("GET", "/graphql", &json)), None);
        assert_eq!(
            graphql_json_post(&request("POST", "/graphql/x", &json)),
            None
        );
        assert_eq!(
            graphql_json_post(&request("POST", "/internal/slice", &json)),
            None
        );
        // Without a length the route answers 411 itself.
        let chunked = [
            ("content-type", "application/json"),
            ("transfer-encoding", "chunked"),
        ];
        assert_eq!(
            graphql_json_post(&request("POST", "/graphql", &chunked)),
            None
        );
    }
}
