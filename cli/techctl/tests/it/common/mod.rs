//! Shared set-up of the engine tests: a moto server per test, a recording
//! fault proxy in front of it that also refuses what real AWS refuses
//! (testkit's strict layer: ids not yet propagated, a service Auto Scaling
//! cannot see yet, the first cluster of an account, names reused too soon,
//! deletes of what is still in use, names AWS rules out), and helpers that
//! run the engine in process and read AWS state back through the SDK.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws::{self, Aws, AwsSettings};
use aws_sdk_ec2::types::Filter;
use blueprint::{self, Blueprint};
use engine::apply::{self, Ctx, Event, Options, Report, Reporter};
use engine::plan::Plan;
use techctl::stack;
use testkit::{FaultProxy, Moto, Strictness};

pub const REGION: &str = "us-east-1";

pub fn blueprint_path() -> PathBuf {
    testkit::workspace_root().join("blueprints/techchallenge.toml")
}

pub fn blueprint_source() -> String {
    std::fs::read_to_string(blueprint_path()).expect("read the techchallenge blueprint")
}

/// The shipped blueprint with text replaced, parsed.
pub fn blueprint_with(replacements: &[(&str, &str)]) -> Blueprint {
    let mut text = blueprint_source();
    for (from, to) in replacements {
        assert!(
            text.contains(from),
            "the blueprint no longer contains {from:?}"
        );
        text = text.replacen(from, to, 1);
    }
    blueprint::parse(Path::new("test.toml"), &text).expect("test blueprint is valid")
}

/// Discards engine events; tests read AWS, not the printer.
pub struct Quiet;
impl Reporter for Quiet {
    fn report(&self, _event: Event) {}
}

pub struct Harness {
    /// Kept for its lifetime: moto stops when it is dropped.
    _moto: Moto,
    pub proxy: FaultProxy,
    /// A proxy that only passes requests on: moto reads CloudWatch in a
    /// protocol other than the SDK's, and the proxy translates.
    plain: FaultProxy,
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(Strictness::new()).await
    }

    /// With the strict layer's windows of `strictness`.
    pub async fn start_with(strictness: Strictness) -> Harness {
        let moto = tokio::task::spawn_blocking(Moto::start)
            .await
            .expect("start moto");
        let proxy = FaultProxy::start_strict(&moto.url, strictness).await;
        let plain = FaultProxy::start(&moto.url).await;
        Harness {
            _moto: moto,
            proxy,
            plain,
        }
    }

    /// The operations the strict layer refused, as `operation code`.
    pub fn refused(&self) -> Vec<String> {
        self.proxy
            .strict_refusals()
            .into_iter()
            .map(|r| format!("{} {}", r.operation, r.code))
            .collect()
    }

    /// Clients that go through the proxy, with a call log of their own.
    pub async fn aws(&self) -> Aws {
        connect(&self.proxy.url).await
    }

    /// Clients that reach moto past the strict layer: for checks and for
    /// "by hand" edits.
    pub async fn direct(&self) -> Aws {
        connect(&self.plain.url).await
    }

    pub async fn plan(&self, bp: &Blueprint) -> Plan {
        stack::plan(&self.aws().await, bp).await.expect("plan")
    }

    /// Plans and applies with fresh clients; returns the report and the clients.
    pub async fn up(&self, bp: &Blueprint) -> (Report, Aws) {
        self.up_with(self.aws().await, bp).await
    }

    /// Clients through the proxy that give up after two attempts: for runs
    /// that are meant to fail, so they fail fast.
    pub async fn impatient(&self) -> Aws {
        connect_with(&self.proxy.url, Some(2)).await
    }

    pub async fn up_with(&self, aws: Aws, bp: &Blueprint) -> (Report, Aws) {
        let plan = stack::plan(&aws, bp).await.expect("plan before up");
        let ctx = Arc::new(Ctx::new(bp.stack_name(), Options::default()));
        let report = apply::apply(
            Arc::new(aws::AwsProvider::new(aws.clone())),
            ctx,
            &plan,
            Arc::new(Quiet),
        )
        .await;
        (report, aws)
    }

    pub async fn down(&self, bp: &Blueprint, force_delete_secrets: bool) -> (Report, Aws) {
        self.down_with(self.aws().await, bp, force_delete_secrets)
            .await
    }

    pub async fn down_with(
        &self,
        aws: Aws,
        bp: &Blueprint,
        force_delete_secrets: bool,
    ) -> (Report, Aws) {
        let observed = stack::doomed(
            stack::observe(&aws, bp.stack_name())
                .await
                .expect("observe before down"),
            force_delete_secrets,
        );
        let options = Options {
            force_delete_secrets,
            ..Options::default()
        };
        let ctx = Arc::new(Ctx::new(bp.stack_name(), options));
        let report = apply::destroy_all(
            Arc::new(aws::AwsProvider::new(aws.clone())),
            ctx,
            &observed,
            Arc::new(Quiet),
        )
        .await;
        (report, aws)
    }
}

pub async fn connect(url: &str) -> Aws {
    connect_with(url, None).await
}

pub async fn connect_with(url: &str, max_attempts: Option<u32>) -> Aws {
    let settings = AwsSettings {
        region: Some(REGION.into()),
        profile: None,
        endpoint_url: Some(url.to_string()),
        emulator_credentials: true,
        max_attempts,
    };
    aws::connect(&settings, REGION)
        .await
        .expect("connect to moto")
}

/// The techctl binary, pointed at `endpoint` through the standard AWS
/// configuration chain, run from the workspace root.
pub fn techctl_at(endpoint: &str) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_techctl"));
    command
        .current_dir(testkit::workspace_root())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", REGION)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_MAX_ATTEMPTS")
        // The base stack unless a test names an environment.
        .env_remove("TECHCTL_ENV")
        // The services built for a deploy reuse the dependencies of the
        // tests' debug build instead of compiling them again in release.
        .env("TECHCTL_CARGO_PROFILE", "dev");
    command
}

/// Runs `techctl ARGS` against `endpoint` with no terminal, as CI would.
pub fn techctl(endpoint: &str, args: &[&str]) -> std::process::Output {
    techctl_at(endpoint)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run techctl")
}

/// Runs `techctl ARGS` against `endpoint` off the async runtime, whose
/// threads keep serving the proxy meanwhile.
pub async fn techctl_async(endpoint: &str, args: &[&str]) -> std::process::Output {
    let mut command = techctl_at(endpoint);
    command.args(args).stdin(std::process::Stdio::null());
    output_off_runtime(command).await
}

/// A command's output, waited for off the async runtime.
pub async fn output_off_runtime(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().expect("run techctl"))
        .await
        .expect("the command's thread")
}

/// Runs `command` with `input` on its standard input, as an operator
/// piping a value in.
pub fn output_with_input(mut command: std::process::Command, input: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run techctl");
    let mut stdin = child.stdin.take().expect("its standard input");
    stdin.write_all(input.as_bytes()).expect("write its input");
    drop(stdin);
    child.wait_with_output().expect("its output")
}

/// Everything a run printed, stdout then stderr.
pub fn said(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stack_filter(stack: &str) -> Filter {
    Filter::builder()
        .name("tag:techctl:stack")
        .values(stack)
        .build()
}

/// How many resources of each EC2 type carry the stack tag, read straight
/// from AWS (NAT gateways that are deleted do not count).
pub async fn count_tagged(aws: &Aws, stack: &str) -> BTreeMap<&'static str, usize> {
    let ec2 = &aws.ec2;
    let f = || stack_filter(stack);
    let nats = ec2
        .describe_nat_gateways()
        .filter(f())
        .send()
        .await
        .unwrap();
    BTreeMap::from([
        (
            "vpc",
            ec2.describe_vpcs()
                .filters(f())
                .send()
                .await
                .unwrap()
                .vpcs()
                .len(),
        ),
        (
            "subnet",
            ec2.describe_subnets()
                .filters(f())
                .send()
                .await
                .unwrap()
                .subnets()
                .len(),
        ),
        (
            "internet-gateway",
            ec2.describe_internet_gateways()
                .filters(f())
                .send()
                .await
                .unwrap()
                .internet_gateways()
                .len(),
        ),
        (
            "elastic-ip",
            ec2.describe_addresses()
                .filters(f())
                .send()
                .await
                .unwrap()
                .addresses()
                .len(),
        ),
        (
            "nat-gateway",
            // Moto ignores a tag filter on NAT gateways: checked here.
            nats.nat_gateways()
                .iter()
                .filter(|n| n.state().map(|s| s.as_str()) != Some("deleted"))
                .filter(|n| {
                    n.tags()
                        .iter()
                        .any(|t| t.key() == Some("techctl:stack") && t.value() == Some(stack))
                })
                .count(),
        ),
        (
            "route-table",
            ec2.describe_route_tables()
                .filters(f())
                .send()
                .await
                .unwrap()
                .route_tables()
                .len(),
        ),
        (
            "security-group",
            ec2.describe_security_groups()
                .filters(f())
                .send()
                .await
                .unwrap()
                .security_groups()
                .len(),
        ),
    ])
}

/// Whether tags, as (key, value) pairs, carry the stack tag of `stack`.
fn tagged_with<'a>(
    pairs: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>)>,
    stack: &str,
) -> bool {
    pairs
        .into_iter()
        .any(|(k, v)| k == Some("techctl:stack") && v == Some(stack))
}

/// The same for services that answer tags as a map (CloudWatch Logs, SQS).
fn map_tagged_with(tags: Option<&std::collections::HashMap<String, String>>, stack: &str) -> bool {
    tags.and_then(|t| t.get("techctl:stack"))
        .is_some_and(|v| v == stack)
}

/// How many resources of each type outside EC2 carry the stack tag (or,
/// for the untagged kinds, live in one that does), read straight from AWS.
pub async fn count_platform(aws: &Aws, stack: &str) -> BTreeMap<&'static str, usize> {
    let mut counts = BTreeMap::new();

    let balancers = aws.elb.describe_load_balancers().send().await.unwrap();
    let groups = aws.elb.describe_target_groups().send().await.unwrap();
    let arns: Vec<String> = balancers
        .load_balancers()
        .iter()
        .filter_map(|b| b.load_balancer_arn())
        .chain(
            groups
                .target_groups()
                .iter()
                .filter_map(|g| g.target_group_arn()),
        )
        .map(str::to_string)
        .collect();
    let mut tagged_arns = Vec::new();
    for chunk in arns.chunks(20) {
        let tags = aws
            .elb
            .describe_tags()
            .set_resource_arns(Some(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        for d in tags.tag_descriptions() {
            let pairs = d.tags().iter().map(|t| (t.key(), t.value()));
            if tagged_with(pairs, stack) {
                tagged_arns.push(d.resource_arn().unwrap_or_default().to_string());
            }
        }
    }
    let mut listeners = 0;
    let mut rules = 0;
    for arn in tagged_arns.iter().filter(|a| a.contains(":loadbalancer/")) {
        let found = aws
            .elb
            .describe_listeners()
            .load_balancer_arn(arn)
            .send()
            .await
            .unwrap();
        listeners += found.listeners().len();
        for l in found.listeners() {
            let r = aws
                .elb
                .describe_rules()
                .listener_arn(l.listener_arn().unwrap())
                .send()
                .await
                .unwrap();
            rules += r
                .rules()
                .iter()
                .filter(|r| r.is_default() != Some(true))
                .count();
        }
    }
    counts.insert(
        "load-balancer",
        tagged_arns
            .iter()
            .filter(|a| a.contains(":loadbalancer/"))
            .count(),
    );
    counts.insert(
        "target-group",
        tagged_arns
            .iter()
            .filter(|a| a.contains(":targetgroup/"))
            .count(),
    );
    counts.insert("listener", listeners);
    counts.insert("listener-rule", rules);

    let apis = aws.apigw.get_apis().send().await.unwrap();
    let ours: Vec<String> = apis
        .items()
        .iter()
        .filter(|a| {
            a.tags()
                .and_then(|t| t.get("techctl:stack"))
                .map(String::as_str)
                == Some(stack)
        })
        .filter_map(|a| a.api_id().map(str::to_string))
        .collect();
    counts.insert("http-api", ours.len());
    let (mut integrations, mut routes, mut stages) = (0, 0, 0);
    for api in &ours {
        integrations += aws
            .apigw
            .get_integrations()
            .api_id(api)
            .send()
            .await
            .unwrap()
            .items()
            .len();
        routes += aws
            .apigw
            .get_routes()
            .api_id(api)
            .send()
            .await
            .unwrap()
            .items()
            .len();
        stages += aws
            .apigw
            .get_stages()
            .api_id(api)
            .send()
            .await
            .unwrap()
            .items()
            .len();
    }
    counts.insert("api-integration", integrations);
    counts.insert("api-route", routes);
    counts.insert("api-stage", stages);
    let links = aws.apigw.get_vpc_links().send().await.unwrap();
    counts.insert(
        "vpc-link",
        links
            .items()
            .iter()
            .filter(|l| {
                l.tags()
                    .and_then(|t| t.get("techctl:stack"))
                    .map(String::as_str)
                    == Some(stack)
            })
            .count(),
    );

    let clusters = aws.ecs.list_clusters().send().await.unwrap();
    let described = if clusters.cluster_arns().is_empty() {
        0
    } else {
        aws.ecs
            .describe_clusters()
            .set_clusters(Some(clusters.cluster_arns().to_vec()))
            .include(aws_sdk_ecs::types::ClusterField::Tags)
            .send()
            .await
            .unwrap()
            .clusters()
            .iter()
            .filter(|c| c.status() == Some("ACTIVE"))
            .filter(|c| tagged_with(c.tags().iter().map(|t| (t.key(), t.value())), stack))
            .count()
    };
    counts.insert("ecs-cluster", described);

    let roles = aws.iam.list_roles().send().await.unwrap();
    let mut our_roles = 0;
    for role in roles.roles() {
        let tags = aws
            .iam
            .list_role_tags()
            .role_name(role.role_name())
            .send()
            .await
            .unwrap();
        let pairs = tags.tags().iter().map(|t| (Some(t.key()), Some(t.value())));
        if tagged_with(pairs, stack) || role.path().starts_with(&format!("/techctl/{stack}/")) {
            our_roles += 1;
        }
    }
    counts.insert("iam-role", our_roles);

    let logs = aws.logs.describe_log_groups().send().await.unwrap();
    let mut our_logs = 0;
    for g in logs.log_groups() {
        let tags = aws
            .logs
            .list_tags_for_resource()
            .resource_arn(g.arn().unwrap().trim_end_matches(":*"))
            .send()
            .await
            .unwrap();
        if map_tagged_with(tags.tags(), stack) {
            our_logs += 1;
        }
    }
    counts.insert("log-group", our_logs);

    let instances = aws.rds.describe_db_instances().send().await.unwrap();
    counts.insert(
        "db-instance",
        instances
            .db_instances()
            .iter()
            .filter(|d| tagged_with(d.tag_list().iter().map(|t| (t.key(), t.value())), stack))
            .count(),
    );
    let subnet_groups = aws.rds.describe_db_subnet_groups().send().await.unwrap();
    let mut our_groups = 0;
    for g in subnet_groups.db_subnet_groups() {
        let tags = aws
            .rds
            .list_tags_for_resource()
            .resource_name(g.db_subnet_group_arn().unwrap())
            .send()
            .await
            .unwrap();
        let pairs = tags.tag_list().iter().map(|t| (t.key(), t.value()));
        if tagged_with(pairs, stack) {
            our_groups += 1;
        }
    }
    counts.insert("db-subnet-group", our_groups);

    let repositories = aws.ecr.describe_repositories().send().await.unwrap();
    let mut our_repositories = 0;
    for r in repositories.repositories() {
        let tags = aws
            .ecr
            .list_tags_for_resource()
            .resource_arn(r.repository_arn().unwrap())
            .send()
            .await
            .unwrap();
        let pairs = tags.tags().iter().map(|t| (Some(t.key()), Some(t.value())));
        if tagged_with(pairs, stack) {
            our_repositories += 1;
        }
    }
    counts.insert("ecr-repository", our_repositories);

    let topics = aws.sns.list_topics().send().await.unwrap();
    let mut our_topics = Vec::new();
    for t in topics.topics() {
        let arn = t.topic_arn().unwrap();
        let tags = aws
            .sns
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .unwrap();
        let pairs = tags.tags().iter().map(|t| (Some(t.key()), Some(t.value())));
        if tagged_with(pairs, stack) {
            our_topics.push(arn.to_string());
        }
    }
    counts.insert("sns-topic", our_topics.len());
    let subscriptions = aws.sns.list_subscriptions().send().await.unwrap();
    counts.insert(
        "sns-subscription",
        subscriptions
            .subscriptions()
            .iter()
            .filter(|s| {
                s.topic_arn().is_some_and(|t| {
                    t.rsplit(':')
                        .next()
                        .unwrap_or("")
                        .starts_with(&format!("{stack}-"))
                })
            })
            .count(),
    );

    let queues = aws.sqs.list_queues().send().await.unwrap();
    let mut our_queues = 0;
    for url in queues.queue_urls() {
        let tags = aws
            .sqs
            .list_queue_tags()
            .queue_url(url)
            .send()
            .await
            .unwrap();
        if map_tagged_with(tags.tags(), stack) {
            our_queues += 1;
        }
    }
    counts.insert("sqs-queue", our_queues);

    let alarms = aws.cloudwatch.describe_alarms().send().await.unwrap();
    let mut our_alarms = 0;
    for alarm in alarms.metric_alarms() {
        let tags = aws
            .cloudwatch
            .list_tags_for_resource()
            .resource_arn(alarm.alarm_arn().unwrap())
            .send()
            .await
            .unwrap();
        let pairs = tags.tags().iter().map(|t| (t.key(), t.value()));
        if tagged_with(pairs, stack) {
            our_alarms += 1;
        }
    }
    counts.insert("cloudwatch-alarm", our_alarms);
    counts
}

/// Asserts that no resource of any type carries the stack tag.
pub async fn assert_nothing_left(aws: &Aws, stack: &str) {
    let mut counts = count_tagged(aws, stack).await;
    counts.extend(count_platform(aws, stack).await);
    for (kind, count) in counts {
        assert_eq!(count, 0, "{count} {kind} left tagged with the stack");
    }
}

/// The stack secret's JSON, or None when it is missing or scheduled for deletion.
pub async fn secret_json(aws: &Aws, stack: &str) -> Option<serde_json::Value> {
    named_secret_json(aws, &format!("techctl/{stack}")).await
}

/// The signing key ring of `stack`, from its own secret.
pub async fn signing_keys_json(aws: &Aws, stack: &str) -> Option<serde_json::Value> {
    named_secret_json(aws, &format!("techctl/{stack}/signing-keys")).await
}

pub async fn named_secret_json(aws: &Aws, name: &str) -> Option<serde_json::Value> {
    let out = aws
        .secrets
        .get_secret_value()
        .secret_id(name)
        .version_stage("AWSCURRENT")
        .send()
        .await
        .ok()?;
    serde_json::from_str(out.secret_string()?).ok()
}

pub fn assert_done(report: &Report) {
    let problems: Vec<String> = report
        .results
        .iter()
        .filter(|r| r.outcome != apply::Outcome::Done)
        .map(|r| format!("{} {:?}", r.id, r.outcome))
        .collect();
    assert!(problems.is_empty(), "apply did not finish: {problems:#?}");
}
