//! Cases from AWS's policy evaluation logic and condition operator
//! documentation.

use serde_json::{Value, json};

use crate::*;

const QUEUE: &str = "arn:aws:sqs:us-east-1:123456789012:shop-order";

fn policy(name: &str, statements: Value) -> Policy {
    Policy::parse(
        name,
        &json!({"Version": "2012-10-17", "Statement": statements}),
    )
    .unwrap()
}

fn decide(identity: &[Policy], action: &str, resource: &str, context: &Context) -> Decision {
    evaluate(
        identity,
        None,
        &Request {
            action,
            resource,
            context,
        },
    )
}

fn allowed(p: &Policy, action: &str, resource: &str, context: &Context) -> bool {
    decide(std::slice::from_ref(p), action, resource, context).is_allowed()
}

#[test]
fn an_explicit_deny_wins_over_any_allow_in_any_policy() {
    let allow = policy(
        "allow",
        json!([{"Effect": "Allow", "Action": "sqs:*", "Resource": "*"}]),
    );
    let deny = policy(
        "deny",
        json!([{"Sid": "NoPurge", "Effect": "Deny", "Action": "sqs:PurgeQueue", "Resource": QUEUE}]),
    );
    let both = [allow, deny];
    let ctx = Context::new();
    assert!(decide(&both, "sqs:SendMessage", QUEUE, &ctx).is_allowed());
    let denied = decide(&both, "sqs:PurgeQueue", QUEUE, &ctx);
    assert_eq!(
        denied.to_string(),
        "with an explicit deny in policy deny statement 1 (NoPurge)"
    );
}

#[test]
fn nothing_allowed_is_denied() {
    let p = policy(
        "p",
        json!([{"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"}]),
    );
    assert_eq!(
        decide(&[p], "sqs:SendMessage", QUEUE, &Context::new()),
        Decision::Denied(Denial::NoAllow)
    );
    assert_eq!(
        decide(&[], "sqs:SendMessage", QUEUE, &Context::new()),
        Decision::Denied(Denial::NoAllow)
    );
}

#[test]
fn not_action_allows_every_other_action_and_not_resource_every_other_resource() {
    let p = policy(
        "p",
        json!([{"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
               {"Effect": "Allow", "Action": "sns:Publish", "NotResource": "arn:aws:sns:*:*:secret-*"}]),
    );
    let ctx = Context::new();
    assert!(allowed(&p, "sqs:DeleteQueue", QUEUE, &ctx));
    assert!(!allowed(&p, "iam:PassRole", "*", &ctx));
    let deny_all_but = policy(
        "d",
        json!([{"Effect": "Allow", "Action": "*", "Resource": "*"},
               {"Effect": "Deny", "NotAction": ["sqs:ReceiveMessage"], "Resource": "*"}]),
    );
    assert!(allowed(&deny_all_but, "sqs:ReceiveMessage", QUEUE, &ctx));
    assert!(!allowed(&deny_all_but, "sqs:SendMessage", QUEUE, &ctx));
    let topic = |name: &str| format!("arn:aws:sns:us-east-1:123456789012:{name}");
    let publish_only = policy(
        "n",
        json!([{"Effect": "Allow", "Action": "sns:Publish", "NotResource": "arn:aws:sns:*:*:secret-*"}]),
    );
    assert!(allowed(
        &publish_only,
        "sns:Publish",
        &topic("orders"),
        &ctx
    ));
    assert!(!allowed(
        &publish_only,
        "sns:Publish",
        &topic("secret-x"),
        &ctx
    ));
}

#[test]
fn a_missing_key_fails_a_condition_unless_if_exists_or_negated() {
    let with = |operator: &str| {
        policy(
            "p",
            json!([{"Effect": "Allow", "Action": "ec2:*", "Resource": "*",
                "Condition": {operator: {"aws:ResourceTag/techctl:stack": "shop"}}}]),
        )
    };
    let tagged = Context::new().with("aws:ResourceTag/techctl:stack", "shop");
    let other = Context::new().with("aws:ResourceTag/techctl:stack", "prod");
    let untagged = Context::new();
    let equals = with("StringEquals");
    assert!(allowed(&equals, "ec2:DeleteSubnet", "*", &tagged));
    assert!(!allowed(&equals, "ec2:DeleteSubnet", "*", &other));
    assert!(!allowed(&equals, "ec2:DeleteSubnet", "*", &untagged));
    let if_exists = with("StringEqualsIfExists");
    assert!(allowed(&if_exists, "ec2:DeleteSubnet", "*", &untagged));
    assert!(!allowed(&if_exists, "ec2:DeleteSubnet", "*", &other));
    let not_equals = with("StringNotEquals");
    assert!(allowed(&not_equals, "ec2:DeleteSubnet", "*", &untagged));
    assert!(allowed(&not_equals, "ec2:DeleteSubnet", "*", &other));
    assert!(!allowed(&not_equals, "ec2:DeleteSubnet", "*", &tagged));
    // Keys are case-insensitive.
    let shouting = Context::new().with("AWS:RESOURCETAG/TECHCTL:STACK", "shop");
    assert!(allowed(&equals, "ec2:DeleteSubnet", "*", &shouting));
}

#[test]
fn null_asks_whether_the_key_is_there() {
    let must_be_tagged = policy(
        "p",
        json!([{"Effect": "Deny", "Action": "ec2:CreateVpc", "Resource": "*",
                "Condition": {"Null": {"aws:RequestTag/techctl:stack": "true"}}},
               {"Effect": "Allow", "Action": "ec2:CreateVpc", "Resource": "*"}]),
    );
    let tagged = Context::new().with("aws:RequestTag/techctl:stack", "shop");
    assert!(allowed(&must_be_tagged, "ec2:CreateVpc", "*", &tagged));
    assert!(!allowed(
        &must_be_tagged,
        "ec2:CreateVpc",
        "*",
        &Context::new()
    ));
}

#[test]
fn set_operators_on_multi_valued_keys() {
    let mut only_ours = Context::new();
    only_ours.set("aws:TagKeys", vec!["techctl:stack".into(), "Name".into()]);
    let mut with_other = only_ours.clone();
    with_other.set(
        "aws:TagKeys",
        vec!["techctl:stack".into(), "cost-center".into()],
    );
    let all_values = policy(
        "p",
        json!([{"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*",
            "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["techctl:stack", "techctl:id", "Name"]}}}]),
    );
    assert!(allowed(&all_values, "ec2:CreateTags", "*", &only_ours));
    assert!(!allowed(&all_values, "ec2:CreateTags", "*", &with_other));
    // ForAllValues holds for a request without the key: AWS's documented
    // trap, which is why it is paired with Null or a ForAnyValue.
    assert!(allowed(&all_values, "ec2:CreateTags", "*", &Context::new()));
    let any_value = policy(
        "p",
        json!([{"Effect": "Allow", "Action": "ec2:CreateTags", "Resource": "*",
            "Condition": {"ForAnyValue:StringEquals": {"aws:TagKeys": ["cost-center"]}}}]),
    );
    assert!(allowed(&any_value, "ec2:CreateTags", "*", &with_other));
    assert!(!allowed(&any_value, "ec2:CreateTags", "*", &only_ours));
    assert!(!allowed(&any_value, "ec2:CreateTags", "*", &Context::new()));
}

#[test]
fn arn_like_bool_and_several_keys_all_must_hold() {
    let p = policy(
        "p",
        json!([{"Effect": "Allow", "Action": "iam:PassRole", "Resource": "*",
            "Condition": {
                "StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"},
                "ArnLike": {"aws:SourceArn": ["arn:aws:ecs:*:123456789012:*"]},
                "Bool": {"aws:SecureTransport": "true"}}}]),
    );
    let ok = Context::new()
        .with("iam:PassedToService", "ecs-tasks.amazonaws.com")
        .with(
            "aws:SourceArn",
            "arn:aws:ecs:us-east-1:123456789012:cluster/shop",
        )
        .with("aws:SecureTransport", "TRUE");
    assert!(allowed(&p, "iam:PassRole", "*", &ok));
    let lambda = ok
        .clone()
        .with("iam:PassedToService", "lambda.amazonaws.com");
    assert!(!allowed(&p, "iam:PassRole", "*", &lambda));
    let elsewhere = ok.clone().with(
        "aws:SourceArn",
        "arn:aws:ecs:us-east-1:999999999999:cluster/x",
    );
    assert!(!allowed(&p, "iam:PassRole", "*", &elsewhere));
}

#[test]
fn a_permissions_boundary_limits_and_never_grants() {
    let identity = policy(
        "identity",
        json!([{"Effect": "Allow", "Action": ["sqs:*", "iam:CreateRole"], "Resource": "*"}]),
    );
    let boundary = policy(
        "boundary",
        json!([{"Effect": "Allow", "Action": ["sqs:*", "sns:*"], "Resource": "*"}]),
    );
    let ctx = Context::new();
    let ask = |action: &str| {
        evaluate(
            std::slice::from_ref(&identity),
            Some(&boundary),
            &Request {
                action,
                resource: QUEUE,
                context: &ctx,
            },
        )
    };
    assert!(ask("sqs:SendMessage").is_allowed());
    assert_eq!(
        ask("iam:CreateRole"),
        Decision::Denied(Denial::OutsideBoundary("boundary".into()))
    );
    assert_eq!(ask("sns:Publish"), Decision::Denied(Denial::NoAllow));
}

#[test]
fn policy_variables_come_from_the_request() {
    let p = policy(
        "p",
        json!([{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/techctl:stack": "${aws:PrincipalTag/techctl:stack}"}}}]),
    );
    let same = Context::new()
        .with("aws:PrincipalTag/techctl:stack", "shop")
        .with("aws:ResourceTag/techctl:stack", "shop");
    let other = same.clone().with("aws:ResourceTag/techctl:stack", "prod");
    let untagged_caller = Context::new().with("aws:ResourceTag/techctl:stack", "shop");
    assert!(allowed(&p, "secretsmanager:GetSecretValue", "*", &same));
    assert!(!allowed(&p, "secretsmanager:GetSecretValue", "*", &other));
    assert!(!allowed(
        &p,
        "secretsmanager:GetSecretValue",
        "*",
        &untagged_caller
    ));
}

#[test]
fn operators_not_evaluated_here_are_refused_not_ignored() {
    let refused = Policy::parse(
        "p",
        &json!({"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}),
    )
    .unwrap_err();
    assert!(refused.to_string().contains("IpAddress is not evaluated"));
}

#[test]
fn a_trust_policy_names_its_principal_and_checks_the_token() {
    let provider = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com";
    let trust = policy(
        "trust",
        json!([{"Effect": "Allow", "Principal": {"Federated": provider},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {"StringEquals": {
                "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
                "token.actions.githubusercontent.com:sub": "repo:o/r:environment:staging"}}}]),
    );
    let claims = |sub: &str| {
        Context::new()
            .with(
                "token.actions.githubusercontent.com:aud",
                "sts.amazonaws.com",
            )
            .with("token.actions.githubusercontent.com:sub", sub)
    };
    let assume = "sts:AssumeRoleWithWebIdentity";
    let github = Principal::Federated(provider);
    assert!(
        evaluate_trust(
            &trust,
            &github,
            assume,
            &claims("repo:o/r:environment:staging")
        )
        .is_allowed()
    );
    assert!(
        !evaluate_trust(
            &trust,
            &github,
            assume,
            &claims("repo:o/r:ref:refs/heads/main")
        )
        .is_allowed()
    );
    assert!(
        !evaluate_trust(
            &trust,
            &github,
            assume,
            &claims("repo:fork/r:environment:staging")
        )
        .is_allowed()
    );
    let other_provider =
        Principal::Federated("arn:aws:iam::123456789012:oidc-provider/example.com");
    assert!(
        !evaluate_trust(
            &trust,
            &other_provider,
            assume,
            &claims("repo:o/r:environment:staging")
        )
        .is_allowed()
    );
    assert!(
        !evaluate_trust(
            &trust,
            &github,
            "sts:AssumeRole",
            &claims("repo:o/r:environment:staging")
        )
        .is_allowed()
    );

    let account = policy(
        "trust",
        json!([{"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "sts:AssumeRole"}]),
    );
    let role = Principal::Aws("arn:aws:iam::123456789012:role/admin");
    let stranger = Principal::Aws("arn:aws:iam::999999999999:role/admin");
    assert!(evaluate_trust(&account, &role, "sts:AssumeRole", &Context::new()).is_allowed());
    assert!(!evaluate_trust(&account, &stranger, "sts:AssumeRole", &Context::new()).is_allowed());
}
