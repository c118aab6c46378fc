//! What the services run on: the internal load balancer and its rules, the
//! HTTP API in front of it, the ECS cluster with its roles and log groups,
//! and one image repository per service.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::outputs::Own;
use crate::plan::resource::{Cors, Output, Resource, Spec, Statement};
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

/// The two path patterns a prefix stands for: itself and everything below.
fn path_patterns(prefix: &str) -> [String; 2] {
    [prefix.to_string(), format!("{prefix}/*")]
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
                route_key: "ANY /{proxy+}".to_string(),
                integration: ids::integration(),
            },
        ),
        Resource::new(
            ids::api_stage(),
            Spec::ApiStage {
                api: ids::api(),
                name: "$default".to_string(),
                auto_deploy: true,
            },
        ),
    ]
}

fn statement(actions: &[&str], resources: impl IntoIterator<Item = Output>) -> Statement {
    Statement {
        actions: actions.iter().map(|a| a.to_string()).collect(),
        resources: resources.into_iter().collect(),
    }
}

/// The cluster, the roles its tasks run with, and their log groups. Each
/// role holds exactly what its tasks use, named resource by resource.
pub fn compute(bp: &Blueprint) -> Vec<Resource> {
    let stack = bp.stack_name();
    let secret = Output::Id(ids::stack_secret());
    let mut out = vec![Resource::new(
        ids::cluster(),
        Spec::Cluster {
            name: stack.to_string(),
            container_insights: true,
        },
    )];

    // The execution role is ECS's own: it pulls the image, writes the
    // logs and hands the task its secrets.
    let services: Vec<&str> = bp.services().map(|(name, _)| name).collect();
    let execution_policy = BTreeSet::from([
        // Authorisation tokens are not per repository.
        statement(&["ecr:GetAuthorizationToken"], [Output::Text("*".into())]),
        statement(
            &[
                "ecr:BatchCheckLayerAvailability",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
            ],
            services
                .iter()
                .map(|s| Output::attr(ids::repository(s), "arn")),
        ),
        statement(
            &["logs:CreateLogStream", "logs:PutLogEvents"],
            services
                .iter()
                .map(|s| Output::attr(ids::log_group(s), "arn")),
        ),
        statement(&["secretsmanager:GetSecretValue"], [secret.clone()]),
    ]);
    out.push(Resource::new(
        ids::execution_role(),
        Spec::Role {
            name: names::execution_role(stack),
            trusted_service: "ecs-tasks.amazonaws.com".into(),
            account_guard: true,
            policy: execution_policy,
        },
    ));

    let retention = *bp.logs.retention_days.get_ref();
    for (name, service) in bp.services() {
        // Every service reads its keys from the stack secret at run time.
        let mut policy = BTreeSet::from([statement(
            &["secretsmanager:GetSecretValue"],
            [secret.clone()],
        )]);
        if !service.publishes.is_empty() {
            policy.insert(statement(&["sns:Publish"], [Output::Id(ids::topic(name))]));
        }
        if !service.consumes.is_empty() {
            policy.insert(statement(
                &[
                    "sqs:ChangeMessageVisibility",
                    "sqs:DeleteMessage",
                    "sqs:GetQueueAttributes",
                    "sqs:ReceiveMessage",
                ],
                [Output::attr(ids::queue(name), "arn")],
            ));
            // A malformed message is dead-lettered at once, with its reason.
            policy.insert(statement(
                &["sqs:SendMessage"],
                [Output::attr(ids::dead_letter_queue(name), "arn")],
            ));
        }
        out.push(Resource::new(
            ids::task_role(name),
            Spec::Role {
                name: names::task_role(stack, name),
                trusted_service: "ecs-tasks.amazonaws.com".into(),
                account_guard: true,
                policy,
            },
        ));
        out.push(Resource::new(
            ids::log_group(name),
            Spec::LogGroup {
                name: format!("/techctl/{stack}/{name}"),
                retention_days: retention,
            },
        ));
    }
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
            Output::Text(format!("/techctl/{}/{name}", bp.stack_name())),
        );
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
