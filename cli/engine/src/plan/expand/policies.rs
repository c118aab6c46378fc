//! What IAM would refuse of the policies the blueprint makes, found before
//! any call: an action AWS's Service Authorization Reference does not
//! know, a role's inline policy over 10,240 characters, a managed policy
//! (the boundary) over 6,144 (IAM's quotas, white space not counted).

use crate::plan::resource::{Output, Resource, Spec, policy_document};

/// IAM's quota on a role's inline policies, together.
pub const INLINE_LIMIT: usize = 10_240;
/// IAM's quota on a managed policy.
pub const MANAGED_LIMIT: usize = 6_144;
/// An ARN's length as the estimate puts it before AWS gives it: longer
/// than any of the stack's (a secret's, with its suffix, is the longest).
const ARN_ESTIMATE: usize = 120;

/// The policy's size as IAM counts it, each ARN not known yet taken at
/// [`ARN_ESTIMATE`] characters.
pub fn estimated_size(
    policy: &std::collections::BTreeSet<crate::plan::resource::Statement>,
) -> usize {
    let document = policy_document(policy, |o| {
        Ok::<_, ()>(match o {
            Output::Text(text) => text.clone(),
            _ => "a".repeat(ARN_ESTIMATE),
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
        let size = estimated_size(policy);
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
    use crate::plan::resource::Statement;

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
                    eprintln!("{env:?} {name}: {} characters", estimated_size(policy));
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
