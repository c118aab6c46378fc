//! The role GitHub Actions deploys with: trusted by one repository's
//! branch alone, able to make every call `techctl` makes on the stack's
//! own resources, and unable to widen its own rights.

use serde_json::Value;

use super::iam::{self, Decision, Patterns};
use super::snapshot::{Role, Snapshot};
use super::{Flow, Trace};
use crate::ecs::GITHUB_ISSUER;
use engine::plan::expand::deploy;

/// The flows of the deploy role: needed when the blueprint asks for one,
/// and the role held to what it needs whenever it exists.
pub fn flows(s: &Snapshot) -> Vec<Flow> {
    let mut flows = Vec::new();
    if let Some(subject) = &s.deploy_subject {
        flows.push(can_deploy(s, subject));
    }
    if let Some(role) = &s.deploy_role {
        flows.push(no_more_than_techctl(s, role));
    }
    flows
}

fn can_deploy(s: &Snapshot, subject: &str) -> Flow {
    let mut t = Trace::default();
    let flow = format!("GitHub Actions ({subject}) → deploy the stack");
    let Some(role) = &s.deploy_role else {
        t.block("the deploy role does not exist: run `techctl up`");
        return t.needed(flow);
    };
    match trusted_subject(&role.trust_policy) {
        Ok(trusted) if trusted == subject => t.allow(format!(
            "role {} trusts GitHub's token for {subject}, audience sts.amazonaws.com",
            role.name
        )),
        Ok(trusted) => t.block(format!(
            "role {} trusts {trusted}, not {subject}",
            role.name
        )),
        Err(problem) => t.block(format!("role {}: {problem}", role.name)),
    }
    for call in deploy::calls() {
        let Some(action) = deploy::action_of(call) else {
            continue;
        };
        let resource = sample_resource(s, &action);
        match iam::decide(role, &action, &resource) {
            Decision::Allowed(_) => {}
            _ => t.block(format!(
                "role {} may not {action} on {resource} ({call})",
                role.name
            )),
        }
    }
    if t.blocked.is_empty() {
        t.allow(format!(
            "role {} allows each of the {} calls techctl makes",
            role.name,
            deploy::calls().len()
        ));
    }
    t.needed(flow)
}

/// The subject a trust policy lets assume the role, if the policy is the
/// one the engine writes: GitHub's OIDC provider alone, the audience for
/// AWS, the subject compared exactly.
fn trusted_subject(document: &Value) -> Result<String, String> {
    let statements = iam::statement_values(document);
    let [statement] = statements.as_slice() else {
        return Err(format!("{} trust statements, not one", statements.len()));
    };
    let principal = &statement["Principal"];
    let federated = principal["Federated"].as_str().unwrap_or_default();
    let only_github = principal.as_object().is_some_and(|p| p.len() == 1)
        && federated.ends_with(&format!(":oidc-provider/{GITHUB_ISSUER}"));
    if !only_github {
        return Err(format!(
            "trusts {principal}, not GitHub's OIDC provider alone"
        ));
    }
    if iam::strings(statement.get("Action")) != ["sts:AssumeRoleWithWebIdentity"] {
        return Err("trusts more than sts:AssumeRoleWithWebIdentity".into());
    }
    let conditions = statement["Condition"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if conditions.keys().any(|k| k != "StringEquals") {
        return Err("compares the token with more than StringEquals: a pattern could let other branches or forks in".into());
    }
    let equals = &statement["Condition"]["StringEquals"];
    if equals[format!("{GITHUB_ISSUER}:aud")].as_str() != Some("sts.amazonaws.com") {
        return Err("does not require the audience sts.amazonaws.com".into());
    }
    equals[format!("{GITHUB_ISSUER}:sub")]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "does not name the token's subject: any repository could assume it".into())
}

/// A resource of the stack that `action` works on, for deciding on it:
/// the stack's own queue, topic, secret, role, log group, repository or
/// alarm; `*` for the services whose resources IAM cannot name before
/// they exist.
fn sample_resource(s: &Snapshot, action: &str) -> String {
    let prefix = action.split_once(':').map_or("", |(p, _)| p);
    let services = || s.services.iter();
    let first =
        |pick: fn(&super::snapshot::Service) -> Option<&String>| services().find_map(pick).cloned();
    let found = match prefix {
        "sqs" => first(|x| x.queue_arn.as_ref()),
        "sns" => first(|x| x.topic_arn.as_ref()),
        "secretsmanager" => s.secret_arn.clone(),
        "iam" => first(|x| x.task_role_arn.as_ref()),
        "logs" => first(|x| x.log_group_arn.as_ref()).map(|a| a.trim_end_matches(":*").to_string()),
        "ecr" => first(|x| x.repository_arn.as_ref()),
        "cloudwatch" => services()
            .find(|x| x.dead_letter_queue_arn.is_some())
            .and_then(|x| {
                let queue = x.dead_letter_queue_arn.as_ref()?;
                let (head, _) = queue.rsplit_once(':')?;
                let head = head.replacen(":sqs:", ":cloudwatch:", 1);
                Some(format!(
                    "{head}:alarm:{}",
                    blueprint::names::dead_letter_alarm(&s.stack, &x.name)
                ))
            }),
        _ => None,
    };
    found.unwrap_or_else(|| "*".into())
}

/// What a deploy role must not hold: any action at all (`*`, `service:*`,
/// `NotAction`), everything but some resources (`NotResource`), and the
/// means to change its own rights or trust.
fn no_more_than_techctl(s: &Snapshot, role: &Role) -> Flow {
    let mut t = Trace::default();
    for (at, statement) in iam::role_statements(role) {
        let mut problems = Vec::new();
        match &statement.actions {
            Patterns::AllBut(_) => problems.push("NotAction".to_string()),
            Patterns::Listed(list) => problems.extend(
                list.iter()
                    .filter(|a| iam::is_wildcard_action(a))
                    .map(|a| format!("Action {a}")),
            ),
        }
        if let Patterns::AllBut(_) = &statement.resources {
            problems.push("NotResource".into());
        }
        if !problems.is_empty() {
            t.allow(at.to_string());
            t.block(format!("{at}: {}", problems.join(", ")));
        }
    }
    for action in [
        "iam:PutRolePolicy",
        "iam:AttachRolePolicy",
        "iam:UpdateAssumeRolePolicy",
        "iam:DeleteRolePolicy",
    ] {
        if let Decision::Allowed(by) = iam::decide(role, action, &role.arn) {
            t.allow(by[0].to_string());
            t.block(format!(
                "role {} may {action} on itself ({})",
                role.name, by[0]
            ));
        }
    }
    if s.deploy_subject.is_none() {
        t.allow(format!("role {}", role.name));
        t.block(format!(
            "role {} exists but the blueprint asks for no deploy on push: `techctl up` removes it",
            role.name
        ));
    }
    t.forbidden("the deploy role → more than techctl's calls on the stack")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_exact_trust_the_engine_writes_names_a_subject() {
        let subject = "repo:lanchonete/techchallenge:ref:refs/heads/main";
        let provider =
            "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com";
        let trust = |condition: Value| {
            json!({"Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": provider},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": condition,
            }]})
        };
        let exact = trust(json!({"StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": subject,
        }}));
        assert_eq!(trusted_subject(&exact).as_deref(), Ok(subject));
        let pattern = trust(json!({
            "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
            "StringLike": {"token.actions.githubusercontent.com:sub": "repo:lanchonete/*"},
        }));
        assert!(
            trusted_subject(&pattern)
                .unwrap_err()
                .contains("StringEquals")
        );
        let no_subject = trust(json!({"StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
        }}));
        assert!(
            trusted_subject(&no_subject)
                .unwrap_err()
                .contains("any repository")
        );
        let no_audience = trust(json!({"StringEquals": {
            "token.actions.githubusercontent.com:sub": subject,
        }}));
        assert!(
            trusted_subject(&no_audience)
                .unwrap_err()
                .contains("audience")
        );
    }
}
