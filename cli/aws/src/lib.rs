//! The AWS provider: everything that talks to AWS. One module per area,
//! each knowing how to observe, create, update and delete its kinds and
//! which errors mean "already gone"; [`AwsProvider`] puts them behind the
//! engine's [`engine::apply::Provider`]. Beside it: [`verify`] (is every
//! flow the system needs open on AWS, and nothing else?) and [`deploy`]
//! (task definitions and ECS rollouts).

/// Sends an SDK request and turns its error into an [`AwsError`] named
/// after the operation.
macro_rules! sdk {
    ($op:literal, $call:expr) => {
        $call.await.map_err(|e| $crate::AwsError::from_sdk($op, e))
    };
}

/// Like [`sdk!`], for a call that names resources this run may have just
/// created: retried while AWS does not know them yet ([`Aws::settled`]).
macro_rules! sdk_settled {
    ($aws:expr, [$($id:expr),* $(,)?], $op:literal, $call:expr) => {
        $aws.settled(&[$(AsRef::<str>::as_ref(&$id)),*], || async { sdk!($op, $call) })
            .await
    };
}

/// The request options for a create sent through [`Aws::create_once`]: the
/// SDK must not retry it, as a retried create could make a second resource.
macro_rules! no_retry {
    ($krate:ident) => {
        $krate::config::Builder::default().retry_config(aws_config::retry::RetryConfig::disabled())
    };
}

pub mod alarms;
pub mod alb;
pub mod batch;
pub mod boundary;
pub mod database;
pub mod dead_letters;
pub mod deploy;
pub mod ecs;
pub mod gateway;
pub mod lock;
pub mod log_events;
pub mod messaging;
pub mod network;
mod policy;
pub mod preflight;
mod provider;
pub mod registry;
pub mod secrets;
pub mod verify;

use std::collections::{BTreeMap, HashMap};
use std::error::Error as StdError;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region};
use aws_smithy_runtime::client::retries::{RetryPartition, TokenBucket};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;

pub use engine::apply::Step;
use engine::apply::{GaveUp, Unresolved};
use engine::plan::{LogicalId, Observed, Spec};
pub use provider::{AwsProvider, Ctx, RetryInUse, create, delete, observe, update};

/// The code of an [`AwsError`] that AWS's answer makes the user's to fix:
/// the blueprint asks for something the account or region does not offer.
pub const YOURS_TO_FIX: &str = "techctl.YoursToFix";

pub use engine::plan::expand::{TAG_ID, TAG_STACK};

/// The logical id a stack resource carries, or a stand-in for one that
/// carries only the stack tag, so it is still deleted with the stack.
pub fn logical_id(tags: &BTreeMap<String, String>, physical: &str) -> LogicalId {
    tags.get(TAG_ID)
        .and_then(|t| LogicalId::parse(t))
        .unwrap_or_else(|| {
            let cleaned: String = physical
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_lowercase()
                    } else {
                        '-'
                    }
                })
                .collect();
            LogicalId::new(&["untracked", cleaned.trim_matches('-')])
        })
}

/// A resource found by its stack tag.
pub fn observed(
    physical: &str,
    tags: BTreeMap<String, String>,
    spec: Spec,
    state: Option<String>,
) -> Observed {
    Observed {
        id: logical_id(&tags, physical),
        physical_id: physical.to_string(),
        spec,
        tags,
        state,
        attributes: BTreeMap::new(),
    }
}

/// Whether `tags` mark a resource of `stack`.
pub fn in_stack(tags: &BTreeMap<String, String>, stack: &str) -> bool {
    tags.get(TAG_STACK).map(String::as_str) == Some(stack)
}

/// How to reach AWS. Anything left `None` comes from the standard AWS
/// configuration chain (environment, profiles, `AWS_ENDPOINT_URL`).
#[derive(Clone, Debug, Default)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub profile: Option<String>,
    /// Overrides `AWS_ENDPOINT_URL`; tests point this at their emulator.
    pub endpoint_url: Option<String>,
    /// Fixed fake credentials, for emulators only.
    pub emulator_credentials: bool,
    /// Attempts per call, retries included (`AWS_MAX_ATTEMPTS`; default 8).
    pub max_attempts: Option<u32>,
}

/// Attempts per call when `AWS_MAX_ATTEMPTS` does not say: provisioning
/// runs long, and a throttled call is worth waiting for.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;

/// The AWS clients of one command run, sharing one call log.
#[derive(Clone, Debug)]
pub struct Aws {
    pub ec2: aws_sdk_ec2::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub apigw: aws_sdk_apigatewayv2::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub iam: aws_sdk_iam::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub rds: aws_sdk_rds::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub autoscaling: aws_sdk_applicationautoscaling::Client,
    pub sts: aws_sdk_sts::Client,
    /// The account the credentials belong to, asked once when first needed.
    account: Arc<tokio::sync::OnceCell<String>>,
    pub region: String,
    pub calls: CallLog,
    /// Attempts per call, for the retries the engine makes itself.
    pub max_attempts: u32,
    /// Ids this run created, and when: calls naming them may meet AWS's
    /// eventual consistency.
    pub made: MadeIds,
    /// Polls of several resources of a kind that share one call.
    pub polls: Arc<Polls>,
}

/// The kinds whose polls are shared (their Describe call takes several ids).
#[derive(Debug, Default)]
pub struct Polls {
    pub nat_gateways: batch::Batch<aws_sdk_ec2::types::NatGatewayState>,
}

/// How long after a create AWS may still answer that the new resource does
/// not exist ("Eventual consistency in the Amazon EC2 API"); the same bound
/// Terraform's AWS provider gives EC2's propagation.
pub const PROPAGATION: Duration = Duration::from_secs(120);

/// The physical ids a run created, with the moment of their creation.
#[derive(Clone, Debug, Default)]
pub struct MadeIds(Arc<Mutex<HashMap<String, Instant>>>);

impl MadeIds {
    pub fn mark(&self, id: &str) {
        if let Ok(mut made) = self.0.lock() {
            made.insert(id.to_string(), Instant::now());
        }
    }

    /// Whether `id` was created by this run less than [`PROPAGATION`] ago.
    pub fn is_fresh(&self, id: &str) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|made| made.get(id).map(|at| at.elapsed() < PROPAGATION))
            .unwrap_or(false)
    }

    /// Whether `e` is the NotFound AWS may still give for one of `names`
    /// because this run made it a moment ago. Any other error, and a
    /// NotFound for what is older or was not made here, is real.
    pub fn excuses(&self, names: &[&str], e: &AwsError) -> bool {
        e.is_not_found() && names.iter().any(|n| self.is_fresh(n))
    }
}

/// Where the region came from, so a mismatch can be explained.
#[derive(Debug, thiserror::Error)]
#[error(
    "the blueprint describes a stack in {blueprint} but the AWS configuration selects {configured} ({source_hint})\n  pass --region {blueprint}, or change stack.region in the blueprint"
)]
pub struct RegionMismatch {
    pub blueprint: String,
    pub configured: String,
    pub source_hint: &'static str,
}

/// Why the clients could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Region(#[from] RegionMismatch),
    #[error(
        "cannot add to the call log {path} ({reason})\n  set TECHCTL_CALL_LOG to a file that can be written, or unset it"
    )]
    CallLog { path: String, reason: String },
}

/// Builds the clients. The region is `--region`, else the configuration
/// chain's, else the blueprint's; it must be the blueprint's in the end,
/// because the availability zones named there belong to that region.
pub async fn connect(settings: &AwsSettings, blueprint_region: &str) -> Result<Aws, ConnectError> {
    let max_attempts = settings.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS).max(1);
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(max_attempts)
                .with_initial_backoff(Duration::from_millis(200))
                .with_max_backoff(Duration::from_secs(20)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(10))
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        );
    if let Some(profile) = &settings.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if settings.emulator_credentials {
        loader = loader.test_credentials();
    }
    let (region, source_hint) = match &settings.region {
        Some(r) => (r.clone(), "from --region"),
        None => {
            let chain = aws_config::default_provider::region::DefaultRegionChain::builder();
            let chain = match &settings.profile {
                Some(p) => chain.profile_name(p),
                None => chain,
            };
            match chain.build().region().await {
                Some(r) => (r.to_string(), "from AWS_REGION or the profile"),
                None => (blueprint_region.to_string(), "from the blueprint"),
            }
        }
    };
    if region != blueprint_region {
        return Err(ConnectError::Region(RegionMismatch {
            blueprint: blueprint_region.to_string(),
            configured: region,
            source_hint,
        }));
    }
    let config = loader.region(Region::new(region.clone())).load().await;
    let calls = CallLog::from_env().map_err(|e| ConnectError::CallLog {
        path: std::env::var(CALL_LOG_ENV).unwrap_or_default(),
        reason: e.to_string(),
    })?;
    // The SDK's default retry quota stops retrying after a burst of
    // throttling, which would fail a long `up` half way; the attempt cap
    // and the backoff above bound the retries instead.
    let partition = RetryPartition::custom("techctl")
        .token_bucket(TokenBucket::unlimited())
        .build();
    // Every client shares the retry partition and the call log.
    macro_rules! client {
        ($krate:ident) => {
            $krate::Client::from_conf(
                $krate::config::Builder::from(&config)
                    .retry_partition(partition.clone())
                    .interceptor(calls.clone())
                    .build(),
            )
        };
    }
    Ok(Aws {
        ec2: client!(aws_sdk_ec2),
        secrets: client!(aws_sdk_secretsmanager),
        elb: client!(aws_sdk_elasticloadbalancingv2),
        apigw: client!(aws_sdk_apigatewayv2),
        ecs: client!(aws_sdk_ecs),
        iam: client!(aws_sdk_iam),
        logs: client!(aws_sdk_cloudwatchlogs),
        cloudwatch: client!(aws_sdk_cloudwatch),
        rds: client!(aws_sdk_rds),
        ecr: client!(aws_sdk_ecr),
        sns: client!(aws_sdk_sns),
        sqs: client!(aws_sdk_sqs),
        autoscaling: client!(aws_sdk_applicationautoscaling),
        sts: client!(aws_sdk_sts),
        account: Arc::default(),
        region,
        calls,
        max_attempts,
        made: MadeIds::default(),
        polls: Arc::default(),
    })
}

/// One HTTP attempt made to AWS.
#[derive(Clone, Debug, Serialize)]
pub struct Call {
    pub service: String,
    pub operation: String,
    #[serde(skip)]
    pub at: Instant,
}

impl Call {
    /// Reads never change anything; everything else may.
    pub fn is_mutating(&self) -> bool {
        !["Describe", "List", "Get", "BatchGet"]
            .iter()
            .any(|prefix| self.operation.starts_with(prefix))
    }
}

/// Every attempt the clients make, retries included, in order. It is how
/// the summary counts calls and how tests check the order of deletes that
/// moto itself does not enforce.
#[derive(Clone, Debug, Default)]
pub struct CallLog(Arc<Mutex<Vec<Call>>>, Option<Arc<Mutex<std::fs::File>>>);

/// The environment variable naming a file every AWS call of a run is
/// added to, a `service:Operation` line each: the rights a run used, for
/// an audit or an IAM policy.
pub const CALL_LOG_ENV: &str = "TECHCTL_CALL_LOG";

impl CallLog {
    /// A log that also adds each call to the file `TECHCTL_CALL_LOG` names.
    pub fn from_env() -> std::io::Result<CallLog> {
        let Some(path) = std::env::var_os(CALL_LOG_ENV) else {
            return Ok(CallLog::default());
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(CallLog(Arc::default(), Some(Arc::new(Mutex::new(file)))))
    }

    pub fn snapshot(&self) -> Vec<Call> {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.0.lock().map(|c| c.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The operation names, in order.
    pub fn operations(&self) -> Vec<String> {
        self.snapshot().into_iter().map(|c| c.operation).collect()
    }

    /// How many calls of each operation, `Service:Operation` in name order:
    /// what a run spent its calls on.
    pub fn by_operation(&self) -> std::collections::BTreeMap<String, usize> {
        let mut counts = std::collections::BTreeMap::new();
        for call in self.snapshot() {
            *counts
                .entry(format!("{}:{}", call.service, call.operation))
                .or_default() += 1;
        }
        counts
    }

    pub fn mutating(&self) -> usize {
        self.snapshot().iter().filter(|c| c.is_mutating()).count()
    }
}

impl Intercept for CallLog {
    fn name(&self) -> &'static str {
        "techctl-call-log"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let (Some(meta), Ok(mut calls)) = (cfg.load::<Metadata>(), self.0.lock()) {
            calls.push(Call {
                service: meta.service().to_string(),
                operation: meta.name().to_string(),
                at: Instant::now(),
            });
            if let Some(Ok(mut file)) = self.1.as_ref().map(|f| f.lock()) {
                use std::io::Write;
                // One write per line: runs appending at once never mix lines.
                let line = format!("{}:{}\n", meta.service(), meta.name());
                file.write_all(line.as_bytes())?;
            }
        }
        Ok(())
    }
}

/// A failed AWS call, reduced to what the engine decides on.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation} failed: {message}")]
pub struct AwsError {
    pub operation: &'static str,
    pub code: Option<String>,
    pub message: String,
    /// Worth trying again: throttling, a 5xx, a timeout or a dropped connection.
    pub transient: bool,
}

impl From<Unresolved> for AwsError {
    fn from(e: Unresolved) -> Self {
        AwsError::new("resolve", e.to_string())
    }
}

impl From<GaveUp> for AwsError {
    fn from(e: GaveUp) -> Self {
        AwsError::new("wait", e.to_string())
    }
}

impl AwsError {
    pub fn new(operation: &'static str, message: impl Into<String>) -> Self {
        Self {
            operation,
            code: None,
            message: message.into(),
            transient: false,
        }
    }

    pub fn from_sdk<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let code = err.code().map(str::to_string);
        let transient = match &err {
            SdkError::TimeoutError(_)
            | SdkError::DispatchFailure(_)
            | SdkError::ResponseError(_) => true,
            SdkError::ServiceError(ctx) => {
                ctx.raw().status().is_server_error() || code.as_deref().is_some_and(is_throttling)
            }
            _ => false,
        };
        let message = match (err.code(), err.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_string(),
            _ => DisplayErrorContext(&err).to_string(),
        };
        Self {
            operation,
            code,
            message,
            transient,
        }
    }

    /// The resource is already gone: success for a delete.
    pub fn is_not_found(&self) -> bool {
        self.code.as_deref().is_some_and(|c| {
            c.ends_with("NotFound")
                || c.ends_with(".NotFound")
                || c.ends_with("NotFoundFault")
                || c.ends_with("NotFoundException")
                || c == "NoSuchEntity"
                || c == "AWS.SimpleQueueService.NonExistentQueue"
                || c == "QueueDoesNotExist"
                || c == "Gateway.NotAttached"
        })
    }

    /// A create met a resource of the same name: a retry after a lost
    /// answer, or one made by hand. The caller adopts it.
    pub fn is_already_exists(&self) -> bool {
        self.code.as_deref().is_some_and(|c| {
            c.contains("AlreadyExists")
                || c == "EntityAlreadyExists"
                || c == "DuplicateTargetGroupName"
                || c == "DuplicateListener"
                || c == "PriorityInUse"
        })
    }

    /// Something still uses the resource in a way AWS reports outside EC2's
    /// `DependencyViolation`.
    pub fn is_in_use(&self) -> bool {
        // API Gateway answers a VPC link still named by an integration with
        // a plain BadRequestException: "Cannot delete vpc link. Vpc link
        // '…', is referenced in […]".
        let referenced = self.code.as_deref() == Some("BadRequestException")
            && self.message.contains("is referenced");
        referenced
            || self.is_dependency_violation()
            || self.code.as_deref().is_some_and(|c| {
                matches!(
                    c,
                    "ResourceInUse"
                        | "DeleteConflict"
                        | "InvalidDBSubnetGroupStateFault"
                        | "ClusterContainsServicesException"
                        | "ClusterContainsTasksException"
                        | "ConflictException"
                )
            })
    }

    /// Something still uses the resource; AWS will let go of it in time.
    pub fn is_dependency_violation(&self) -> bool {
        self.code.as_deref() == Some("DependencyViolation")
    }

    /// The caller has no usable credentials: a user problem, not an AWS one.
    pub fn is_credentials_problem(&self) -> bool {
        let m = self.message.to_ascii_lowercase();
        m.contains("no credentials")
            || m.contains("credentials provider")
            || self.code.as_deref().is_some_and(|c| {
                matches!(
                    c,
                    "AuthFailure"
                        | "UnrecognizedClientException"
                        | "InvalidClientTokenId"
                        | "ExpiredToken"
                )
            })
    }
}

fn is_throttling(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "RequestThrottled"
            | "RequestThrottledException"
            | "EC2ThrottledException"
    )
}

/// Backoff with full jitter: a random wait up to `base * 2^attempt`, capped.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let ceiling = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    let millis = ceiling.as_millis().max(1) as u64;
    Duration::from_millis(fastrand::u64(millis / 2..=millis))
}

/// Sends `call` until it succeeds or fails in a way `passing` does not
/// excuse, or `limit` has gone by: for errors AWS documents as passing
/// (a resource not yet known, a service-linked role being made, a name
/// still held by a deleted resource).
pub async fn retry_passing<T, F, Fut>(
    limit: Duration,
    passing: impl Fn(&AwsError) -> bool,
    mut call: F,
) -> Result<T, AwsError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AwsError>>,
{
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        match call().await {
            Err(e) if passing(&e) && started.elapsed() < limit => {
                tokio::time::sleep(backoff(
                    attempt,
                    Duration::from_millis(250),
                    Duration::from_secs(5),
                ))
                .await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Looks a resource up by its tags through an area's own observation: only
/// on the rare path where a create's answer was lost, so reusing the whole
/// observation costs little and keeps one place that knows how to read
/// each kind.
pub async fn find<F>(observe: F, id: &LogicalId) -> Result<Option<String>, AwsError>
where
    F: Future<Output = Result<Vec<Observed>, AwsError>>,
{
    Ok(observe
        .await?
        .into_iter()
        .find(|o| &o.id == id && !matches!(o.state.as_deref(), Some("deleting" | "failed")))
        .map(|o| o.physical_id))
}

/// Every item of a paged listing. `fetch` reads the page that the token
/// names (the first page for none) and answers its items and the token of
/// the next page, if there is one.
pub async fn all_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, AwsError>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>), AwsError>>,
{
    let mut items = Vec::new();
    let mut token = None;
    loop {
        let (page, next) = fetch(token.take()).await?;
        items.extend(page);
        match next {
            Some(next) => token = Some(next),
            None => return Ok(items),
        }
    }
}

/// A delete whose resource is already gone has done its job.
pub fn gone(result: Result<(), AwsError>) -> Result<(), AwsError> {
    match result {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Turns a `Vec` of tags from any SDK into a map.
pub fn tag_map<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, String> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub use blueprint::names::partition;

impl Aws {
    /// The id of the account the credentials belong to.
    pub async fn account_id(&self) -> Result<String, AwsError> {
        self.account
            .get_or_try_init(|| async {
                sdk!("GetCallerIdentity", self.sts.get_caller_identity().send())?
                    .account()
                    .map(str::to_string)
                    .ok_or_else(|| AwsError::new("GetCallerIdentity", "no account in the answer"))
            })
            .await
            .cloned()
    }

    /// Sends a call that names resources by id, retrying it while AWS
    /// answers that one of them does not exist and one of them was created
    /// by this run a moment ago: EC2 (and the services built on it) may not
    /// know a new id yet. A "not found" for anything older, or past
    /// [`PROPAGATION`], is an error as usual.
    pub async fn settled<T, F, Fut>(&self, names: &[&str], call: F) -> Result<T, AwsError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AwsError>>,
    {
        retry_passing(PROPAGATION, |e| self.made.excuses(names, e), call).await
    }

    /// Creates a resource without ever making two, even where the API takes
    /// no idempotency token (or an emulator ignores it). The create is sent
    /// with the SDK's retries off; when it fails in a way that may hide a
    /// success (5xx, timeout, lost connection), the resource is looked up by
    /// its tags before the create is tried again.
    pub async fn create_once<T, C, CF, F, FF>(
        &self,
        mut create: C,
        mut find: F,
    ) -> Result<T, AwsError>
    where
        T: AsRef<str>,
        C: FnMut() -> CF,
        CF: Future<Output = Result<T, AwsError>>,
        F: FnMut() -> FF,
        FF: Future<Output = Result<Option<T>, AwsError>>,
    {
        let mut attempt = 0;
        loop {
            match create().await {
                Ok(v) => {
                    self.made.mark(v.as_ref());
                    return Ok(v);
                }
                Err(e) if e.transient && attempt + 1 < self.max_attempts => {
                    tokio::time::sleep(backoff(
                        attempt,
                        Duration::from_millis(200),
                        Duration::from_secs(20),
                    ))
                    .await;
                    attempt += 1;
                    // The lookup's own calls are retried by the SDK.
                    if let Some(found) = find().await? {
                        self.made.mark(found.as_ref());
                        return Ok(found);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn coded(code: &str) -> AwsError {
        AwsError {
            code: Some(code.to_string()),
            ..AwsError::new("CreateRoute", "refused")
        }
    }

    #[test]
    fn only_a_not_found_for_what_this_run_just_made_is_excused() {
        let made = MadeIds::default();
        made.mark("vpc-new");
        let not_found = coded("InvalidVpcID.NotFound");
        assert!(made.excuses(&["vpc-new"], &not_found));
        assert!(made.excuses(&["igw-old", "vpc-new"], &not_found));
        // Not made by this run: the NotFound is real.
        assert!(!made.excuses(&["vpc-someone-else"], &not_found));
        // Made, but longer ago than AWS takes to catch up.
        // (A machine up for less than that has no such instant to give.)
        if let Some(long_ago) = Instant::now().checked_sub(PROPAGATION + Duration::from_secs(1)) {
            if let Ok(mut ids) = made.0.lock() {
                ids.insert("vpc-old".into(), long_ago);
            }
            assert!(!made.excuses(&["vpc-old"], &not_found));
        }
        // Another error for a fresh id is never excused.
        assert!(!made.excuses(&["vpc-new"], &coded("UnauthorizedOperation")));
    }

    #[tokio::test]
    async fn a_passing_refusal_is_asked_again_and_a_real_one_at_once_is_not() {
        let made = MadeIds::default();
        made.mark("rtb-new");
        let attempts = AtomicU32::new(0);
        let answer = retry_passing(
            PROPAGATION,
            |e| made.excuses(&["rtb-new"], e),
            || async {
                match attempts.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err(coded("InvalidRouteTableID.NotFound")),
                    _ => Ok("created"),
                }
            },
        )
        .await;
        assert_eq!(answer.unwrap(), "created");
        assert_eq!(attempts.load(Ordering::SeqCst), 3);

        let attempts = AtomicU32::new(0);
        let answer: Result<(), _> = retry_passing(
            PROPAGATION,
            |e| made.excuses(&["rtb-gone"], e),
            || async {
                attempts.fetch_add(1, Ordering::SeqCst);
                Err(coded("InvalidRouteTableID.NotFound"))
            },
        )
        .await;
        assert_eq!(
            answer.unwrap_err().code.as_deref(),
            Some("InvalidRouteTableID.NotFound")
        );
        assert_eq!(
            attempts.load(Ordering::SeqCst),
            1,
            "a real NotFound is not retried"
        );
    }
}
