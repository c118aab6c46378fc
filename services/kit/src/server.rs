//! The HTTP edge every service shares: request ids, request logs, limits,
//! problem+json for unknown routes and methods, and a graceful shutdown
//! that finishes the requests in flight.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, Request, StatusCode};
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::error::ApiError;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The largest body a service accepts.
const BODY_LIMIT: usize = 256 * 1024;

/// A whole service: its routes (state already given), the health checks
/// on its database, its API docs, all behind the shared edge of [`app`].
pub fn service(routes: Router, pool: sqlx::PgPool, spec: utoipa::openapi::OpenApi) -> Router {
    app(routes
        .merge(crate::health::routes(pool))
        .merge(crate::docs::routes(spec)))
}

/// Wraps a service's routes with the shared edge.
pub fn app(routes: Router) -> Router {
    routes
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed("method not allowed on this route".into()) })
        .layer(axum::extract::DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, Duration::from_secs(30)))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<Body>| {
                    let id = req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                // One line per answered request, carrying the span's request id.
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        // Outermost: take the caller's id or make one, and echo it back.
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Serves until `shutdown` resolves, then stops accepting and waits for the
/// requests in flight.
pub async fn serve(
    app: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // The peer's address reaches handlers that limit per client.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Listens on `port` and serves `app` until SIGTERM or Ctrl-C: on every
/// interface (a task's, which the load balancer reaches), or on the
/// address `BIND_ADDRESS` names (`techctl dev` binds its services to
/// loopback, out of the network's reach).
pub async fn listen(service: &str, port: u16, app: Router) -> anyhow::Result<()> {
    let address = std::env::var("BIND_ADDRESS").unwrap_or_else(|_| "0.0.0.0".into());
    let listener = TcpListener::bind((address.as_str(), port))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {address}:{port} (BIND_ADDRESS): {e}"))?;
    tracing::info!(port, %address, "{service} listening");
    serve(app, listener, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGTERM (ECS stopping the task) or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// `SERVICE health`: the container health check of a task (the image has
/// no shell and no curl). Exits 0 when `/health/live` on this container's
/// `PORT` answers 200 within two seconds.
fn health_probe() -> std::process::ExitCode {
    use std::io::{Read, Write};
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(80);
    let timeout = Duration::from_secs(2);
    let answer = (|| -> std::io::Result<String> {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream = std::net::TcpStream::connect_timeout(&address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.write_all(
            b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        )?;
        let mut head = [0u8; 16];
        let read = stream.read(&mut head)?;
        Ok(String::from_utf8_lossy(&head[..read]).into_owned())
    })();
    match answer {
        Ok(head) if head.starts_with("HTTP/1.1 200") => std::process::ExitCode::SUCCESS,
        Ok(head) => {
            eprintln!("unhealthy: /health/live answered {head:?}");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("unhealthy: nothing answers on port {port}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The whole `main` of a service: logs first, then its settings (a bad
/// variable exits 2 with its name), then `run` (a failure exits 1).
pub async fn main<S, Fut>(
    service: &str,
    settings: impl Future<Output = Result<S, crate::config::ConfigError>>,
    run: impl FnOnce(S) -> Fut,
) -> std::process::ExitCode
where
    Fut: Future<Output = anyhow::Result<()>>,
{
    if std::env::args().nth(1).as_deref() == Some("health") {
        return health_probe();
    }
    crate::telemetry::init(service);
    // The one-off database set-up task runs a service's image.
    if std::env::args().nth(1).as_deref() == Some("db-init") {
        let code = crate::provision::run_from_env().await;
        crate::telemetry::flush();
        return code;
    }
    let settings = match settings.await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let outcome = run(settings).await;
    if let Err(e) = &outcome {
        tracing::error!(error = ?e, "{service} stopped");
    }
    crate::telemetry::flush();
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
