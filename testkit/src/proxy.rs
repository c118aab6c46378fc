//! An HTTP proxy that sits between an AWS client and moto: it records the
//! operation of every request and, when told to, answers in moto's place
//! with throttling or server errors, or drops the connection.
//!
//! Started with `start_strict`, it also refuses what real AWS refuses and
//! moto accepts (see `crate::strict`), before the fault policy is asked.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::cbor;
use crate::strict::{Call, Refusal, Strict, Strictness};

/// What the proxy does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Forward it and return moto's answer.
    Pass,
    /// Answer with the service's throttling error; moto never sees it.
    Throttle,
    /// Answer 500; moto never sees it.
    ServerError,
    /// Forward it (so it takes effect) but answer 500: a lost response.
    ForwardThenFail,
    /// Close the connection without an answer; moto never sees it.
    Drop,
    /// Answer 400 with this EC2 error code (such as `DependencyViolation`);
    /// moto never sees it.
    Ec2Error(&'static str),
    /// Answer 400 with this error code in the query protocol's shape (RDS,
    /// ELBv2, IAM, SNS), such as `InvalidDBInstanceState`; moto never sees it.
    QueryError(&'static str),
    /// Forward it and replace text in moto's answer: a resource that stays
    /// in a state moto never holds it in (an RDS instance `creating`).
    Rewrite(&'static str, &'static str),
}

/// The request as the policy sees it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// 0-based position among all requests.
    pub index: usize,
    /// `CreateVpc`, `GetSecretValue`, ...
    pub operation: String,
    /// 1 for a call's first request, 2 for its first retry, ...: the SDK's
    /// `amz-sdk-request: attempt=N` header (1 when absent).
    pub attempt: u32,
}

type Policy = Arc<dyn Fn(&Seen) -> Fault + Send + Sync>;

pub struct FaultProxy {
    pub url: String,
    log: Arc<Mutex<Vec<Logged>>>,
    policy: Arc<Mutex<Policy>>,
    strict: Option<Arc<Strict>>,
    task: tokio::task::JoinHandle<()>,
}

/// What every connection of one proxy shares.
#[derive(Clone)]
struct Shared {
    log: Arc<Mutex<Vec<Logged>>>,
    policy: Arc<Mutex<Policy>>,
    strict: Option<Arc<Strict>>,
    client: Client<HttpConnector, Full<Bytes>>,
    target: String,
}

impl FaultProxy {
    /// Starts a proxy to `target` (e.g. moto's URL) that passes everything.
    pub async fn start(target: &str) -> FaultProxy {
        FaultProxy::launch(target, None).await
    }

    /// Starts a proxy to `target` that first refuses, as real AWS does,
    /// what `strictness` asks for; the fault policy sees only the rest.
    pub async fn start_strict(target: &str, strictness: Strictness) -> FaultProxy {
        FaultProxy::launch(target, Some(strictness)).await
    }

    async fn launch(target: &str, strictness: Option<Strictness>) -> FaultProxy {
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .expect("bind the proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        // No idle upstream connections: moto closes idle keep-alive
        // connections on its own clock, and a request sent on one that it
        // has just closed fails as if AWS had dropped it.
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build_http();
        let target = target.trim_end_matches('/').to_string();
        let shared = Shared {
            log: Arc::default(),
            policy: Arc::new(Mutex::new(Arc::new(|_: &Seen| Fault::Pass))),
            strict: strictness
                .map(|rules| Arc::new(Strict::new(rules, target.clone(), client.clone()))),
            client,
            target,
        };
        let (log, policy, strict) = (
            shared.log.clone(),
            shared.policy.clone(),
            shared.strict.clone(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| handle(req, shared.clone()));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy {
            url,
            log,
            policy,
            strict,
            task,
        }
    }

    /// The task starts ECS would fail because the task definition's
    /// execution role may not read a secret it names, pull its image or
    /// write its logs (RunTask's tasks stop with the reason; a service's
    /// tasks would never start), in order.
    pub fn task_start_failures(&self) -> Vec<String> {
        self.strict
            .as_ref()
            .map(|strict| strict.start_failures())
            .unwrap_or_default()
    }

    /// The requests the strict layer answered in moto's place, in order
    /// (none for a proxy from `start`).
    pub fn strict_refusals(&self) -> Vec<Refusal> {
        self.strict
            .as_ref()
            .map(|strict| strict.refusals())
            .unwrap_or_default()
    }

    /// Replaces the fault policy.
    pub fn set_policy(&self, policy: impl Fn(&Seen) -> Fault + Send + Sync + 'static) {
        *self.policy.lock().expect("policy lock") = Arc::new(policy);
    }

    /// Every operation seen so far, in order (strict refusals included).
    pub fn operations(&self) -> Vec<String> {
        self.log
            .lock()
            .expect("log lock")
            .iter()
            .map(|logged| logged.operation.clone())
            .collect()
    }

    /// Every request seen so far, in order: its operation and its body as
    /// text (a query-protocol form or JSON).
    pub fn requests(&self) -> Vec<(String, String)> {
        self.log
            .lock()
            .expect("log lock")
            .iter()
            .map(|logged| {
                let body = String::from_utf8_lossy(&logged.body).into_owned();
                (logged.operation.clone(), body)
            })
            .collect()
    }

    /// The JSON bodies of the requests for `operation` (JSON protocols).
    pub fn bodies(&self, operation: &str) -> Vec<serde_json::Value> {
        self.log
            .lock()
            .expect("log lock")
            .iter()
            .filter(|logged| logged.operation == operation)
            .filter_map(|logged| serde_json::from_slice(&logged.body).ok())
            .collect()
    }

    /// How many requests the fault policy answered with a fault (strict
    /// refusals are not faults: see `strict_refusals`).
    pub fn faults(&self) -> usize {
        self.log
            .lock()
            .expect("log lock")
            .iter()
            .filter(|logged| logged.fault.is_some_and(|f| f != Fault::Pass))
            .count()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Debug)]
struct Dropped;
impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}
impl std::error::Error for Dropped {}

/// One request seen: its operation, the fault the policy gave it (`None`
/// when the strict layer refused it first), its body.
struct Logged {
    operation: String,
    fault: Option<Fault>,
    body: Bytes,
}

async fn handle(req: Request<Incoming>, shared: Shared) -> Result<Response<Full<Bytes>>, Dropped> {
    let (mut parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    // RPC v2 CBOR goes to moto, and through every check, as AWS JSON.
    let Some(json) = cbor::request_to_json(parts.uri.path(), &parts.headers, &body) else {
        return answer(parts, body, shared).await;
    };
    parts.headers = json.headers;
    parts.uri = json.path.parse().map_err(|_| Dropped)?;
    let (mut answer_parts, answer_body) = answer(parts, json.body, shared).await?.into_parts();
    let body = answer_body.collect().await.map_err(|_| Dropped)?.to_bytes();
    let body = cbor::response_to_cbor(&mut answer_parts.headers, &body);
    Ok(Response::from_parts(answer_parts, Full::new(body)))
}

/// Checks, logs and answers one request: in moto's place, or by moto.
async fn answer(
    parts: hyper::http::request::Parts,
    body: Bytes,
    shared: Shared,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let Shared {
        log,
        policy,
        strict,
        client,
        target,
    } = shared;
    let json_protocol = parts.headers.contains_key("x-amz-target");
    let operation = operation_of(&parts.method, parts.uri.path(), &parts.headers, &body);
    let call = Call {
        operation: &operation,
        path: parts.uri.path(),
        headers: &parts.headers,
        body: &body,
    };
    if let Some(strict) = &strict
        && let Some(refusal) = strict.refuse(&call).await
    {
        log.lock().map_err(|_| Dropped)?.push(Logged {
            operation: operation.clone(),
            fault: None,
            body: body.clone(),
        });
        return Ok(refusal);
    }
    let fault = {
        let policy = policy.lock().map(|p| p.clone()).map_err(|_| Dropped)?;
        let mut log = log.lock().map_err(|_| Dropped)?;
        let seen = Seen {
            index: log.len(),
            operation: operation.clone(),
            attempt: attempt_of(&parts.headers),
        };
        let fault = policy(&seen);
        log.push(Logged {
            operation: operation.clone(),
            fault: Some(fault),
            body: body.clone(),
        });
        fault
    };
    match fault {
        Fault::Drop => Err(Dropped),
        Fault::Throttle => Ok(throttle(json_protocol)),
        Fault::ServerError => Ok(server_error(json_protocol)),
        Fault::QueryError(code) => Ok(error_response(
            StatusCode::BAD_REQUEST,
            "text/xml",
            None,
            &format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
                 <Message>injected by the fault proxy</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
            ),
        )),
        Fault::Ec2Error(code) => Ok(error_response(
            StatusCode::BAD_REQUEST,
            "text/xml",
            None,
            &format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code>\
                 <Message>injected by the fault proxy</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>"
            ),
        )),
        Fault::Pass | Fault::ForwardThenFail | Fault::Rewrite(..) => {
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let mut forward = Request::builder()
                .method(parts.method.clone())
                .uri(format!("{target}{path}"));
            for (name, value) in &parts.headers {
                if name != "host" {
                    forward = forward.header(name, value);
                }
            }
            let forward = forward.body(Full::new(body.clone())).map_err(|_| Dropped)?;
            let answer = client.request(forward).await.map_err(|_| Dropped)?;
            let (answer_parts, answer_body) = answer.into_parts();
            let answer_body = answer_body.collect().await.map(|b| b.to_bytes());
            // What moto carried out counts even when the client never hears
            // of it (ForwardThenFail), and as moto said it (before Rewrite).
            if let (Some(strict), Ok(answer_body)) = (&strict, &answer_body) {
                strict.observe(&call, answer_parts.status, answer_body);
            }
            if fault == Fault::ForwardThenFail {
                return Ok(server_error(json_protocol));
            }
            let mut body = answer_body.map_err(|_| Dropped)?;
            let mut status = answer_parts.status;
            if let Some(strict) = &strict
                && let Some((now_status, now_body)) = strict.rewrite(&call, status, &body)
            {
                (status, body) = (now_status, now_body);
            }
            if let Fault::Rewrite(from, to) = fault {
                body = Bytes::from(String::from_utf8_lossy(&body).replace(from, to));
            }
            let mut response = Response::builder().status(status);
            for (name, value) in &answer_parts.headers {
                if name != "transfer-encoding" && name != "content-length" {
                    response = response.header(name, value);
                }
            }
            response.body(Full::new(body)).map_err(|_| Dropped)
        }
    }
}

/// Which attempt of its call a request is, from `amz-sdk-request:
/// attempt=2; max=8`.
fn attempt_of(headers: &hyper::HeaderMap) -> u32 {
    headers
        .get("amz-sdk-request")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(';')
                .find_map(|part| part.trim().strip_prefix("attempt="))
        })
        .and_then(|n| n.parse().ok())
        .unwrap_or(1)
}

/// `X-Amz-Target: secretsmanager.CreateSecret` for JSON protocols,
/// `Action=CreateVpc` in the form body for query protocols, and the method
/// and path for API Gateway's REST protocol (`DELETE /v2/apis/ID`).
fn operation_of(
    method: &hyper::Method,
    path: &str,
    headers: &hyper::HeaderMap,
    body: &[u8],
) -> String {
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    String::from_utf8_lossy(body)
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_string)
        .or_else(|| rest_operation(method, path))
        .unwrap_or_else(|| "?".to_string())
}

/// API Gateway v2's operation from the method and the last collection in
/// the path, and whether an id follows it.
fn rest_operation(method: &hyper::Method, path: &str) -> Option<String> {
    const COLLECTIONS: [(&str, &str); 5] = [
        ("apis", "Api"),
        ("integrations", "Integration"),
        ("routes", "Route"),
        ("stages", "Stage"),
        ("vpclinks", "VpcLink"),
    ];
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segments.first() != Some(&"v2") {
        return None;
    }
    if segments.get(1) == Some(&"tags") {
        return Some(
            match *method {
                hyper::Method::GET => "GetTags",
                hyper::Method::DELETE => "UntagResource",
                _ => "TagResource",
            }
            .to_string(),
        );
    }
    let (position, name) = segments.iter().enumerate().rev().find_map(|(i, s)| {
        COLLECTIONS
            .iter()
            .find(|(plural, _)| plural == s)
            .map(|(_, singular)| (i, *singular))
    })?;
    let with_id = position + 1 < segments.len();
    Some(match (method.as_str(), with_id) {
        ("GET", false) => format!("Get{name}s"),
        ("GET", true) => format!("Get{name}"),
        ("POST", _) => format!("Create{name}"),
        ("PATCH", _) => format!("Update{name}"),
        ("DELETE", _) => format!("Delete{name}"),
        _ => return None,
    })
}

fn throttle(json_protocol: bool) -> Response<Full<Bytes>> {
    if json_protocol {
        error_response(
            StatusCode::BAD_REQUEST,
            "application/x-amz-json-1.1",
            Some("ThrottlingException"),
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        )
    } else {
        error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/xml",
            None,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>RequestLimitExceeded</Code>\
             <Message>Request limit exceeded.</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>",
        )
    }
}

fn server_error(json_protocol: bool) -> Response<Full<Bytes>> {
    if json_protocol {
        error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/x-amz-json-1.1",
            Some("InternalServiceError"),
            r#"{"__type":"InternalServiceError","message":"injected by the fault proxy"}"#,
        )
    } else {
        error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/xml",
            None,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>InternalError</Code>\
             <Message>injected by the fault proxy</Message></Error></Errors><RequestID>fault-proxy</RequestID></Response>",
        )
    }
}

pub(crate) fn error_response(
    status: StatusCode,
    content_type: &str,
    error_type: Option<&str>,
    body: &str,
) -> Response<Full<Bytes>> {
    let mut response = Response::builder()
        .status(status)
        .header("content-type", content_type);
    if let Some(t) = error_type {
        response = response.header("x-amzn-errortype", t);
    }
    response
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// Moto behind the strict proxy, the way every test should reach "AWS":
/// what AWS refuses is refused, whatever moto would accept. Clients use
/// [`StrictAws::url`]; both servers stop when it is dropped.
pub struct StrictAws {
    pub moto: crate::Moto,
    pub proxy: FaultProxy,
}

impl StrictAws {
    pub async fn start() -> StrictAws {
        let moto = tokio::task::spawn_blocking(crate::Moto::start)
            .await
            .expect("start moto");
        let proxy = FaultProxy::start_strict(&moto.url, Strictness::new()).await;
        StrictAws { moto, proxy }
    }

    /// Where clients send their calls: the proxy.
    pub fn url(&self) -> &str {
        &self.proxy.url
    }

    /// An SDK configuration that sends every call through the proxy, in
    /// `us-east-1`, with moto's test credentials.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(self.url())
            .region(aws_config::Region::new("us-east-1"))
            .test_credentials()
            .load()
            .await
    }
}
