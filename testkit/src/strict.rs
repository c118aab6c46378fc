//! A layer of the fault proxy that refuses what real AWS refuses and moto
//! accepts: ids used before they have propagated, a service Application
//! Auto Scaling cannot see yet, the first ECS cluster of an account, names
//! reused too soon after a delete, deletes of resources something still
//! depends on, names AWS's API references rule out, and a Fargate task run
//! without its network. It also plays back what moto never does: a one-off
//! task (RunTask) running for a moment and then stopping, its container
//! exited 0.
//!
//! It looks at every request before the fault policy does. To answer, it
//! may ask moto itself (the proxy's target) about the current state; those
//! look-ups go straight to moto and never appear in the proxy's log.

mod clock;
mod depends;
mod engines;
mod iam;
mod names;
mod wire;

pub use iam::ASSUMED_BY;

pub use clock::typical;
pub use engines::POSTGRES_VERSIONS;

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{HeaderMap, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::proxy::error_response;
use wire::{Element, xml_escape};

/// What the strict layer enforces. Every window is how long AWS takes to
/// catch up with itself; real AWS takes seconds to a minute, tests want
/// fractions of a second.
#[derive(Clone, Debug, PartialEq)]
pub struct Strictness {
    /// How long after an EC2 create (VPC, subnet, internet gateway, Elastic
    /// IP, NAT gateway, route table, security group) other EC2 writes that
    /// name the new id are answered with its `...NotFound` error.
    pub ec2_propagation: Duration,
    /// How long after ECS CreateService Application Auto Scaling answers
    /// that the service does not exist.
    pub ecs_service_propagation: Duration,
    /// How many CreateCluster calls fail because ECS's service-linked role
    /// does not exist yet, as in a fresh account.
    pub ecs_linked_role_refusals: u32,
    /// How long after DeleteQueue a queue of the same name cannot be made
    /// (AWS: 60 seconds).
    pub queue_name_hold: Duration,
    /// How long after DeleteSecret with ForceDeleteWithoutRecovery a secret
    /// of the same name cannot be made.
    pub secret_name_hold: Duration,
    /// Refuse deletes AWS refuses while something still depends on the
    /// resource, looking the dependants up in moto at the time.
    pub dependency_checks: bool,
    /// Check the names and sizes of creates against AWS's rules.
    pub name_checks: bool,
    /// How long a task started by RunTask runs before it is reported
    /// stopped with its container exited 0.
    pub one_off_task_run: Duration,
    /// How many of the first one-off tasks stop before they run, as ECS
    /// stops a task whose execution role IAM does not let it use yet.
    pub one_off_init_failures: u32,
    /// How long a new secret is missing from ListSecrets (AWS documents
    /// ListSecrets as eventually consistent; DescribeSecret sees it).
    pub secret_list_lag: Duration,
    /// Play AWS's clock back at this scale (1/60: a minute in a second):
    /// slow resources pass through their intermediate states for the
    /// times of `cli/engine/aws-clock.toml`. `None`: ready at once.
    pub clock: Option<f64>,
    /// Authorize requests made with credentials moto's STS issued against
    /// the role's policies and boundary, and check the trust policy of
    /// every role taken (see `strict/iam.rs`).
    pub iam: bool,
}

impl Strictness {
    /// Everything on, with windows of 300 ms and one refused CreateCluster.
    pub fn new() -> Strictness {
        let window = Duration::from_millis(300);
        Strictness {
            ec2_propagation: window,
            ecs_service_propagation: window,
            ecs_linked_role_refusals: 1,
            queue_name_hold: window,
            secret_name_hold: window,
            dependency_checks: true,
            name_checks: true,
            one_off_task_run: window,
            secret_list_lag: window,
            one_off_init_failures: 0,
            clock: None,
            iam: true,
        }
    }

    /// The same, with AWS's clock played back at `scale`.
    pub fn timed(self, scale: f64) -> Strictness {
        Strictness {
            clock: Some(scale),
            ..self
        }
    }

    /// Nothing enforced: the proxy behaves as one from `FaultProxy::start`.
    pub fn off() -> Strictness {
        Strictness {
            ec2_propagation: Duration::ZERO,
            ecs_service_propagation: Duration::ZERO,
            ecs_linked_role_refusals: 0,
            queue_name_hold: Duration::ZERO,
            secret_name_hold: Duration::ZERO,
            dependency_checks: false,
            name_checks: false,
            one_off_task_run: Duration::ZERO,
            secret_list_lag: Duration::ZERO,
            one_off_init_failures: 0,
            clock: None,
            iam: false,
        }
    }

    /// The same, with every window set to `window`.
    pub fn windows(self, window: Duration) -> Strictness {
        Strictness {
            ec2_propagation: window,
            ecs_service_propagation: window,
            queue_name_hold: window,
            secret_name_hold: window,
            secret_list_lag: window,
            ..self
        }
    }
}

impl Default for Strictness {
    fn default() -> Strictness {
        Strictness::new()
    }
}

/// One request the strict layer answered in moto's place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// `CreateTags`, `DeleteSubnet`, ...
    pub operation: String,
    /// The error code the client got, as its SDK reports it.
    pub code: String,
    /// Why, in words: what was missing, too young, in the way or misnamed.
    pub reason: String,
}

/// The request as the proxy hands it over.
pub(crate) struct Call<'a> {
    pub operation: &'a str,
    pub path: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The AWS service a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    Ec2,
    Elbv2,
    Rds,
    Iam,
    Sns,
    Sqs,
    SecretsManager,
    Ecs,
    ApplicationAutoScaling,
    Logs,
    Ecr,
    ApiGatewayV2,
    CloudWatch,
    Sts,
    Other,
}

/// A request, decoded once for every check.
struct Request<'a> {
    service: Service,
    operation: &'a str,
    path: &'a str,
    headers: &'a HeaderMap,
    /// The form of query-protocol requests (EC2, ELBv2, RDS, IAM, SNS).
    params: Vec<(String, String)>,
    /// The body of JSON requests (`Null` otherwise).
    json: Value,
}

impl<'a> Request<'a> {
    fn new(call: &Call<'a>) -> Request<'a> {
        let target = call
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok());
        let (params, json) = if target.is_some() || call.path.starts_with("/v2/") {
            (
                Vec::new(),
                serde_json::from_slice(call.body).unwrap_or(Value::Null),
            )
        } else {
            (wire::parse_form(call.body), Value::Null)
        };
        let service = match target {
            Some(target) => match target.split('.').next().unwrap_or_default() {
                "AmazonSQS" => Service::Sqs,
                "secretsmanager" => Service::SecretsManager,
                "AnyScaleFrontendService" => Service::ApplicationAutoScaling,
                prefix if prefix.starts_with("AmazonEC2ContainerServiceV") => Service::Ecs,
                prefix if prefix.starts_with("AmazonEC2ContainerRegistry") => Service::Ecr,
                prefix if prefix.starts_with("Logs_") => Service::Logs,
                // CloudWatch's JSON protocol (the proxy's rendering of the
                // SDK's RPC v2 CBOR).
                "GraniteServiceVersion20100801" => Service::CloudWatch,
                _ => Service::Other,
            },
            None if call.path.starts_with("/v2/") => Service::ApiGatewayV2,
            None => {
                let version = params.iter().find(|(k, _)| k == "Version");
                match version.map(|(_, v)| v.as_str()) {
                    Some("2016-11-15") => Service::Ec2,
                    Some("2015-12-01") => Service::Elbv2,
                    Some("2014-10-31") => Service::Rds,
                    Some("2010-05-08") => Service::Iam,
                    Some("2010-03-31") => Service::Sns,
                    Some("2011-06-15") => Service::Sts,
                    _ => Service::Other,
                }
            }
        };
        Request {
            service,
            operation: call.operation,
            path: call.path,
            headers: call.headers,
            params,
            json,
        }
    }

    /// A form parameter.
    fn form(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A top-level string of a JSON body.
    fn json_str(&self, key: &str) -> Option<&str> {
        self.json.get(key).and_then(Value::as_str)
    }
}

/// A refusal before it is answered: the code and message the client gets,
/// and the reason kept in the record.
struct Verdict {
    code: &'static str,
    message: String,
    reason: String,
}

impl Verdict {
    fn new(code: &'static str, message: String, reason: String) -> Verdict {
        Verdict {
            code,
            message,
            reason,
        }
    }
}

/// What the layer remembers between requests.
#[derive(Default)]
struct Memory {
    /// EC2 ids still propagating: id, its NotFound code, its noun, birth.
    young_ids: Vec<(String, &'static str, &'static str, Instant)>,
    /// `service/<cluster>/<service>` of new ECS services.
    young_services: Vec<(String, Instant)>,
    linked_role_refusals_left: u32,
    deleted_queues: Vec<(String, Instant)>,
    deleted_secrets: Vec<(String, Instant)>,
    /// Tasks started by RunTask, when, and why ECS fails to start it, if
    /// it does.
    one_off_tasks: Vec<(String, Instant, Option<String>)>,
    /// Why tasks of a task definition would fail to start (its execution
    /// role may not read a secret it names, or pull its image), by the
    /// task definition a RunTask, CreateService or UpdateService named.
    start_denials: Vec<(String, String)>,
    /// Every task start the execution role would fail, in order.
    start_failures: Vec<String>,
    /// Secrets made by CreateSecret, by name, and when.
    new_secrets: Vec<(String, Instant)>,
    refusals: Vec<Refusal>,
    clock: Option<clock::Clock>,
    iam: iam::Sessions,
}

impl Memory {
    /// Drops what is older than its window.
    fn forget(&mut self, rules: &Strictness) {
        self.young_ids
            .retain(|(_, _, _, born)| born.elapsed() < rules.ec2_propagation);
        self.young_services
            .retain(|(_, born)| born.elapsed() < rules.ecs_service_propagation);
        self.deleted_queues
            .retain(|(_, at)| at.elapsed() < rules.queue_name_hold);
        self.deleted_secrets
            .retain(|(_, at)| at.elapsed() < rules.secret_name_hold);
    }
}

/// The strict layer of one proxy.
pub(crate) struct Strict {
    rules: Strictness,
    /// Moto's URL, for look-ups.
    target: String,
    client: Client<HttpConnector, Full<Bytes>>,
    memory: Mutex<Memory>,
}

impl Strict {
    pub(crate) fn new(
        rules: Strictness,
        target: String,
        client: Client<HttpConnector, Full<Bytes>>,
    ) -> Strict {
        let memory = Memory {
            linked_role_refusals_left: rules.ecs_linked_role_refusals,
            clock: rules.clock.map(clock::Clock::new),
            ..Memory::default()
        };
        Strict {
            rules,
            target,
            client,
            memory: Mutex::new(memory),
        }
    }

    fn memory(&self) -> MutexGuard<'_, Memory> {
        // Every update is a single push or decrement, so the memory is whole
        // even if a request panicked while holding the lock.
        self.memory.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every refusal so far, in order.
    pub(crate) fn refusals(&self) -> Vec<Refusal> {
        self.memory().refusals.clone()
    }

    /// Every task start ECS would fail for its execution role's rights.
    pub(crate) fn start_failures(&self) -> Vec<String> {
        self.memory().start_failures.clone()
    }

    /// AWS's answer when real AWS would refuse the request; `None` lets it
    /// through to the fault policy and moto.
    pub(crate) async fn refuse(&self, call: &Call<'_>) -> Option<Response<Full<Bytes>>> {
        let request = Request::new(call);
        // IAM first: AWS authorizes a request before it looks at it.
        let denied = match self.rules.iam {
            true => self.authorize(&request).await,
            false => None,
        };
        if self.rules.iam && denied.is_none() {
            self.check_task_start(&request).await;
        }
        if denied.is_none()
            && let Some(stand_in) = engines::answer(&request)
        {
            return Some(stand_in);
        }
        let verdict = match denied.or_else(|| self.refuse_from_memory(&request)) {
            Some(verdict) => verdict,
            None if self.rules.dependency_checks => depends::check(self, &request).await?,
            None => return None,
        };
        self.memory().refusals.push(Refusal {
            operation: request.operation.to_string(),
            code: verdict.code.to_string(),
            reason: verdict.reason.clone(),
        });
        Some(answer(request.service, &verdict))
    }

    /// The checks that need nothing but the request and what was seen.
    fn refuse_from_memory(&self, request: &Request<'_>) -> Option<Verdict> {
        if self.rules.name_checks
            && let Some(verdict) = names::check(request)
        {
            return Some(verdict);
        }
        if self.rules.name_checks
            && let Some(verdict) = engines::check_create(request)
        {
            return Some(verdict);
        }
        let mut memory = self.memory();
        memory.forget(&self.rules);
        if let Some(verdict) = memory.clock.as_ref().and_then(|c| c.refuse(request)) {
            return Some(verdict);
        }
        match (request.service, request.operation) {
            (Service::Ecs, "CreateCluster") if memory.linked_role_refusals_left > 0 => {
                memory.linked_role_refusals_left -= 1;
                Some(Verdict::new(
                    "InvalidParameterException",
                    "Unable to assume the service linked role. Please verify that the ECS service linked role exists."
                        .to_string(),
                    "ECS's service-linked role does not exist yet in a fresh account".to_string(),
                ))
            }
            (Service::ApplicationAutoScaling, "RegisterScalableTarget" | "PutScalingPolicy") => {
                let resource = request.json_str("ResourceId")?;
                let (_, born) = memory
                    .young_services
                    .iter()
                    .find(|(service, _)| service == resource)?;
                Some(Verdict::new(
                    "ValidationException",
                    format!("ECS service doesn't exist: {resource}"),
                    format!(
                        "{resource} was created {:?} ago; Application Auto Scaling sees it after {:?}",
                        born.elapsed(),
                        self.rules.ecs_service_propagation
                    ),
                ))
            }
            (Service::Ecs, "RunTask")
                if request.json["launchType"] == "FARGATE"
                    && request.json["networkConfiguration"].is_null() =>
            {
                Some(Verdict::new(
                    "InvalidParameterException",
                    "Network Configuration must be provided when networkMode 'awsvpc' is specified."
                        .to_string(),
                    "a Fargate task runs in awsvpc mode and needs its subnets and groups".to_string(),
                ))
            }
            (Service::ApiGatewayV2, "CreateStage" | "UpdateStage") => {
                // A stage may not ask for more than the account's quota:
                // 10,000 requests a second, bursts of 5,000.
                let settings = &request.json["defaultRouteSettings"];
                let rate = settings["throttlingRateLimit"].as_f64().unwrap_or(0.0);
                let burst = settings["throttlingBurstLimit"].as_i64().unwrap_or(0);
                (rate > 10_000.0 || burst > 5_000 || rate < 0.0 || burst < 0).then(|| {
                    Verdict::new(
                        "BadRequestException",
                        format!(
                            "Throttling limits (rate {rate}, burst {burst}) exceed the account's limits"
                        ),
                        "API Gateway's quota per region is 10,000 requests a second, bursts of 5,000"
                            .to_string(),
                    )
                })
            }
            (Service::ApiGatewayV2, "CreateRoute" | "UpdateRoute") => {
                let key = request.json_str("routeKey")?;
                (!is_route_key(key)).then(|| {
                    Verdict::new(
                        "BadRequestException",
                        format!("Unable to create route {key}: the route key is not valid"),
                        "an HTTP API's route key is $default, or a method and a path (a greedy variable last)"
                            .to_string(),
                    )
                })
            }
            (Service::Elbv2, "CreateRule" | "ModifyRule") => path_patterns_refusal(request),
            (Service::Iam, "PutRolePolicy") => {
                // A role's inline policies hold 10,240 characters at most,
                // white space not counted.
                let size = request
                    .form("PolicyDocument")?
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .count();
                (size > 10_240).then(|| {
                    Verdict::new(
                        "LimitExceeded",
                        format!(
                            "Maximum policy size of 10240 bytes exceeded for role {}",
                            request.form("RoleName").unwrap_or_default()
                        ),
                        format!("an inline policy of {size} characters"),
                    )
                })
            }
            (Service::Iam, "CreatePolicy" | "CreatePolicyVersion") => {
                // A managed policy holds 6,144 characters at most.
                let size = request
                    .form("PolicyDocument")?
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .count();
                (size > 6_144).then(|| {
                    Verdict::new(
                        "LimitExceeded",
                        "Cannot exceed quota for PolicySize: 6144".to_string(),
                        format!("a managed policy of {size} characters"),
                    )
                })
            }
            (Service::CloudWatch, "PutMetricAlarm") => metric_alarm_refusal(&request.json),
            (Service::CloudWatch, "DescribeAlarms") => {
                let records = request.json["MaxRecords"].as_i64().unwrap_or(50);
                (!(1..=100).contains(&records)).then(|| {
                    Verdict::new(
                        "InvalidParameterValue",
                        format!("The parameter MaxRecords must be between 1 and 100, not {records}."),
                        "DescribeAlarms answers 1 to 100 alarms a page".to_string(),
                    )
                })
            }
            (Service::CloudWatch, "DeleteAlarms") => {
                let names = request.json["AlarmNames"].as_array().map_or(0, Vec::len);
                (names > 100).then(|| {
                    Verdict::new(
                        "InvalidParameterValue",
                        format!("The collection AlarmNames must not have more than 100 items, not {names}."),
                        "DeleteAlarms deletes up to 100 alarms a call".to_string(),
                    )
                })
            }
            (Service::Logs, "FilterLogEvents") => {
                // A filter pattern of 1024 characters at most, a page of
                // 10,000 events at most.
                let pattern = request.json_str("filterPattern").map_or(0, str::len);
                let limit = request.json["limit"].as_i64().unwrap_or(1);
                (pattern > 1024 || !(1..=10_000).contains(&limit)).then(|| {
                    Verdict::new(
                        "InvalidParameterException",
                        "1 validation error detected: filterPattern or limit is out of bounds".to_string(),
                        format!("a filter of {pattern} characters, a limit of {limit}"),
                    )
                })
            }
            (Service::Sqs, "ReceiveMessage") => {
                // SQS's bounds: up to 10 messages, a visibility of 12 hours
                // at most, a long poll of 20 seconds at most.
                let number = request.json["MaxNumberOfMessages"].as_i64().unwrap_or(1);
                let visibility = request.json["VisibilityTimeout"].as_i64().unwrap_or(0);
                let wait = request.json["WaitTimeSeconds"].as_i64().unwrap_or(0);
                let wrong = if !(1..=10).contains(&number) {
                    Some(format!("Value {number} for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided."))
                } else if !(0..=43_200).contains(&visibility) {
                    Some(format!("Value {visibility} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200, if provided."))
                } else if !(0..=20).contains(&wait) {
                    Some(format!("Value {wait} for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided."))
                } else {
                    None
                };
                wrong.map(|message| {
                    Verdict::new(
                        "InvalidParameterValue",
                        message,
                        "outside ReceiveMessage's bounds".to_string(),
                    )
                })
            }
            (Service::Sqs, "ChangeMessageVisibilityBatch" | "DeleteMessageBatch" | "SendMessageBatch") => {
                let entries = request.json["Entries"].as_array().map_or(0, Vec::len);
                (entries == 0 || entries > 10).then(|| {
                    let (code, message) = if entries == 0 {
                        ("AWS.SimpleQueueService.EmptyBatchRequest", "There should be at least one entry in the request.".to_string())
                    } else {
                        ("AWS.SimpleQueueService.TooManyEntriesInBatchRequest", format!("Maximum number of entries per request are 10. You have sent {entries}."))
                    };
                    Verdict::new(code, message, "a batch holds 1 to 10 entries".to_string())
                })
            }
            (Service::Sqs, "CreateQueue") => {
                let name = request.json_str("QueueName")?;
                let (_, at) = memory.deleted_queues.iter().find(|(q, _)| q == name)?;
                Some(Verdict::new(
                    "AWS.SimpleQueueService.QueueDeletedRecently",
                    "You must wait 60 seconds after deleting a queue before you can create another with the same name."
                        .to_string(),
                    format!("queue {name} was deleted {:?} ago", at.elapsed()),
                ))
            }
            (Service::SecretsManager, "BatchGetSecretValue") => {
                // 1 to 20 ids, or filters, never both (API reference).
                let ids = request.json["SecretIdList"].as_array().map(Vec::len);
                let filtered = !request.json["Filters"].is_null();
                let wrong = match ids {
                    Some(n) if n > 20 => Some(("ValidationException", format!(
                        "1 validation error detected: Value at 'secretIdList' failed to satisfy constraint: Member must have length less than or equal to 20 (it has {n})"
                    ))),
                    Some(0) => Some(("ValidationException", "1 validation error detected: Value at 'secretIdList' failed to satisfy constraint: Member must have length greater than or equal to 1".to_string())),
                    Some(_) if filtered => Some(("InvalidParameterException", "Either 'SecretIdList' or 'Filters' must be provided, but not both.".to_string())),
                    None if !filtered => Some(("InvalidParameterException", "Either 'SecretIdList' or 'Filters' must be provided.".to_string())),
                    _ => None,
                };
                wrong.map(|(code, message)| {
                    Verdict::new(code, message, "outside BatchGetSecretValue's bounds".to_string())
                })
            }
            (Service::SecretsManager, "CreateSecret") => {
                let name = request.json_str("Name")?;
                let (_, at) = memory.deleted_secrets.iter().find(|(s, _)| s == name)?;
                Some(Verdict::new(
                    "InvalidRequestException",
                    "You can't create this secret because a secret with this name is already scheduled for deletion."
                        .to_string(),
                    format!("secret {name} was force-deleted {:?} ago", at.elapsed()),
                ))
            }
            (Service::Ec2, operation) if writes(operation) => {
                let (id, code, noun, born) = request
                    .params
                    .iter()
                    .filter(|(key, _)| key != "Action" && key != "Version")
                    .find_map(|(_, value)| memory.young_ids.iter().find(|(id, ..)| id == value))?;
                let message = if *code == "InvalidGroup.NotFound" {
                    format!("The security group '{id}' does not exist")
                } else {
                    format!("The {noun} ID '{id}' does not exist")
                };
                Some(Verdict::new(
                    code,
                    message,
                    format!(
                        "{id} was created {:?} ago and has not propagated yet ({:?})",
                        born.elapsed(),
                        self.rules.ec2_propagation
                    ),
                ))
            }
            _ => None,
        }
    }

    /// Takes note of what a request moto carried out (`status` and `answer`
    /// are moto's) changed for later checks.
    pub(crate) fn observe(&self, call: &Call<'_>, status: StatusCode, answer: &[u8]) {
        if !status.is_success() {
            return;
        }
        let request = Request::new(call);
        let now = Instant::now();
        if let Some(clock) = self.memory().clock.as_mut() {
            clock.observe(&request, answer);
        }
        self.observe_iam(&request, answer);
        match (request.service, request.operation) {
            (Service::Ec2, operation) => {
                let Some((tag, code, noun)) = ec2_created(operation) else {
                    return;
                };
                let Some(id) = Element::parse(&String::from_utf8_lossy(answer))
                    .and_then(|root| root.find(tag).map(|e| e.text.clone()))
                else {
                    return;
                };
                self.memory().young_ids.push((id, code, noun, now));
            }
            (Service::Ecs, "CreateService") => {
                let answer: Value = serde_json::from_slice(answer).unwrap_or_default();
                let service = &answer["service"];
                let cluster = service["clusterArn"]
                    .as_str()
                    .and_then(|arn| arn.rsplit('/').next());
                if let (Some(cluster), Some(name)) = (cluster, service["serviceName"].as_str()) {
                    let resource = format!("service/{cluster}/{name}");
                    self.memory().young_services.push((resource, now));
                }
            }
            (Service::Ecs, "RunTask") => {
                let answer: Value = serde_json::from_slice(answer).unwrap_or_default();
                let started = answer["tasks"].as_array().cloned().unwrap_or_default();
                let mut memory = self.memory();
                for task in started {
                    if let Some(arn) = task["taskArn"].as_str() {
                        let denied = request.json_str("taskDefinition").and_then(|definition| {
                            memory
                                .start_denials
                                .iter()
                                .rev()
                                .find(|(d, _)| d == definition)
                                .map(|(_, why)| why.clone())
                        });
                        let fails = denied.or_else(|| {
                            ((memory.one_off_tasks.len() as u32) < self.rules.one_off_init_failures)
                                .then(|| "AccessDeniedException".to_string())
                        });
                        memory.one_off_tasks.push((arn.to_string(), now, fails));
                    }
                }
            }
            (Service::Sqs, "DeleteQueue") => {
                let name = request
                    .json_str("QueueUrl")
                    .and_then(|url| url.trim_end_matches('/').rsplit('/').next());
                if let Some(name) = name {
                    self.memory().deleted_queues.push((name.to_string(), now));
                }
            }
            (Service::SecretsManager, "CreateSecret") => {
                if let Some(name) = request.json_str("Name") {
                    self.memory().new_secrets.push((name.to_string(), now));
                }
            }
            (Service::SecretsManager, "DeleteSecret")
                if request.json["ForceDeleteWithoutRecovery"].as_bool() == Some(true) =>
            {
                let answer: Value = serde_json::from_slice(answer).unwrap_or_default();
                if let Some(name) = answer["Name"].as_str() {
                    self.memory().deleted_secrets.push((name.to_string(), now));
                }
            }
            _ => {}
        }
    }
}

impl Strict {
    /// Moto's answer as AWS would give it now, when AWS's clock is played
    /// back and the answer describes something still changing state.
    pub(crate) fn rewrite(
        &self,
        call: &Call<'_>,
        status: StatusCode,
        answer: &[u8],
    ) -> Option<(StatusCode, Bytes)> {
        let request = Request::new(call);
        if (request.service, request.operation) == (Service::Ecs, "DescribeTasks")
            && status.is_success()
        {
            return self.one_off_tasks_played(answer);
        }
        if (request.service, request.operation) == (Service::SecretsManager, "ListSecrets")
            && status.is_success()
        {
            return self.young_secrets_unlisted(answer);
        }
        if (request.service, request.operation) == (Service::Ecs, "DescribeServices")
            && status.is_success()
            && let Some(failed) = self.failed_starts_played(answer)
        {
            return Some(failed);
        }
        self.memory()
            .clock
            .as_mut()
            .and_then(|clock| clock.rewrite(&request, status, answer))
    }

    /// ListSecrets is eventually consistent on AWS: a secret made a moment
    /// ago may not be listed yet.
    fn young_secrets_unlisted(&self, answer: &[u8]) -> Option<(StatusCode, Bytes)> {
        let mut answer: Value = serde_json::from_slice(answer).ok()?;
        let memory = self.memory();
        let young: Vec<&str> = memory
            .new_secrets
            .iter()
            .filter(|(_, born)| born.elapsed() < self.rules.secret_list_lag)
            .map(|(name, _)| name.as_str())
            .collect();
        let listed = answer["SecretList"].as_array_mut()?;
        let before = listed.len();
        listed.retain(|s| !s["Name"].as_str().is_some_and(|n| young.contains(&n)));
        (listed.len() != before).then(|| (StatusCode::OK, Bytes::from(answer.to_string())))
    }

    /// A service whose task definition's execution role may not start its
    /// tasks never gets one running: ECS's circuit breaker fails the
    /// deployment, and the service's events say why. Moto shows it
    /// running.
    fn failed_starts_played(&self, answer: &[u8]) -> Option<(StatusCode, Bytes)> {
        let mut answer: Value = serde_json::from_slice(answer).ok()?;
        let memory = self.memory();
        // A task definition as a request names it (`family`, `family:3` or
        // its ARN) against the ARN a deployment shows.
        let named = |key: &str, arn: &str| {
            let short = |d: &str| d.rsplit('/').next().unwrap_or(d).to_string();
            let (key, arn) = (short(key), short(arn));
            key == arn || (!key.contains(':') && arn.split(':').next() == Some(key.as_str()))
        };
        let denied = |definition: &str| {
            memory
                .start_denials
                .iter()
                .find_map(|(key, why)| named(key, definition).then(|| why.clone()))
        };
        let mut changed = false;
        for service in answer["services"].as_array_mut()? {
            let name = service["serviceName"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let mut reason = None;
            for deployment in service["deployments"].as_array_mut().into_iter().flatten() {
                let definition = deployment["taskDefinition"].as_str().unwrap_or_default();
                if deployment["status"] != "PRIMARY" {
                    continue;
                }
                if let Some(why) = denied(definition) {
                    let desired = deployment["desiredCount"].clone();
                    deployment["rolloutState"] = json!("FAILED");
                    deployment["rolloutStateReason"] =
                        json!("ECS deployment circuit breaker: tasks failed to start.");
                    deployment["runningCount"] = json!(0);
                    deployment["failedTasks"] = desired;
                    reason = Some(why);
                }
            }
            if let Some(why) = reason {
                changed = true;
                service["runningCount"] = json!(0);
                let event = json!({
                    "id": "strict-proxy-start",
                    "createdAt": 0,
                    "message": format!(
                        "(service {name}) failed to launch a task with (error ResourceInitializationError: unable to pull secrets or registry auth: {why})."
                    ),
                });
                match service["events"].as_array_mut() {
                    Some(events) => events.insert(0, event),
                    None => service["events"] = json!([event]),
                }
            }
        }
        changed.then(|| (StatusCode::OK, Bytes::from(answer.to_string())))
    }

    /// Moto keeps a task RUNNING for ever; a one-off task on AWS runs its
    /// command and stops. Tasks started by RunTask are reported stopped,
    /// their containers exited 0, once `one_off_task_run` has passed (the
    /// first `one_off_init_failures` stopped before they ran).
    fn one_off_tasks_played(&self, answer: &[u8]) -> Option<(StatusCode, Bytes)> {
        let mut answer: Value = serde_json::from_slice(answer).ok()?;
        let memory = self.memory();
        let mut changed = false;
        for task in answer["tasks"].as_array_mut()? {
            let Some((_, _, fails)) = memory.one_off_tasks.iter().find(|(arn, born, _)| {
                task["taskArn"] == arn.as_str() && born.elapsed() >= self.rules.one_off_task_run
            }) else {
                continue;
            };
            changed = true;
            task["lastStatus"] = json!("STOPPED");
            task["desiredStatus"] = json!("STOPPED");
            if let Some(why) = fails {
                // What ECS says when the execution role cannot be used (yet).
                task["stopCode"] = json!("TaskFailedToStart");
                task["stoppedReason"] = json!(format!(
                    "ResourceInitializationError: unable to pull secrets or registry auth: \
                     execution resource retrieval failed: unable to retrieve secret from asm: {why}"
                ));
                for container in task["containers"].as_array_mut().into_iter().flatten() {
                    container["lastStatus"] = json!("STOPPED");
                    if let Some(fields) = container.as_object_mut() {
                        fields.remove("exitCode");
                    }
                }
                continue;
            }
            task["stopCode"] = json!("EssentialContainerExited");
            task["stoppedReason"] = json!("Essential container in task exited");
            for container in task["containers"].as_array_mut().into_iter().flatten() {
                container["lastStatus"] = json!("STOPPED");
                container["exitCode"] = json!(0);
            }
        }
        changed.then(|| (StatusCode::OK, Bytes::from(answer.to_string())))
    }
}

/// What an HTTP API takes as a route key: `$default`, or a method and a
/// path such as `GET /pets/{id}`, a greedy variable (`{proxy+}`) last.
fn is_route_key(key: &str) -> bool {
    const METHODS: [&str; 8] = [
        "ANY", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS",
    ];
    if key == "$default" {
        return true;
    }
    let Some((method, path)) = key.split_once(' ') else {
        return false;
    };
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    METHODS.contains(&method)
        && path.starts_with('/')
        && !path.contains(' ')
        && segments
            .iter()
            .enumerate()
            .all(|(i, s)| !s.ends_with("+}") || i + 1 == segments.len())
}

/// A listener rule's conditions hold five values at most in all; a path
/// pattern is 1 to 128 of the characters the ALB matches on.
fn path_patterns_refusal(request: &Request<'_>) -> Option<Verdict> {
    let values: Vec<&str> = request
        .params
        .iter()
        .filter(|(k, _)| k.starts_with("Conditions.member.") && k.contains(".Values.member."))
        .map(|(_, v)| v.as_str())
        .collect();
    if values.len() > 5 {
        return Some(Verdict::new(
            "ValidationError",
            "A rule can only have '5' condition values".to_string(),
            format!("a rule with {} condition values", values.len()),
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "_-.$/~\"'@:+&*?".contains(c);
    let bad = values
        .iter()
        .find(|v| v.is_empty() || v.len() > 128 || !v.chars().all(allowed))?;
    Some(Verdict::new(
        "ValidationError",
        format!("Condition value '{bad}' is not valid"),
        "a path pattern is 1 to 128 characters of A-Z a-z 0-9 _ - . $ / ~ \" ' @ : + & * ?"
            .to_string(),
    ))
}

/// Whether an EC2 operation writes (reads never see the propagation delay
/// in this layer).
fn writes(operation: &str) -> bool {
    !["Describe", "Get", "List"]
        .iter()
        .any(|read| operation.starts_with(read))
}

/// For an EC2 create: the element of moto's answer holding the new id, the
/// error AWS gives while that id propagates, and its noun in the message.
fn ec2_created(operation: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match operation {
        "CreateVpc" => ("vpcId", "InvalidVpcID.NotFound", "vpc"),
        "CreateSubnet" => ("subnetId", "InvalidSubnetID.NotFound", "subnet"),
        "CreateInternetGateway" => (
            "internetGatewayId",
            "InvalidInternetGatewayID.NotFound",
            "internetGateway",
        ),
        "AllocateAddress" => ("allocationId", "InvalidAllocationID.NotFound", "allocation"),
        "CreateNatGateway" => ("natGatewayId", "InvalidNatGatewayID.NotFound", "natGateway"),
        "CreateRouteTable" => ("routeTableId", "InvalidRouteTableID.NotFound", "routeTable"),
        "CreateSecurityGroup" => ("groupId", "InvalidGroup.NotFound", "security group"),
        _ => return None,
    })
}

/// The error answer of `service`'s protocol, shaped as AWS shapes it.
fn answer(service: Service, verdict: &Verdict) -> Response<Full<Bytes>> {
    let (code, message) = (verdict.code, xml_escape(&verdict.message));
    // AWS answers a refusal of IAM's with 403, everything else here 400.
    let status = match code {
        "AccessDenied"
        | "AccessDeniedException"
        | "AuthorizationError"
        | "UnauthorizedOperation" => StatusCode::FORBIDDEN,
        _ => StatusCode::BAD_REQUEST,
    };
    let query_error = |namespace: &str| {
        error_response(
            status,
            "text/xml",
            None,
            &format!(
                "<ErrorResponse xmlns=\"{namespace}\"><Error><Type>Sender</Type><Code>{code}</Code>\
                 <Message>{message}</Message></Error><RequestId>strict-proxy</RequestId></ErrorResponse>"
            ),
        )
    };
    match service {
        Service::Ec2 => error_response(
            status,
            "text/xml",
            None,
            &format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code>\
                 <Message>{message}</Message></Error></Errors><RequestID>strict-proxy</RequestID></Response>"
            ),
        ),
        Service::Elbv2 => query_error("http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"),
        Service::Rds => query_error("http://rds.amazonaws.com/doc/2014-10-31/"),
        Service::Iam => query_error("https://iam.amazonaws.com/doc/2010-05-08/"),
        Service::Sns => query_error("http://sns.amazonaws.com/doc/2010-03-31/"),
        Service::Sts => query_error("https://sts.amazonaws.com/doc/2011-06-15/"),
        // SQS speaks JSON but keeps its query-protocol codes: the SDK reads
        // the code from `x-amzn-query-error`, `__type` names the shape.
        Service::Sqs => {
            let shape = code.rsplit('.').next().unwrap_or(code);
            let body = json!({
                "__type": format!("com.amazonaws.sqs#{shape}"),
                "message": verdict.message,
            });
            Response::builder()
                .status(status)
                .header("content-type", "application/x-amz-json-1.0")
                .header("x-amzn-query-error", format!("{code};Sender"))
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
        }
        Service::ApiGatewayV2 => {
            let status = if code == "ConflictException" {
                StatusCode::CONFLICT
            } else {
                status
            };
            error_response(
                status,
                "application/json",
                Some(code),
                &json!({ "message": verdict.message }).to_string(),
            )
        }
        Service::SecretsManager
        | Service::Ecs
        | Service::ApplicationAutoScaling
        | Service::Logs
        | Service::Ecr
        | Service::CloudWatch
        | Service::Other => error_response(
            status,
            "application/x-amz-json-1.1",
            Some(code),
            &json!({ "__type": code, "message": verdict.message }).to_string(),
        ),
    }
}

/// What CloudWatch's PutMetricAlarm refuses of a plain metric alarm: a
/// period other than 10, 20, 30 or a multiple of 60 seconds, no evaluation
/// period, both a statistic and an extended one (or neither), a way of
/// treating missing data it does not know, more than 50 tags.
fn metric_alarm_refusal(json: &Value) -> Option<Verdict> {
    let refuse = |message: String, reason: &str| {
        Some(Verdict::new(
            "InvalidParameterValue",
            message,
            reason.to_string(),
        ))
    };
    if json["Metrics"].is_array() {
        return None;
    }
    let period = json["Period"].as_i64().unwrap_or(0);
    if !(matches!(period, 10 | 20 | 30) || (period > 0 && period % 60 == 0)) {
        return refuse(
            format!("The parameter Period must be 10, 20, 30 or a multiple of 60, not {period}."),
            "an alarm's period is 10, 20, 30 or a multiple of 60 seconds",
        );
    }
    if json["EvaluationPeriods"].as_i64().unwrap_or(0) < 1 {
        return refuse(
            "The parameter EvaluationPeriods must be at least 1.".to_string(),
            "an alarm evaluates at least one period",
        );
    }
    if json["Statistic"].is_string() == json["ExtendedStatistic"].is_string() {
        return refuse(
            "Exactly one of Statistic and ExtendedStatistic must be given.".to_string(),
            "a metric alarm has one statistic",
        );
    }
    if let Some(treat) = json["TreatMissingData"].as_str()
        && !matches!(treat, "breaching" | "notBreaching" | "ignore" | "missing")
    {
        return refuse(
            format!(
                "The parameter TreatMissingData must be breaching, notBreaching, ignore or missing, not {treat}."
            ),
            "unknown TreatMissingData",
        );
    }
    let tags = json["Tags"].as_array().map_or(0, Vec::len);
    (tags > 50).then_some(())?;
    refuse(
        format!("An alarm takes at most 50 tags, not {tags}."),
        "at most 50 tags",
    )
}
