//! What IAM would refuse of the policies the blueprint makes, found before
//! any call: an action AWS's Service Authorization Reference does not
//! know, a role's inline policy over 10,240 characters, a managed policy
//! (the boundary) over 6,144 (IAM's quotas, white space not counted).

use std::collections::BTreeSet;

use crate::plan::resource::{Output, Resource, Spec, Statement, policy_document};

/// IAM's quota on a role's inline policies, together.
pub const INLINE_LIMIT: usize = 10_240;
/// IAM's quota on a managed policy.
pub const MANAGED_LIMIT: usize = 6_144;
/// An ARN's length before AWS gives it, beyond its resource's name: the
/// longest partition, service, region and account part of the stack's
/// ARNs (a secret's in `ap-southeast-1`, with the six characters AWS adds).
const ARN_BEYOND_NAME: usize = 65;
/// An ARN's length when not even the name is known.
const ARN_UNKNOWN: usize = 120;

/// The name a resource's ARN ends in, where the spec holds one.
fn name_of(spec: &Spec) -> Option<&str> {
    match spec {
        Spec::Queue { name, .. }
        | Spec::Topic { name }
        | Spec::Secret { name, .. }
        | Spec::StackSecret { name, .. }
        | Spec::LogGroup { name, .. }
        | Spec::Repository { name, .. }
        | Spec::Role { name, .. }
        | Spec::ManagedPolicy { name, .. }
        | Spec::Alarm { name, .. } => Some(name),
        _ => None,
    }
}

/// The policy's size as IAM counts it (white space aside), each ARN not
/// known yet estimated from its resource's name in `resources`.
pub fn estimated_size(policy: &BTreeSet<Statement>, resources: &[Resource]) -> usize {
    let document = policy_document(policy, |o| {
        Ok::<_, ()>(match o {
            Output::Text(text) => text.clone(),
            other => {
                let length = other
                    .refs()
                    .first()
                    .and_then(|id| resources.iter().find(|r| &r.id == *id))
                    .and_then(|r| name_of(&r.spec))
                    .map_or(ARN_UNKNOWN, |name| ARN_BEYOND_NAME + name.len());
                "a".repeat(length)
            }
        })
    })
    .unwrap_or_default();
    document
        .to_string()
        .chars()
        .filter(|c| !c.is_whitespace())
        .count()
}

/// Every problem IAM would find with the policies of `resources`.
pub fn problems(resources: &[Resource]) -> Vec<String> {
    let reference = iam::reference::aws();
    let mut out = Vec::new();
    for resource in resources {
        let (name, policy, limit, what) = match &resource.spec {
            Spec::Role { name, policy, .. } => (name, policy, INLINE_LIMIT, "role"),
            Spec::ManagedPolicy { name, policy } => (name, policy, MANAGED_LIMIT, "managed policy"),
            _ => continue,
        };
        for action in policy.iter().flat_map(|s| &s.actions) {
            let known = if action.contains(['*', '?']) {
                reference.knows_service(action)
            } else {
                reference.action(action).is_some()
            };
            if !known {
                out.push(format!(
                    "{what} {name}: IAM knows no action {action} (AWS's Service Authorization Reference, {})",
                    reference.version()
                ));
            }
        }
        let size = estimated_size(policy, resources);
        if size > limit {
            out.push(format!(
                "{what} {name}: its policy would be about {size} characters, over IAM's {limit}"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::resource::Effect;

    const SHIPPED: &str = include_str!("../../../../../blueprints/techchallenge.toml");

    #[test]
    fn the_shipped_stack_s_policies_are_within_iam_s_quotas_and_known() {
        for env in [None, Some("staging"), Some("prod")] {
            let bp = blueprint::parse_in(std::path::Path::new("techchallenge.toml"), SHIPPED, env)
                .expect("valid");
            let resources = super::super::desired(&bp);
            assert_eq!(problems(&resources), Vec::<String>::new(), "{env:?}");
            for r in &resources {
                if let Spec::Role { name, policy, .. } | Spec::ManagedPolicy { name, policy } =
                    &r.spec
                {
                    let allowed = policy.iter().filter(|s| s.effect == Effect::Allow);
                    let actions: BTreeSet<&String> =
                        allowed.clone().flat_map(|s| &s.actions).collect();
                    let on_any: BTreeSet<&String> = allowed
                        .filter(|s| s.resources.contains(&Output::Text("*".into())))
                        .flat_map(|s| &s.actions)
                        .collect();
                    eprintln!(
                        "{env:?} {name}: {} actions, {} on *, {} characters",
                        actions.len(),
                        on_any.len(),
                        estimated_size(policy, &resources)
                    );
                }
            }
        }
    }

    #[test]
    fn unknown_actions_and_oversized_policies_are_named() {
        let role = |policy| {
            Resource::new(
                crate::plan::resource::LogicalId::new(&["iam", "role", "x"]),
                Spec::Role {
                    name: "shop-x".into(),
                    trust: crate::plan::resource::Trust::Service("ecs-tasks.amazonaws.com".into()),
                    account_guard: true,
                    policy,
                    boundary: None,
                },
            )
        };
        let typo = role(
            [Statement::allow(
                ["sqs:SendMesage"],
                [Output::Text("*".into())],
            )]
            .into(),
        );
        assert_eq!(
            problems(&[typo])[0].split(" (").next().unwrap(),
            "role shop-x: IAM knows no action sqs:SendMesage"
        );
        let many = (0..200).map(|i| {
            Statement::allow(
                ["sqs:SendMessage"],
                [Output::Text(format!(
                    "arn:aws:sqs:us-east-1:123456789012:queue-{i}"
                ))],
            )
        });
        let big = role(many.collect());
        assert!(problems(&[big])[0].contains("over IAM's 10240"));
    }
}
