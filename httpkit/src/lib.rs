//! The one HTTP/1.1 client of techctl and the services: the services call
//! each other and Mercado Pago with it, `techctl deploy` pushes images to a
//! registry with it, and `techctl dev` talks to the local system with it.
//!
//! HTTPS is verified against the system's CA certificates (rustls with
//! aws-lc-rs); `http://` URLs go in the clear (loopback, a local registry,
//! service to service inside the VPC). Every request has a deadline, and
//! every error names the method and the URL without its query string,
//! where tokens sometimes travel.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

pub use http;

/// Why a request got no answer, or an answer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{method} {url}: no answer within {after:?}")]
    Timeout {
        method: Method,
        url: String,
        after: Duration,
    },
    #[error("{method} {url}: {source}")]
    Exchange {
        method: Method,
        url: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{method} {url}: the request cannot be made: {message}")]
    Request {
        method: Method,
        url: String,
        message: String,
    },
    #[error("unexpected answer ({status}): {excerpt}")]
    Decode {
        status: StatusCode,
        excerpt: String,
        #[source]
        source: serde_json::Error,
    },
}

/// An answer: any status is one; the caller decides what it means.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|source| Error::Decode {
            status: self.status,
            excerpt: self.excerpt(),
            source,
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The start of the body, for an error message.
    pub fn excerpt(&self) -> String {
        String::from_utf8_lossy(&self.body[..self.body.len().min(300)]).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone)]
pub struct HttpClient {
    pool: Pool<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl HttpClient {
    /// A client whose every request gets `timeout` for the whole exchange.
    pub fn new(timeout: Duration) -> HttpClient {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let connector =
            match HttpsConnectorBuilder::new().with_provider_and_native_roots(provider.clone()) {
                Ok(builder) => builder.https_or_http().enable_http1().build(),
                Err(e) => {
                    // Plain HTTP still works; HTTPS fails to verify and says so.
                    tracing::warn!(error = %e, "no CA certificates found; HTTPS calls will fail");
                    let config = rustls::ClientConfig::builder_with_provider(provider)
                        .with_safe_default_protocol_versions()
                        .expect("the default protocol versions are supported")
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth();
                    HttpsConnectorBuilder::new()
                        .with_tls_config(config)
                        .https_or_http()
                        .enable_http1()
                        .build()
                }
            };
        HttpClient {
            pool: Pool::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// Sends `body` with `headers`; any status is an answer.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Response, Error> {
        let shown = strip_query(url).to_string();
        let invalid = |message: String| Error::Request {
            method: method.clone(),
            url: shown.clone(),
            message,
        };
        let mut request = Request::builder().method(method.clone()).uri(url);
        for (name, value) in headers {
            let value = HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("the header {name} is not valid text")))?;
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| invalid(e.to_string()))?;
        let exchange = async {
            let response = self.pool.request(request).await.map_err(Box::new)?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response.into_body().collect().await.map_err(Box::new)?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Response {
                status,
                headers,
                body: body.to_bytes(),
            })
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Err(_) => Err(Error::Timeout {
                method,
                url: shown,
                after: self.timeout,
            }),
            Ok(Err(source)) => Err(Error::Exchange {
                method,
                url: shown,
                source,
            }),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// Sends `body` (if any) as JSON and asks for JSON back.
    pub async fn send_json(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Result<Response, Error> {
        let mut all: Vec<(&str, &str)> = vec![(header::ACCEPT.as_str(), "application/json")];
        let payload = match body {
            Some(body) => {
                all.push((header::CONTENT_TYPE.as_str(), "application/json"));
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        all.extend_from_slice(headers);
        self.send(method, url, &all, payload).await
    }
}

fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::HeaderMap as Headers;
    use axum::routing::{get, post};

    use super::*;

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        url
    }

    #[tokio::test]
    async fn json_goes_out_and_comes_back_with_the_headers_asked_for() {
        let router = Router::new().route(
            "/echo",
            post(|headers: Headers, body: String| async move {
                let token = headers["authorization"].to_str().unwrap().to_string();
                let kind = headers["content-type"].to_str().unwrap().to_string();
                axum::Json(serde_json::json!({ "token": token, "kind": kind, "body": body }))
            }),
        );
        let url = serve(router).await;
        let client = HttpClient::new(Duration::from_secs(5));
        let answer = client
            .send_json(
                Method::POST,
                &format!("{url}/echo"),
                &[("authorization", "Bearer t")],
                Some(&serde_json::json!({ "a": 1 })),
            )
            .await
            .unwrap();
        assert_eq!(answer.status, StatusCode::OK);
        let echoed: serde_json::Value = answer.json().unwrap();
        assert_eq!(echoed["token"], "Bearer t");
        assert_eq!(echoed["kind"], "application/json");
        assert_eq!(echoed["body"], "{\"a\":1}");
    }

    #[tokio::test]
    async fn a_slow_answer_is_a_timeout_naming_the_url_without_its_query() {
        let router = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        );
        let url = serve(router).await;
        let client = HttpClient::new(Duration::from_millis(100));
        let error = client
            .send(
                Method::GET,
                &format!("{url}/slow?token=secret"),
                &[],
                Bytes::new(),
            )
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Timeout { .. }), "{error}");
        let text = error.to_string();
        assert!(text.contains("/slow") && !text.contains("secret"), "{text}");
    }

    #[tokio::test]
    async fn nothing_listening_is_an_exchange_error_with_its_cause() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = HttpClient::new(Duration::from_secs(5));
        let error = client
            .send(
                Method::GET,
                &format!("http://127.0.0.1:{port}/"),
                &[],
                Bytes::new(),
            )
            .await
            .unwrap_err();
        assert!(matches!(error, Error::Exchange { .. }), "{error}");
        assert!(
            std::error::Error::source(&error).is_some(),
            "the cause is kept"
        );
    }

    #[test]
    fn an_answer_that_is_not_json_says_what_came() {
        let answer = Response {
            status: StatusCode::BAD_GATEWAY,
            headers: HeaderMap::new(),
            body: Bytes::from_static(b"<html>bad gateway</html>"),
        };
        let error = answer.json::<serde_json::Value>().unwrap_err().to_string();
        assert!(
            error.contains("502") && error.contains("bad gateway"),
            "{error}"
        );
    }
}
