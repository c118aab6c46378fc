//! The role GitHub Actions deploys with: trusted by one repository's
//! GitHub environment alone, able to make every call `techctl` makes on
//! the stack's own resources, and unable to make itself more: it may make
//! or change a role only with the stack's boundary on it, pass one only to
//! ECS's tasks, and change neither the boundary nor its own rights.

use serde_json::Value;

use super::iam::{self, Context, Decision, Patterns};
use super::snapshot::{Role, Snapshot};
use super::{Flow, Trace};
use engine::plan::expand::deploy::{self, GITHUB_ISSUER};

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

/// The stack's permissions boundary, as its roles hold it.
fn boundary_arn(s: &Snapshot) -> Option<&str> {
    s.roles.iter().find_map(|r| r.boundary_arn.as_deref())
}

/// The context techctl makes `action` in: a role passed to ECS's tasks,
/// a role made or changed with the stack's boundary on it.
fn context_of(s: &Snapshot, action: &str) -> Context {
    let mut context = iam::context_for(action);
    let takes_boundary = ::iam::reference::aws()
        .action(action)
        .is_some_and(|a| a.takes_condition("iam:PermissionsBoundary"));
    if let (true, Some(arn)) = (takes_boundary, boundary_arn(s)) {
        context.set("iam:PermissionsBoundary", vec![arn.to_string()]);
    }
    context
}

/// The ARNs of the stack's resources, as AWS holds them: what each call
/// of techctl's is authorized against.
fn stack_resources(s: &Snapshot) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for service in &s.services {
        out.extend(
            [
                &service.queue_arn,
                &service.dead_letter_queue_arn,
                &service.topic_arn,
                &service.repository_arn,
                &service.secret_arn,
                &service.task_role_arn,
                &service.execution_role_arn,
            ]
            .into_iter()
            .flatten()
            .cloned(),
        );
        if let Some(group) = &service.log_group_arn {
            out.push(group.trim_end_matches(":*").to_string());
        }
        // The dead-letter alarm and a target tracking alarm of the
        // service, which CloudWatch names after it.
        if let Some(queue) = &service.dead_letter_queue_arn
            && let Some((head, _)) = queue.rsplit_once(':')
        {
            let head = head.replacen(":sqs:", ":cloudwatch:", 1);
            out.push(format!(
                "{head}:alarm:{}",
                blueprint::names::dead_letter_alarm(&s.stack, &service.name)
            ));
            out.push(format!(
                "{head}:alarm:TargetTracking-service/{}/{}-AlarmHigh-00000000-0000-0000-0000-000000000000",
                s.stack, service.name
            ));
        }
    }
    out.extend(
        [&s.secret_arn, &s.signing_keys_arn, &s.public_keys_arn]
            .into_iter()
            .flatten()
            .cloned(),
    );
    // The lock is made and deleted by each run: its ARN, as AWS would
    // give it, from the stack secret's.
    if let Some(secret) = &s.secret_arn
        && let Some((head, _)) = secret.split_once(":secret:")
    {
        out.push(format!(
            "{head}:secret:{}-AbCdEf",
            engine::plan::expand::lock_secret_name(&s.stack)
        ));
    }
    out.extend(s.roles.iter().map(|r| r.arn.clone()));
    out.extend(boundary_arn(s).map(str::to_string));
    out.sort();
    out.dedup();
    out
}

/// The resources of the stack `action` is authorized against, or `*`.
/// The deploy role writes only the stack's roles; it reads itself too.
fn resources_for(s: &Snapshot, role: &Role, action: &str, all: &[String]) -> Vec<String> {
    let reference = ::iam::reference::aws();
    let writes_iam = action
        .strip_prefix("iam:")
        .is_some_and(|name| !deploy::is_read(name));
    let mut own = all.to_vec();
    if !writes_iam {
        own.push(role.arn.clone());
    }
    let taken: Vec<String> = own
        .into_iter()
        .filter(|arn| reference.resource_type(action, arn).is_some())
        // A role written is one of the stack's roles.
        .filter(|arn| {
            !writes_iam || !arn.contains(":role/") || s.roles.iter().any(|r| &r.arn == arn)
        })
        .collect();
    if taken.is_empty() {
        vec!["*".into()]
    } else {
        taken
    }
}

/// Each request techctl makes with `action`: the resource it is
/// authorized against and its context. A service-linked role is made for
/// each service that makes one, on the path AWS gives them.
fn requests_for(s: &Snapshot, role: &Role, action: &str, all: &[String]) -> Vec<(String, Context)> {
    if action == "iam:CreateServiceLinkedRole" {
        let account = role.arn.split(':').nth(4).unwrap_or("*");
        return deploy::LINKED_ROLE_SERVICES
            .iter()
            .map(|service| {
                (
                    format!(
                        "arn:aws:iam::{account}:role/aws-service-role/{service}/AWSServiceRole"
                    ),
                    Context::new().with("iam:AWSServiceName", *service),
                )
            })
            .collect();
    }
    let context = context_of(s, action);
    resources_for(s, role, action, all)
        .into_iter()
        .map(|resource| (resource, context.clone()))
        .collect()
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
    let all = stack_resources(s);
    let actions = deploy::actions();
    let mut checked = 0;
    for action in &actions {
        for (resource, context) in requests_for(s, role, action, &all) {
            checked += 1;
            let decision = iam::decide_in(role, action, &resource, &context);
            if !decision.is_allowed() {
                t.block(format!(
                    "role {} may not {action} on {resource} ({decision:?})",
                    role.name
                ));
            }
        }
    }
    if t.blocked.is_empty() {
        t.allow(format!(
            "role {} allows each of the {} actions techctl uses, on each of the stack's \
             resources it is authorized against ({checked} checks)",
            role.name,
            actions.len()
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

/// What a deploy role must not hold: any action at all (`*`, `service:*`,
/// `NotAction`), everything but some resources (`NotResource`), and the
/// means to make itself more: change its own rights or trust, make or
/// change a role without the stack's boundary, pass a role to anything
/// but ECS's tasks, or change the boundary.
fn no_more_than_techctl(s: &Snapshot, role: &Role) -> Flow {
    let mut t = Trace::default();
    let mut on_any = Vec::new();
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
        if let Some(Patterns::AllBut(_)) = &statement.resources {
            problems.push("NotResource".into());
        }
        if let (Patterns::Listed(actions), Some(Patterns::Listed(resources))) =
            (&statement.actions, &statement.resources)
            && statement.effect == iam::Effect::Allow
            && resources.iter().any(|r| r == "*")
        {
            on_any.extend(actions.iter().cloned());
        }
        if !problems.is_empty() {
            t.allow(at.to_string());
            t.block(format!("{at}: {}", problems.join(", ")));
        }
    }
    let only_any = on_any
        .iter()
        .filter(|a| iam::takes_only_any_resource(a))
        .count();
    t.allow(format!(
        "role {} holds {} actions on *: {only_any} take no resource type (AWS's Service \
         Authorization Reference); the rest name resources AWS ids only once made (EC2, ELB, \
         RDS, ECS, API Gateway, Application Auto Scaling)",
        role.name,
        on_any.len()
    ));
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
    for (what, decision) in escalations(s, role) {
        if let Decision::Allowed(by) = decision {
            t.allow(by[0].to_string());
            t.block(format!("role {} may {what} ({})", role.name, by[0]));
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

/// What the deploy role must be refused, each asked of its policy as IAM
/// holds it: the ways code running with it could make itself more.
fn escalations(s: &Snapshot, role: &Role) -> Vec<(String, Decision)> {
    let partition = blueprint::names::partition(&s.region);
    let account = role.arn.split(':').nth(4).unwrap_or("*");
    let stack_role = |name: &str| {
        format!(
            "arn:{partition}:iam::{account}:role{}{name}",
            engine::plan::expand::role_path(&s.stack)
        )
    };
    let new_role = stack_role("escalate");
    let some_role = s
        .roles
        .first()
        .map_or_else(|| stack_role("order-task"), |r| r.arn.clone());
    let boundary = boundary_arn(s).map_or_else(
        || {
            format!(
                "arn:{partition}:iam::{account}:policy{}{}",
                engine::plan::expand::role_path(&s.stack),
                blueprint::names::boundary_policy(&s.stack)
            )
        },
        str::to_string,
    );
    let unbounded = Context::new();
    let other_boundary = Context::new().with(
        "iam:PermissionsBoundary",
        format!("arn:{partition}:iam::aws:policy/AdministratorAccess"),
    );
    vec![
        (
            "make a role without the stack's boundary".into(),
            iam::decide_in(role, "iam:CreateRole", &new_role, &unbounded),
        ),
        (
            "make a role with another boundary".into(),
            iam::decide_in(role, "iam:CreateRole", &new_role, &other_boundary),
        ),
        (
            "change the policy of a role without the stack's boundary".into(),
            iam::decide_in(role, "iam:PutRolePolicy", &some_role, &unbounded),
        ),
        (
            "attach a policy to a role without the stack's boundary".into(),
            iam::decide_in(role, "iam:AttachRolePolicy", &some_role, &unbounded),
        ),
        (
            "pass a stack role to a service other than ECS's tasks".into(),
            iam::decide_in(
                role,
                "iam:PassRole",
                &some_role,
                &Context::new().with("iam:PassedToService", "lambda.amazonaws.com"),
            ),
        ),
        (
            "write to a resource tagged with another stack".into(),
            iam::decide_in(
                role,
                "ec2:DeleteSecurityGroup",
                &format!(
                    "arn:{partition}:ec2:{}:{account}:security-group/sg-0",
                    s.region
                ),
                &Context::new().with(
                    "aws:ResourceTag/techctl:stack",
                    format!("{}-other", s.stack),
                ),
            ),
        ),
        (
            "change the stack's boundary".into(),
            iam::decide_in(role, "iam:CreatePolicyVersion", &boundary, &unbounded),
        ),
        (
            "take the boundary off a role".into(),
            iam::decide_in(
                role,
                "iam:DeleteRolePermissionsBoundary",
                &some_role,
                &unbounded,
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_the_exact_trust_the_engine_writes_names_a_subject() {
        let subject = "repo:lanchonete/techchallenge:environment:staging";
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
