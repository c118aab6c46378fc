//! The local gateway: one port doing what API Gateway and the internal ALB
//! do in AWS. Each request goes to the service whose blueprint path prefix
//! matches (the prefix itself or anything below it, longest first, as the
//! ALB's `/prefix` and `/prefix/*` rules); CORS follows the blueprint's
//! `[gateway]`; every request carries an `x-request-id` (the caller's, or
//! a new one) to the service and back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::console::Sink;
use blueprint::Blueprint;

type Body = BoxBody<Bytes, hyper::Error>;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// How long a service may take to answer before the gateway gives up, as
/// API Gateway's integration timeout.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);
/// Headers that belong to one connection, never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// One path prefix and the service behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub prefix: String,
    pub service: String,
    pub port: u16,
}

/// The routing table, longest prefix first.
#[derive(Debug, Clone)]
pub struct Routes(Vec<Route>);

impl Routes {
    /// The blueprint's paths, each to its service's local port.
    pub fn new(blueprint: &Blueprint, port_of: impl Fn(&str) -> u16) -> Routes {
        let mut routes: Vec<Route> = blueprint
            .services()
            .flat_map(|(name, service)| {
                let port = port_of(name);
                service.paths.get_ref().iter().map(move |prefix| Route {
                    prefix: match prefix.get_ref().trim_end_matches('/') {
                        "" => "/".to_string(),
                        trimmed => trimmed.to_string(),
                    },
                    service: name.to_string(),
                    port,
                })
            })
            .collect();
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        Routes(routes)
    }

    /// The route of `path`: its prefix, or anything below the prefix (the
    /// root `/` routes itself alone, as the ALB's pattern `/`).
    pub fn find(&self, path: &str) -> Option<&Route> {
        self.0.iter().find(|r| {
            path == r.prefix
                || r.prefix != "/"
                    && path
                        .strip_prefix(&r.prefix)
                        .is_some_and(|rest| rest.starts_with('/'))
        })
    }

    pub fn all(&self) -> &[Route] {
        &self.0
    }
}

/// The blueprint's CORS settings.
#[derive(Debug, Clone)]
pub struct Cors {
    pub origins: Vec<String>,
    pub methods: Vec<String>,
    pub headers: Vec<String>,
    pub max_age_seconds: u32,
}

impl Cors {
    pub fn new(blueprint: &Blueprint) -> Cors {
        let gateway = &blueprint.gateway;
        let strings = |list: &[serde_spanned::Spanned<String>]| {
            list.iter().map(|s| s.get_ref().clone()).collect()
        };
        Cors {
            origins: strings(gateway.cors_allow_origins.get_ref()),
            methods: strings(gateway.cors_allow_methods.get_ref()),
            headers: gateway.cors_allow_headers.clone(),
            max_age_seconds: *gateway.cors_max_age_seconds.get_ref(),
        }
    }

    /// The `access-control-allow-origin` answer for `origin`, if allowed.
    fn allow_origin(&self, origin: &str) -> Option<String> {
        if self.origins.iter().any(|o| o == "*") {
            Some("*".into())
        } else {
            self.origins
                .iter()
                .any(|o| o.eq_ignore_ascii_case(origin))
                .then(|| origin.to_string())
        }
    }
}

pub struct Gateway {
    routes: Routes,
    cors: Cors,
    client: Client<HttpConnector, Incoming>,
    log: Arc<Sink>,
}

impl Gateway {
    pub fn new(routes: Routes, cors: Cors, log: Arc<Sink>) -> Gateway {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(2)));
        Gateway {
            routes,
            cors,
            client: Client::builder(TokioExecutor::new()).build(connector),
            log,
        }
    }

    /// Serves on `listener` until `stop` turns true.
    pub async fn serve(self: Arc<Self>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(_) => continue,
                },
                _ = stop.wait_for(|s| *s) => return,
            };
            let gateway = self.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let gateway = gateway.clone();
                    async move { Ok::<_, Infallible>(gateway.handle(request, peer).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    }

    async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let request_id = request
            .headers()
            .get(&REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|id| usable_request_id(id))
            .map(str::to_string)
            .unwrap_or_else(new_request_id);
        let origin = request
            .headers()
            .get(hyper::header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let method = request.method().clone();
        let path = request.uri().path().to_string();

        let (mut response, service) = if is_preflight(&request) {
            (self.preflight(origin.as_deref()), None)
        } else {
            match self.routes.find(&path).cloned() {
                Some(route) => (
                    self.forward(request, &route, &request_id, peer).await,
                    Some(route.service),
                ),
                None if path == "/" && method == Method::GET => (self.index(), None),
                None => (self.unknown(&path), None),
            }
        };

        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            headers.insert(REQUEST_ID, value);
        }
        if let Some(allowed) = origin.as_deref().and_then(|o| self.cors.allow_origin(o)) {
            set(headers, "access-control-allow-origin", &allowed);
            set(headers, "vary", "origin");
        }
        self.log.to_file(&format!(
            "{method} {path} {} {} {}ms request_id={request_id}",
            response.status().as_u16(),
            service.as_deref().unwrap_or("gateway"),
            started.elapsed().as_millis()
        ));
        response
    }

    async fn forward(
        &self,
        mut request: Request<Incoming>,
        route: &Route,
        request_id: &str,
        peer: SocketAddr,
    ) -> Response<Body> {
        let path_and_query = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let uri = format!("http://127.0.0.1:{}{path_and_query}", route.port);
        match uri.parse() {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => return problem(StatusCode::BAD_REQUEST, "the request's path is not valid"),
        }
        let headers = request.headers_mut();
        for name in HOP_BY_HOP {
            headers.remove(name);
        }
        let host = headers
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
            Some(earlier) => format!("{earlier}, {}", peer.ip()),
            None => peer.ip().to_string(),
        };
        set(headers, "x-forwarded-for", &forwarded_for);
        set(headers, "x-forwarded-proto", "http");
        if let Some(host) = host {
            set(headers, "x-forwarded-host", &host);
        }
        set(headers, "x-request-id", request_id);

        match tokio::time::timeout(UPSTREAM_TIMEOUT, self.client.request(request)).await {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                for name in HOP_BY_HOP {
                    parts.headers.remove(name);
                }
                Response::from_parts(parts, body.boxed())
            }
            Ok(Err(_)) => problem(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!(
                    "the {} service is not answering on port {}; it may be restarting (see .techctl/logs/{}.log)",
                    route.service, route.port, route.service
                ),
            ),
            Err(_) => problem(
                StatusCode::GATEWAY_TIMEOUT,
                &format!(
                    "the {} service did not answer within {}s",
                    route.service,
                    UPSTREAM_TIMEOUT.as_secs()
                ),
            ),
        }
    }

    fn preflight(&self, origin: Option<&str>) -> Response<Body> {
        let mut response = empty(StatusCode::NO_CONTENT);
        if origin.and_then(|o| self.cors.allow_origin(o)).is_some() {
            let headers = response.headers_mut();
            set(
                headers,
                "access-control-allow-methods",
                &self.cors.methods.join(","),
            );
            set(
                headers,
                "access-control-allow-headers",
                &self.cors.headers.join(","),
            );
            set(
                headers,
                "access-control-max-age",
                &self.cors.max_age_seconds.to_string(),
            );
        }
        response
    }

    /// `GET /`: which prefixes go where.
    fn index(&self) -> Response<Body> {
        let routes: Vec<_> = self
            .routes
            .all()
            .iter()
            .map(|r| json!({"prefix": r.prefix, "service": r.service, "docs": format!("http://127.0.0.1:{}/docs", r.port)}))
            .collect();
        json_response(StatusCode::OK, &json!({ "routes": routes }))
    }

    fn unknown(&self, path: &str) -> Response<Body> {
        let mut prefixes: Vec<&str> = self
            .routes
            .all()
            .iter()
            .map(|r| r.prefix.as_str())
            .collect();
        prefixes.sort_unstable();
        problem(
            StatusCode::NOT_FOUND,
            &format!(
                "no service serves {path}; the gateway routes {} (GET / lists them)",
                prefixes.join(", ")
            ),
        )
    }
}

fn is_preflight<B>(request: &Request<B>) -> bool {
    request.method() == Method::OPTIONS
        && request.headers().contains_key(hyper::header::ORIGIN)
        && request
            .headers()
            .contains_key(hyper::header::ACCESS_CONTROL_REQUEST_METHOD)
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// A caller's id is kept when it is short and plain.
fn usable_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// A random id in the UUID layout (version 4).
fn new_request_id() -> String {
    let hi = fastrand::u64(..);
    let lo = fastrand::u64(..);
    let hex = format!("{hi:016x}{lo:016x}");
    format!(
        "{}-{}-4{}-{:x}{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[13..16],
        8 + (lo >> 62),
        &hex[17..20],
        &hex[20..32]
    )
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()).map_err(|n| match n {}).boxed());
    *response.status_mut() = status;
    response
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(body.to_string()))
            .map_err(|n| match n {})
            .boxed(),
    );
    *response.status_mut() = status;
    set(response.headers_mut(), "content-type", "application/json");
    response
}

/// An `application/problem+json` answer of the gateway's own.
fn problem(status: StatusCode, detail: &str) -> Response<Body> {
    let body = json!({
        "type": "about:blank",
        "title": status.canonical_reason().unwrap_or("error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = json_response(status, &body);
    set(
        response.headers_mut(),
        "content-type",
        "application/problem+json",
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> Routes {
        let blueprint = blueprint::parse(
            std::path::Path::new("techchallenge.toml"),
            include_str!("../../../blueprints/techchallenge.toml"),
        )
        .unwrap();
        Routes::new(&blueprint, |name| match name {
            "user" => 1,
            "product" => 2,
            "order" => 3,
            "payment" => 4,
            _ => 5,
        })
    }

    #[test]
    fn a_prefix_takes_itself_and_what_is_below_it() {
        let routes = routes();
        let service = |path: &str| routes.find(path).map(|r| r.service.clone());
        assert_eq!(service("/orders").as_deref(), Some("order"));
        assert_eq!(service("/orders/0193/status").as_deref(), Some("order"));
        assert_eq!(service("/ordersx"), None);
        assert_eq!(service("/webhooks/mercadopago").as_deref(), Some("payment"));
        assert_eq!(service("/.well-known/jwks.json").as_deref(), Some("user"));
        assert_eq!(service("/employees").as_deref(), Some("user"));
        assert_eq!(
            service("/production/1/started").as_deref(),
            Some("production")
        );
        // The root routes itself alone: the kiosk opens there.
        assert_eq!(service("/").as_deref(), Some("product"));
        assert_eq!(service("/screens/kiosk").as_deref(), Some("product"));
        assert_eq!(service("/nowhere"), None);
    }

    #[test]
    fn request_ids_are_kept_when_plain_and_made_otherwise() {
        assert!(usable_request_id("abc-123"));
        assert!(!usable_request_id(""));
        assert!(!usable_request_id("has space"));
        assert!(!usable_request_id(&"x".repeat(129)));
        let id = new_request_id();
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(&id[14..15], "4", "{id}");
        assert!(usable_request_id(&id));
    }

    #[test]
    fn cors_answers_the_listed_origins() {
        let cors = Cors {
            origins: vec!["https://totem.example".into()],
            methods: vec!["GET".into()],
            headers: vec![],
            max_age_seconds: 600,
        };
        assert_eq!(
            cors.allow_origin("https://totem.example").as_deref(),
            Some("https://totem.example")
        );
        assert_eq!(cors.allow_origin("https://evil.example"), None);
        let open = Cors {
            origins: vec!["*".into()],
            ..cors
        };
        assert_eq!(
            open.allow_origin("https://any.example").as_deref(),
            Some("*")
        );
    }
}
