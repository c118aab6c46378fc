//! The role GitHub Actions deploys the stack with (`[deploy_on_push]`):
//! only GitHub's OIDC tokens for jobs of one repository running in one
//! GitHub environment may assume it, and it may make exactly the AWS calls
//! `techctl plan`, `up`, `deploy`, `status`, `verify`, `keys` and `events`
//! make, on the stack's resources wherever IAM can name them. It may make
//! or change a role only with the stack's permissions boundary on it, and
//! pass one only to ECS's tasks, so nothing it runs can make itself more
//! than the stack's tasks are.
//!
//! The calls are listed in `aws-calls.txt` as the call log writes them
//! (`service:Operation`); a test runs those commands through the binary
//! and refuses a call missing from the list. Each call becomes its IAM
//! action here, with the rights no SDK call shows: pushing image layers,
//! passing the stack's roles to ECS, and the service-linked roles AWS
//! makes on a first use.

use std::collections::{BTreeMap, BTreeSet};

use crate::plan::resource::{Output, Resource, Spec, Statement, Trust};
use blueprint::{Blueprint, names};

use super::ids;
use super::platform::{ECS_TASKS, log_group_name, role_path};

/// GitHub Actions' token issuer, as IAM names its OIDC provider and the
/// condition keys of its claims.
pub const GITHUB_ISSUER: &str = "token.actions.githubusercontent.com";

/// Every AWS call of `plan`, `up`, `deploy`, `status`, `verify`, `keys` and `events`.
const CALLS: &str = include_str!("aws-calls.txt");

/// The IAM path of deploy roles: outside the stack's role path, so that
/// the rights over the stack's roles never reach the deploy role itself.
pub fn deploy_role_path(stack: &str) -> String {
    format!("/techctl-deploy/{stack}/")
}

/// The calls of [`CALLS`], `service:Operation`, in order.
pub fn calls() -> Vec<&'static str> {
    CALLS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The IAM action a call needs: the SDK's service name (as its call log
/// writes it) turned into IAM's prefix, and API Gateway's HTTP APIs, which
/// IAM knows by HTTP method. `None` for a service techctl does not use.
pub fn action_of(call: &str) -> Option<String> {
    let (service, operation) = call.split_once(':')?;
    let prefix = match service {
        "EC2" => "ec2",
        "Elastic Load Balancing v2" => "elasticloadbalancing",
        "ECS" => "ecs",
        "IAM" => "iam",
        "CloudWatch Logs" => "logs",
        "CloudWatch" => "cloudwatch",
        "RDS" => "rds",
        "ECR" => "ecr",
        "SNS" => "sns",
        "SQS" => "sqs",
        "STS" => "sts",
        "Secrets Manager" => "secretsmanager",
        "Application Auto Scaling" => "application-autoscaling",
        "ApiGatewayV2" => {
            let method = [
                ("Get", "GET"),
                ("Create", "POST"),
                ("TagResource", "POST"),
                ("Update", "PATCH"),
                ("Delete", "DELETE"),
                ("UntagResource", "DELETE"),
            ]
            .iter()
            .find(|(start, _)| operation.starts_with(start))
            .map(|(_, method)| *method)?;
            return Some(format!("apigateway:{method}"));
        }
        _ => return None,
    };
    Some(iam::reference::action_for(prefix, operation))
}

/// Rights no SDK call shows, with what they are used on.
const IMPLIED: &[(&str, &str)] = &[
    // `techctl deploy` pushes layers and manifests over the registry API,
    // and `deploy --image` reads the image's config blob.
    ("ecr:BatchCheckLayerAvailability", "repositories"),
    ("ecr:InitiateLayerUpload", "repositories"),
    ("ecr:UploadLayerPart", "repositories"),
    ("ecr:CompleteLayerUpload", "repositories"),
    ("ecr:PutImage", "repositories"),
    ("ecr:BatchGetImage", "repositories"),
    ("ecr:GetDownloadUrlForLayer", "repositories"),
    // Task definitions, services and the set-up task name the stack's roles.
    ("iam:PassRole", "roles"),
    // ECS, Application Auto Scaling, ELB and RDS make their roles on first use.
    ("iam:CreateServiceLinkedRole", "service-linked roles"),
    // A role's boundary is set when it is made or put right later.
    ("iam:PutRolePermissionsBoundary", "roles"),
    // Application Auto Scaling makes, reads and deletes the target tracking
    // policy's alarms with the caller's rights, and checks them first.
    ("cloudwatch:PutMetricAlarm", "target tracking alarms"),
    ("cloudwatch:DescribeAlarms", "target tracking alarms"),
    ("cloudwatch:DeleteAlarms", "target tracking alarms"),
];

/// The services ECS's service-linked roles are for, the only ones the
/// deploy role may make.
pub const LINKED_ROLE_SERVICES: [&str; 4] = [
    "ecs.amazonaws.com",
    "ecs.application-autoscaling.amazonaws.com",
    "elasticloadbalancing.amazonaws.com",
    "rds.amazonaws.com",
];

/// The services granted on `*` (their resources' ids are AWS's to pick)
/// whose writes are held to the stack's tag.
const TAG_CONDITIONED: [&str; 6] = [
    "ec2",
    "elasticloadbalancing",
    "rds",
    "ecs",
    "apigateway",
    "application-autoscaling",
];

/// Whether an action only reads: a listing, a description, a get.
pub fn is_read(name: &str) -> bool {
    ["List", "Describe", "Get"]
        .iter()
        .any(|read| name.starts_with(read))
        || name == "GET"
}

/// Changes to the boundary itself: the deploy role may make none, so a
/// role it makes or changes can never be given more than the stack's
/// tasks hold. A change of the boundary takes an administrator's `up`.
const BOUNDARY_EDITS: [&str; 4] = [
    "iam:CreatePolicyVersion",
    "iam:DeletePolicy",
    "iam:DeletePolicyVersion",
    "iam:SetDefaultPolicyVersion",
];

/// The ARN pattern of the stack's permissions boundary (any account: IAM
/// names the account, the deploy role lives in one).
pub fn boundary_arn_pattern(bp: &Blueprint) -> String {
    let stack = bp.stack_name();
    format!(
        "arn:{}:iam::*:policy{}{}",
        names::partition(bp.region()),
        role_path(stack),
        names::boundary_policy(stack)
    )
}

/// The stack's resources of `action`'s service that techctl works on, as
/// IAM resource patterns: named one by one where a name could be another
/// stack's prefix (`STACK-*` would also name `STACK-prod`'s queues).
fn candidates(bp: &Blueprint, action: &str) -> Vec<String> {
    let stack = bp.stack_name();
    let region = bp.region();
    let partition = names::partition(region);
    let arn = |service: &str, rest: &str| format!("arn:{partition}:{service}:{region}:*:{rest}");
    let consumers: Vec<&str> = bp
        .services()
        .filter(|(_, s)| !s.consumes.is_empty())
        .map(|(name, _)| name)
        .collect();
    let prefix = action.split_once(':').map_or("", |(p, _)| p);
    let name = action.split_once(':').map_or("", |(_, n)| n);
    match prefix {
        "sqs" => consumers
            .iter()
            .flat_map(|s| [names::queue(stack, s), names::dead_letter_queue(stack, s)])
            .map(|q| arn("sqs", &q))
            .collect(),
        // A subscription's calls name the subscription, which SNS
        // authorizes against no topic: `*` alone grants them.
        "sns" if name.contains("SubscriptionAttributes") || name == "Unsubscribe" => bp
            .services()
            .filter(|(_, s)| !s.publishes.is_empty())
            .map(|(s, _)| arn("sns", &format!("{stack}-{s}-events:*")))
            .collect(),
        "sns" => bp
            .services()
            .filter(|(_, s)| !s.publishes.is_empty())
            .map(|(s, _)| arn("sns", &format!("{stack}-{s}-events")))
            .collect(),
        "cloudwatch" => consumers
            .iter()
            .map(|s| format!("alarm:{}", names::dead_letter_alarm(stack, s)))
            // The cluster is named after the stack; a slash ends it.
            .chain([format!("alarm:TargetTracking-service/{stack}/*")])
            .map(|a| arn("cloudwatch", &a))
            .collect(),
        "secretsmanager" => vec![
            // The stack secret and the lock, with the six characters AWS
            // adds; every other secret of the stack, below a slash.
            arn(
                "secretsmanager",
                &format!("secret:{}-??????", super::secret_name(stack)),
            ),
            arn(
                "secretsmanager",
                &format!("secret:{}-??????", super::lock_secret_name(stack)),
            ),
            arn(
                "secretsmanager",
                &format!("secret:{}*", super::secret_prefix(stack)),
            ),
        ],
        "logs" => vec![arn(
            "logs",
            &format!("log-group:{}*", log_group_name(stack, "")),
        )],
        "ecr" => vec![arn("ecr", &format!("repository/{stack}/*"))],
        "iam" if name == "CreateServiceLinkedRole" => {
            vec![format!("arn:{partition}:iam::*:role/aws-service-role/*")]
        }
        "iam" => {
            let role = |path: &str| format!("arn:{partition}:iam::*:role{path}*");
            // Writes touch the stack's roles alone.
            vec![role(&role_path(stack))]
        }
        _ => vec![],
    }
}

/// The resources `action` is granted on: of the stack's resources techctl
/// works on, those whose type AWS's Service Authorization Reference says
/// the action is authorized against; `*` when there are none (an action
/// with no resource type, such as a listing, or one whose resources IAM
/// cannot name before AWS gives them an id: EC2, ELB, RDS, ECS, API
/// Gateway, Auto Scaling).
fn resources_of(bp: &Blueprint, action: &str) -> Vec<String> {
    // Reads of whole listings (a listing is checked against every resource
    // it could show, or against `*` when it names none, as `techctl`'s
    // prefix and tag look-ups do), and IAM's reads, which also read the
    // deploy role and the account's provider.
    let name = action.split_once(':').map_or(action, |(_, n)| n);
    if name.starts_with("List") || name.starts_with("Describe") || action.starts_with("iam:Get") {
        return vec!["*".into()];
    }
    let reference = iam::reference::aws();
    let taken: Vec<String> = candidates(bp, action)
        .into_iter()
        .filter(|pattern| reference.resource_type(action, pattern).is_some())
        .collect();
    if taken.is_empty() {
        vec!["*".into()]
    } else {
        taken
    }
}

/// The conditions `action` is granted under: a role is made or changed
/// only with the stack's boundary on it, passed only to ECS's tasks, and
/// only ECS's, ELB's and RDS's own roles are made.
fn conditions_of(bp: &Blueprint, action: &str) -> Vec<(&'static str, &'static str, Vec<String>)> {
    let Some(found) = iam::reference::aws().action(action) else {
        return vec![];
    };
    if action == "iam:PassRole" {
        return vec![(
            "StringEquals",
            "iam:PassedToService",
            vec![ECS_TASKS.to_string()],
        )];
    }
    if action == "iam:CreateServiceLinkedRole" && found.takes_condition("iam:AWSServiceName") {
        return vec![(
            "StringEquals",
            "iam:AWSServiceName",
            LINKED_ROLE_SERVICES.iter().map(|s| s.to_string()).collect(),
        )];
    }
    // The services whose resources get ids AWS picks, granted on `*`: a
    // write is refused on a resource tagged with another stack, or
    // tagging what it makes for another stack. `…IfExists`: a resource
    // without the tag (one AWS made, such as a network interface) and an
    // action that takes no tag key are not held back.
    let (prefix, name) = action.split_once(':').unwrap_or_default();
    if TAG_CONDITIONED.contains(&prefix) && !is_read(name) {
        let stack = vec![bp.stack_name().to_string()];
        return vec![
            (
                "StringEqualsIfExists",
                "aws:ResourceTag/techctl:stack",
                stack.clone(),
            ),
            (
                "StringEqualsIfExists",
                "aws:RequestTag/techctl:stack",
                stack,
            ),
        ];
    }
    let writes_role = prefix == "iam" && !is_read(name);
    if writes_role && found.takes_condition("iam:PermissionsBoundary") {
        return vec![(
            "StringLike",
            "iam:PermissionsBoundary",
            vec![boundary_arn_pattern(bp)],
        )];
    }
    vec![]
}

/// Every action the deploy role is granted.
pub fn actions() -> BTreeSet<String> {
    calls()
        .into_iter()
        .filter_map(action_of)
        .chain(IMPLIED.iter().map(|(a, _)| a.to_string()))
        .collect()
}

/// The deploy role's statements: one per set of resources and conditions,
/// and the denials that keep the boundary out of its reach.
pub fn policy(bp: &Blueprint) -> BTreeSet<Statement> {
    type Key = (Vec<String>, Vec<(&'static str, &'static str, Vec<String>)>);
    let mut grouped: BTreeMap<Key, BTreeSet<String>> = BTreeMap::new();
    for action in actions() {
        grouped
            .entry((resources_of(bp, &action), conditions_of(bp, &action)))
            .or_default()
            .insert(action);
    }
    let mut statements: BTreeSet<Statement> = grouped
        .into_iter()
        .map(|((resources, conditions), actions)| {
            conditions.into_iter().fold(
                Statement::allow(&actions, resources.into_iter().map(Output::Text)),
                |s, (operator, key, values)| s.when(operator, key, values),
            )
        })
        .collect();
    statements.insert(
        Statement::allow(BOUNDARY_EDITS, [Output::Text(boundary_arn_pattern(bp))]).denied(),
    );
    // Nor may it take a boundary off any role.
    statements.insert(
        Statement::allow(
            ["iam:DeleteRolePermissionsBoundary"],
            [Output::Text("*".into())],
        )
        .denied(),
    );
    statements
}

/// The deploy role, if the blueprint asks for one.
pub fn role(bp: &Blueprint) -> Option<Resource> {
    let deploy = bp.deploy_on_push.as_ref()?;
    Some(Resource::new(
        ids::deploy_role(),
        Spec::Role {
            name: names::deploy_role(bp.stack_name()),
            trust: Trust::GitHub {
                subject: deploy.subject(),
            },
            account_guard: false,
            policy: policy(bp),
            // Bounded by nothing: its own rights are what bound the roles it
            // makes, and it cannot change them.
            boundary: None,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../../../blueprints/techchallenge.toml");

    /// The shipped staging stack's deploy role policy, as IAM would hold it.
    fn staging_policy() -> iam::Policy {
        let bp = blueprint::parse_in(std::path::Path::new("t.toml"), SHIPPED, Some("staging"))
            .expect("valid");
        let document = crate::plan::resource::policy_document(&policy(&bp), |o| match o {
            Output::Text(t) => Ok(t.clone()),
            other => Err(format!("{other:?}")),
        })
        .expect("every resource is named");
        iam::Policy::parse("deploy", &document).expect("IAM takes it")
    }

    fn allowed(policy: &iam::Policy, action: &str, resource: &str, context: iam::Context) -> bool {
        iam::evaluate(
            std::slice::from_ref(policy),
            None,
            &iam::Request {
                action,
                resource,
                context: &context,
            },
        )
        .is_allowed()
    }

    #[test]
    fn the_deploy_role_reaches_what_techctl_touches_as_aws_authorizes_it() {
        let p = staging_policy();
        let none = iam::Context::new;
        let arn = |rest: &str| format!("arn:aws:{rest}");
        // The stack lock, and the stack secret, with AWS's suffix.
        let lock = arn(
            "secretsmanager:us-east-1:123456789012:secret:techctl-lock/techchallenge-staging-AbCdEf",
        );
        assert!(allowed(&p, "secretsmanager:CreateSecret", &lock, none()));
        assert!(allowed(&p, "secretsmanager:DeleteSecret", &lock, none()));
        // Not the base stack's lock or secret.
        let base = arn("secretsmanager:us-east-1:123456789012:secret:techctl/techchallenge-AbCdEf");
        assert!(!allowed(&p, "secretsmanager:GetSecretValue", &base, none()));
        // Actions that take no resource type, on `*`.
        for action in [
            "sns:Unsubscribe",
            "sns:GetSubscriptionAttributes",
            "secretsmanager:BatchGetSecretValue",
        ] {
            assert!(allowed(&p, action, "*", none()), "{action}");
        }
        // Reading a prebuilt image's layers in the stack's repositories.
        let repo = arn("ecr:us-east-1:123456789012:repository/techchallenge-staging/order");
        assert!(allowed(&p, "ecr:GetDownloadUrlForLayer", &repo, none()));
        // The alarms target tracking makes.
        let tracking = arn(
            "cloudwatch:us-east-1:123456789012:alarm:TargetTracking-service/techchallenge-staging/order-AlarmHigh-1",
        );
        assert!(allowed(&p, "cloudwatch:PutMetricAlarm", &tracking, none()));
        // Roles: only with the stack's boundary, passed only to ECS's tasks.
        let role = "arn:aws:iam::123456789012:role/techctl/techchallenge-staging/techchallenge-staging-order-task";
        let boundary = "arn:aws:iam::123456789012:policy/techctl/techchallenge-staging/techchallenge-staging-boundary";
        let bounded = || iam::Context::new().with("iam:PermissionsBoundary", boundary);
        assert!(allowed(&p, "iam:CreateRole", role, bounded()));
        assert!(allowed(&p, "iam:PutRolePolicy", role, bounded()));
        assert!(!allowed(&p, "iam:CreateRole", role, none()));
        assert!(!allowed(&p, "iam:PutRolePolicy", role, none()));
        let passed = |service: &str| iam::Context::new().with("iam:PassedToService", service);
        assert!(allowed(
            &p,
            "iam:PassRole",
            role,
            passed("ecs-tasks.amazonaws.com")
        ));
        assert!(!allowed(
            &p,
            "iam:PassRole",
            role,
            passed("lambda.amazonaws.com")
        ));
        assert!(!allowed(&p, "iam:CreatePolicyVersion", boundary, none()));
        assert!(!allowed(
            &p,
            "iam:DeleteRolePermissionsBoundary",
            role,
            bounded()
        ));
        // Its own role is not a stack role.
        let own = "arn:aws:iam::123456789012:role/techctl-deploy/techchallenge-staging/techchallenge-staging-deploy";
        assert!(!allowed(&p, "iam:PutRolePolicy", own, none()));
        // Writes where AWS picks the ids: the stack's own, or untagged.
        let vpc = "arn:aws:ec2:us-east-1:123456789012:vpc/vpc-1";
        let tagged = |stack: &str| iam::Context::new().with("aws:ResourceTag/techctl:stack", stack);
        assert!(allowed(
            &p,
            "ec2:DeleteVpc",
            vpc,
            tagged("techchallenge-staging")
        ));
        assert!(allowed(&p, "ec2:DeleteVpc", vpc, none()));
        assert!(!allowed(
            &p,
            "ec2:DeleteVpc",
            vpc,
            tagged("techchallenge-prod")
        ));
        let making = |stack: &str| iam::Context::new().with("aws:RequestTag/techctl:stack", stack);
        assert!(allowed(
            &p,
            "elasticloadbalancing:CreateTargetGroup",
            "*",
            making("techchallenge-staging")
        ));
        assert!(!allowed(
            &p,
            "elasticloadbalancing:CreateTargetGroup",
            "*",
            making("techchallenge-prod")
        ));
        // Every action granted is one IAM knows.
        for action in actions() {
            assert!(iam::reference::aws().action(&action).is_some(), "{action}");
        }
    }

    #[test]
    fn calls_become_iam_actions() {
        assert_eq!(
            action_of("SQS:CreateQueue").as_deref(),
            Some("sqs:CreateQueue")
        );
        assert_eq!(
            action_of("CloudWatch Logs:PutRetentionPolicy").as_deref(),
            Some("logs:PutRetentionPolicy")
        );
        assert_eq!(
            action_of("ApiGatewayV2:UpdateStage").as_deref(),
            Some("apigateway:PATCH")
        );
        assert_eq!(action_of("S3:GetObject"), None);
        assert!(
            calls().iter().all(|c| action_of(c).is_some()),
            "{:?}",
            calls()
        );
    }
}
