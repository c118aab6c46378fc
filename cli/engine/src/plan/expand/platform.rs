//! What the services run on: the internal load balancer and its rules, the
//! HTTP API in front of it, the ECS cluster with its roles and log groups,
//! and one image repository per service.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::outputs::Own;
use crate::plan::resource::{
    Cors, Kind, LogicalId, Output, Resource, Spec, Statement, Throttle, Trust,
};
use blueprint::{Blueprint, names};

use super::{ALB_LISTENER_PORT, ids, private_subnets};

/// What the load balancer asks a task before sending it traffic.
pub const HEALTH_CHECK_PATH: &str = "/health/ready";
/// Seconds a task that is being stopped keeps getting in-flight requests;
/// the services shut down gracefully well within it.
const DEREGISTRATION_DELAY_SECONDS: u32 = 15;
/// AWS allows five condition values per listener rule.
const PATTERNS_PER_RULE: usize = 5;

/// IAM path of the stack's roles: they are listed by it.
pub fn role_path(stack: &str) -> String {
    format!("/techctl/{stack}/")
}

/// The path patterns a prefix stands for: itself and everything below,
/// or for the root `/`, the root alone (`/*` would take every path).
fn path_patterns(prefix: &str) -> Vec<String> {
    if prefix == "/" {
        return vec![prefix.to_string()];
    }
    vec![prefix.to_string(), format!("{prefix}/*")]
}

pub fn load_balancing(bp: &Blueprint, zones: &[String]) -> Vec<Resource> {
    let stack = bp.stack_name();
    let mut out = vec![
        Resource::new(
            ids::load_balancer(),
            Spec::LoadBalancer {
                name: names::load_balancer(stack),
                internal: true,
                subnets: private_subnets(zones),
                security_groups: BTreeSet::from([ids::security_group("alb")]),
            },
        ),
        Resource::new(
            ids::listener(),
            Spec::Listener {
                load_balancer: ids::load_balancer(),
                port: ALB_LISTENER_PORT,
                default_status: 404,
            },
        ),
    ];
    for (index, (name, service)) in bp.services().enumerate() {
        out.push(Resource::new(
            ids::target_group(name),
            Spec::TargetGroup {
                name: names::target_group(stack, name),
                vpc: ids::vpc(),
                port: *service.port.get_ref(),
                health_check_path: HEALTH_CHECK_PATH.to_string(),
                deregistration_delay_seconds: DEREGISTRATION_DELAY_SECONDS,
            },
        ));
        let patterns: Vec<String> = service
            .paths
            .get_ref()
            .iter()
            .flat_map(|p| path_patterns(p.get_ref()))
            .collect();
        for (n, chunk) in patterns.chunks(PATTERNS_PER_RULE).enumerate() {
            out.push(Resource::new(
                ids::listener_rule(name, n + 1),
                Spec::ListenerRule {
                    listener: ids::listener(),
                    // Prefixes never overlap (the blueprint is validated),
                    // so the order only has to be stable.
                    priority: (index as u32 + 1) * 10 + n as u32,
                    paths: chunk.iter().cloned().collect(),
                    target_group: ids::target_group(name),
                },
            ));
        }
    }
    out
}

pub fn gateway(bp: &Blueprint, zones: &[String]) -> Vec<Resource> {
    let gw = &bp.gateway;
    let strings = |v: &Vec<toml::Spanned<String>>| -> BTreeSet<String> {
        v.iter().map(|s| s.get_ref().clone()).collect()
    };
    let mut integration = Resource::new(
        ids::integration(),
        Spec::Integration {
            api: ids::api(),
            vpc_link: ids::vpc_link(),
            listener: ids::listener(),
        },
    );
    // The integration forwards to the listener, which must answer.
    integration.after.push(ids::load_balancer());
    vec![
        Resource::new(
            ids::vpc_link(),
            Spec::VpcLink {
                name: bp.stack_name().to_string(),
                subnets: private_subnets(zones),
                security_groups: BTreeSet::from([ids::security_group("vpc-link")]),
            },
        ),
        Resource::new(
            ids::api(),
            Spec::HttpApi {
                name: bp.stack_name().to_string(),
                cors: Cors {
                    allow_origins: strings(gw.cors_allow_origins.get_ref()),
                    allow_methods: strings(gw.cors_allow_methods.get_ref()),
                    allow_headers: gw.cors_allow_headers.iter().cloned().collect(),
                    max_age_seconds: *gw.cors_max_age_seconds.get_ref() as i32,
                },
            },
        ),
        integration,
        Resource::new(
            ids::api_route(),
            Spec::ApiRoute {
                api: ids::api(),
                route_key: super::API_ROUTE_KEY.to_string(),
                integration: ids::integration(),
            },
        ),
        Resource::new(
            ids::api_stage(),
            Spec::ApiStage {
                api: ids::api(),
                name: "$default".to_string(),
                auto_deploy: true,
                throttle: {
                    let (rate_per_second, burst) = bp.gateway.throttle();
                    Throttle {
                        rate_per_second,
                        burst,
                    }
                },
            },
        ),
    ]
}

fn statement(actions: &[&str], resources: impl IntoIterator<Item = Output>) -> Statement {
    Statement::allow(actions, resources)
}

/// The log group of a stack's `name` (a service, or `db-init`).
pub fn log_group_name(stack: &str, name: &str) -> String {
    format!("/techctl/{stack}/{name}")
}

/// Pulling `repositories`' images and writing to `log_groups`: what ECS
/// needs to start a task and keep its logs.
fn pull_and_log<'a>(
    repositories: impl Iterator<Item = &'a str>,
    log_groups: impl IntoIterator<Item = Output>,
) -> BTreeSet<Statement> {
    BTreeSet::from([
        // Authorisation tokens are not per repository.
        statement(&["ecr:GetAuthorizationToken"], [Output::Text("*".into())]),
        statement(
            &[
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            repositories.map(|s| Output::attr(ids::repository(s), "arn")),
        ),
        statement(&["logs:CreateLogStream", "logs:PutLogEvents"], log_groups),
    ])
}

/// The service that runs the stack's tasks, and that its roles trust.
pub const ECS_TASKS: &str = "ecs-tasks.amazonaws.com";

fn ecs_role(name: String, policy: BTreeSet<Statement>) -> Spec {
    Spec::Role {
        name,
        trust: Trust::Service(ECS_TASKS.into()),
        account_guard: true,
        policy,
        boundary: Some(Output::attr(ids::boundary(), "arn")),
    }
}

/// What a service's tasks may do at run time, and nothing else: read their
/// token keys (`keys`), publish on their topic, and take, acknowledge,
/// put back and dead-letter the messages of their queue (`queues`: the
/// queue and its dead-letter queue). The same statements are what the
/// system's tests run each service with, through the IAM-enforcing proxy.
pub fn task_policy(
    keys: Output,
    topic: Option<Output>,
    queues: Option<(Output, Output)>,
) -> BTreeSet<Statement> {
    let mut policy = BTreeSet::from([statement(&["secretsmanager:GetSecretValue"], [keys])]);
    if let Some(topic) = topic {
        policy.insert(statement(&["sns:Publish"], [topic]));
    }
    if let Some((queue, dead_letters)) = queues {
        policy.insert(statement(
            &[
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
            ],
            [queue],
        ));
        // A malformed message is dead-lettered at once, with its reason;
        // an erasure rewrites the dead letters holding a customer's name
        // (SQS changes none in place: read, written anew, deleted).
        policy.insert(statement(
            &[
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:ReceiveMessage",
                "sqs:SendMessage",
            ],
            [dead_letters],
        ));
    }
    policy
}

/// The stack's permissions boundary: every right any of the stack's task
/// roles holds, and nothing else. Each role is made with it, so a role
/// holds at most what its own policy and the boundary both allow; and a
/// role made or changed by the deploy role, which may do so only with this
/// boundary attached, can never hold more than the stack's tasks do.
///
/// A managed policy holds 6,144 characters at most, so the boundary names
/// the stack's log groups, repositories and secrets below its own path
/// (`/techctl/STACK/*`, `STACK/*`, `techctl/STACK/*`: a slash ends the
/// stack's name, so no other stack's are named), each action once.
fn boundary(bp: &Blueprint, resources: &[Resource]) -> Resource {
    let stack = bp.stack_name();
    let partition = names::partition(bp.region());
    let under_stack = |id: &LogicalId| {
        let kind = resources.iter().find(|r| &r.id == id)?.spec.kind();
        let region = bp.region();
        Some(Output::Text(match kind {
            Kind::LogGroup => format!(
                "arn:{partition}:logs:{region}:*:log-group:{}*",
                log_group_name(stack, "")
            ),
            Kind::Repository => format!("arn:{partition}:ecr:{region}:*:repository/{stack}/*"),
            Kind::Secret => format!(
                "arn:{partition}:secretsmanager:{region}:*:secret:{}*",
                super::secret_prefix(stack)
            ),
            _ => return None,
        }))
    };
    let mut by_action: BTreeMap<&String, BTreeSet<Output>> = BTreeMap::new();
    for role in resources.iter().filter(|r| r.spec.kind() == Kind::Role) {
        if let Spec::Role { policy, .. } = &role.spec {
            for statement in policy {
                for action in &statement.actions {
                    by_action
                        .entry(action)
                        .or_default()
                        .extend(statement.resources.iter().map(|r| {
                            r.refs()
                                .first()
                                .and_then(|id| under_stack(id))
                                .unwrap_or_else(|| r.clone())
                        }));
                }
            }
        }
    }
    let mut by_resources: BTreeMap<BTreeSet<Output>, Vec<&String>> = BTreeMap::new();
    for (action, resources) in by_action {
        by_resources.entry(resources).or_default().push(action);
    }
    let policy = by_resources
        .into_iter()
        .map(|(resources, actions)| Statement::allow(actions, resources))
        .collect();
    Resource::new(
        ids::boundary(),
        Spec::ManagedPolicy {
            name: names::boundary_policy(stack),
            policy,
        },
    )
}

/// The cluster, the roles its tasks run with, and their log groups. Each
/// role holds exactly what its tasks use, named resource by resource.
///
/// Who reads which secret: the execution role (ECS's own, never handed to
/// the container) gives each task its service's secret by `valueFrom`;
/// at run time the user service's task role reads the signing key ring and
/// every other task role only the public key set; the master password in
/// the stack secret is read by the database set-up task's execution role
/// alone.
pub fn compute(bp: &Blueprint) -> Vec<Resource> {
    let stack = bp.stack_name();
    let mut out = vec![Resource::new(
        ids::cluster(),
        Spec::Cluster {
            name: stack.to_string(),
            container_insights: true,
        },
    )];

    let services: Vec<&str> = bp.services().map(|(name, _)| name).collect();
    let service_secrets = || {
        services
            .iter()
            .map(|s| Output::Id(ids::service_secret(s)))
            .collect::<Vec<_>>()
    };
    let mut execution_policy = pull_and_log(
        services.iter().copied(),
        services
            .iter()
            .map(|s| Output::attr(ids::log_group(s), "arn")),
    );
    execution_policy.insert(statement(
        &["secretsmanager:GetSecretValue"],
        service_secrets(),
    ));
    out.push(Resource::new(
        ids::execution_role(),
        ecs_role(names::execution_role(stack), execution_policy),
    ));

    // The database set-up task runs a service's image: it logs in with the
    // master password and gives each service its role and database.
    let mut db_init_policy = pull_and_log(
        services.iter().copied(),
        [Output::attr(ids::db_init_log_group(), "arn")],
    );
    let mut readable = service_secrets();
    readable.push(Output::Id(ids::stack_secret()));
    db_init_policy.insert(statement(&["secretsmanager:GetSecretValue"], readable));
    out.push(Resource::new(
        ids::db_init_role(),
        ecs_role(names::db_init_role(stack), db_init_policy),
    ));
    let retention = *bp.logs.retention_days.get_ref();
    out.push(Resource::new(
        ids::db_init_log_group(),
        Spec::LogGroup {
            name: log_group_name(stack, "db-init"),
            retention_days: retention,
        },
    ));

    for (name, service) in bp.services() {
        // The user service signs tokens; every other service only checks
        // them. Both reread their keys while running (rotation).
        let keys = if name == "user" {
            ids::signing_keys()
        } else {
            ids::public_keys()
        };
        let policy = task_policy(
            Output::Id(keys),
            (!service.publishes.is_empty()).then(|| Output::Id(ids::topic(name))),
            (!service.consumes.is_empty()).then(|| {
                (
                    Output::attr(ids::queue(name), "arn"),
                    Output::attr(ids::dead_letter_queue(name), "arn"),
                )
            }),
        );
        out.push(Resource::new(
            ids::task_role(name),
            ecs_role(names::task_role(stack, name), policy),
        ));
        out.push(Resource::new(
            ids::log_group(name),
            Spec::LogGroup {
                name: log_group_name(stack, name),
                retention_days: retention,
            },
        ));
    }
    out.push(boundary(bp, &out));
    out
}

pub fn registry(bp: &Blueprint) -> Vec<Resource> {
    let keep = *bp.registry.keep_images.get_ref();
    bp.services()
        .map(|(name, _)| {
            Resource::new(
                ids::repository(name),
                Spec::Repository {
                    name: format!("{}/{name}", bp.stack_name()),
                    scan_on_push: true,
                    keep_images: keep,
                },
            )
        })
        .collect()
}

/// Every output that names a service's own resources, by output name.
pub fn service_outputs(bp: &Blueprint) -> BTreeMap<String, Output> {
    let mut outputs = BTreeMap::new();
    for (name, service) in bp.services() {
        let mut put = |what: Own, value: Output| {
            outputs.insert(what.of(name), value);
        };
        put(Own::TargetGroupArn, Output::Id(ids::target_group(name)));
        put(Own::TaskRoleArn, Output::attr(ids::task_role(name), "arn"));
        put(
            Own::LogGroup,
            Output::Text(log_group_name(bp.stack_name(), name)),
        );
        put(Own::SecretArn, Output::Id(ids::service_secret(name)));
        put(
            Own::RepositoryUri,
            Output::attr(ids::repository(name), "uri"),
        );
        put(Own::Database, Output::Text(super::service_database(name)));
        if !service.publishes.is_empty() {
            put(Own::TopicArn, Output::Id(ids::topic(name)));
        }
        if !service.consumes.is_empty() {
            put(Own::QueueUrl, Output::Id(ids::queue(name)));
            put(
                Own::DeadLetterQueueUrl,
                Output::Id(ids::dead_letter_queue(name)),
            );
        }
    }
    outputs
}
