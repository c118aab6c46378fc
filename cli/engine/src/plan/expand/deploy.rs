//! The role GitHub Actions deploys the stack with (`[deploy_on_push]`):
//! only GitHub's OIDC tokens for a push to one branch of one repository
//! may assume it, and it may make exactly the AWS calls `techctl plan`,
//! `up`, `deploy`, `status` and `verify` make, on the stack's resources
//! wherever IAM can name them.
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
use super::platform::{log_group_name, role_path};

/// Every AWS call of `plan`, `up`, `deploy`, `status` and `verify`.
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
    Some(format!("{prefix}:{operation}"))
}

/// Rights no SDK call shows, with what they are used on.
const IMPLIED: &[(&str, &str)] = &[
    // `techctl deploy` pushes layers and manifests over the registry API.
    ("ecr:BatchCheckLayerAvailability", "repositories"),
    ("ecr:InitiateLayerUpload", "repositories"),
    ("ecr:UploadLayerPart", "repositories"),
    ("ecr:CompleteLayerUpload", "repositories"),
    ("ecr:PutImage", "repositories"),
    ("ecr:BatchGetImage", "repositories"),
    // Task definitions, services and the set-up task name the stack's roles.
    ("iam:PassRole", "roles"),
    // ECS, Application Auto Scaling, ELB and RDS make their roles on first use.
    ("iam:CreateServiceLinkedRole", "service-linked roles"),
];

/// Actions IAM grants on `*` alone.
const ONLY_ON_ANY_RESOURCE: [&str; 3] = [
    "ecr:GetAuthorizationToken",
    "sts:GetCallerIdentity",
    "secretsmanager:GetRandomPassword",
];

/// Actions granted on `*`: those IAM grants on nothing narrower, the reads
/// of whole listings (a listing is checked against every resource it
/// could show), and IAM's reads, which also read the deploy role.
fn on_any_resource(action: &str) -> bool {
    let name = action.split_once(':').map_or(action, |(_, n)| n);
    ONLY_ON_ANY_RESOURCE.contains(&action)
        || name.starts_with("List")
        || name.starts_with("Describe")
        || action.starts_with("iam:Get")
}

/// The resources `action` is granted on: the stack's, by name, where IAM
/// can name them; `*` for the services whose resources are made with ids
/// AWS picks (EC2, ELB, RDS, ECS, API Gateway, Auto Scaling).
fn resources_of(bp: &Blueprint, action: &str) -> Vec<String> {
    let stack = bp.stack_name();
    let region = bp.region();
    let arn = |service: &str, rest: &str| {
        format!(
            "arn:{}:{service}:{region}:*:{rest}",
            names::partition(region)
        )
    };
    if on_any_resource(action) {
        return vec!["*".into()];
    }
    let consumers: Vec<&str> = bp
        .services()
        .filter(|(_, s)| !s.consumes.is_empty())
        .map(|(name, _)| name)
        .collect();
    let producers = bp.services().filter(|(_, s)| !s.publishes.is_empty());
    match action.split_once(':').map_or("", |(p, _)| p) {
        // Named one by one: `STACK-*` would also name the queues of a stack
        // called `STACK-prod`.
        "sqs" => consumers
            .iter()
            .flat_map(|s| [names::queue(stack, s), names::dead_letter_queue(stack, s)])
            .map(|q| arn("sqs", &q))
            .collect(),
        "sns" => producers
            .map(|(s, _)| arn("sns", &format!("{stack}-{s}-events")))
            .collect(),
        "cloudwatch" => consumers
            .iter()
            .map(|s| {
                arn(
                    "cloudwatch",
                    &format!("alarm:{}", names::dead_letter_alarm(stack, s)),
                )
            })
            .collect(),
        // A slash ends the stack's name in these.
        "secretsmanager" => vec![
            // The stack secret, with the six characters AWS adds.
            arn(
                "secretsmanager",
                &format!("secret:{}-??????", super::secret_name(stack)),
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
        "iam" if action == "iam:CreateServiceLinkedRole" => vec![format!(
            "arn:{}:iam::*:role/aws-service-role/*",
            names::partition(region)
        )],
        "iam" => vec![format!(
            "arn:{}:iam::*:role{}*",
            names::partition(region),
            role_path(stack)
        )],
        _ => vec!["*".into()],
    }
}

/// The deploy role's statements: one per set of resources.
pub fn policy(bp: &Blueprint) -> BTreeSet<Statement> {
    let actions: BTreeSet<String> = calls()
        .into_iter()
        .filter_map(action_of)
        .chain(IMPLIED.iter().map(|(a, _)| a.to_string()))
        .collect();
    let mut by_resources: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new();
    for action in actions {
        by_resources
            .entry(resources_of(bp, &action))
            .or_default()
            .insert(action);
    }
    by_resources
        .into_iter()
        .map(|(resources, actions)| Statement {
            actions,
            resources: resources.into_iter().map(Output::Text).collect(),
        })
        .collect()
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
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
