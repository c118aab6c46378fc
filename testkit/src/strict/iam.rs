//! IAM, which moto does not evaluate. A request signed with credentials
//! that moto's STS issued (`AssumeRole`, `AssumeRoleWithWebIdentity`
//! through this proxy) is authorized as AWS would authorize it, before
//! moto sees it: each action it needs, against the resource AWS's Service
//! Authorization Reference says that action is authorized against (`*`
//! for an action that takes none, or when the request names no resource
//! of the action's types), in the request's context, by the role's
//! policies and permissions boundary, with the `iam` crate that `techctl
//! verify` uses too. Credentials the proxy did not see issued are the
//! tests' "console" and stay unrestricted.
//!
//! The role takers are checked too: `AssumeRoleWithWebIdentity` needs a
//! token signed by GitHub's test key (`crate::github`) whose claims
//! satisfy the role's trust policy; `AssumeRole` needs a trust policy that
//! names the caller, or, with the header `x-testkit-assumed-by: SERVICE`
//! (a test standing in for ECS handing a task its role), that names the
//! service under the conditions ECS's request meets (`aws:SourceAccount`,
//! `aws:SourceArn`).

use std::collections::HashMap;
use std::sync::Arc;

use iam::{Context, Decision, Denial, Policy, Principal};
use serde_json::{Value, json};

use super::wire::Element;
use super::{Request, Service, Strict, Verdict};

/// A header a test sets on `AssumeRole` to ask as an AWS service would.
pub const ASSUMED_BY: &str = "x-testkit-assumed-by";

/// Whom a set of credentials belongs to.
#[derive(Clone, Debug)]
pub(super) struct Session {
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    pub arn: String,
    pub role: String,
    pub account: String,
}

impl Session {
    fn role_arn(&self, path: &str) -> String {
        format!("arn:aws:iam::{}:role{path}{}", self.account, self.role)
    }
}

/// A role's policies, as IAM held them when last read.
pub(super) struct RolePolicies {
    arn: String,
    identity: Vec<Policy>,
    boundary: Option<Policy>,
}

/// What the layer remembers for IAM.
#[derive(Default)]
pub(super) struct Sessions {
    by_key: HashMap<String, Session>,
    /// By role name; dropped whenever an IAM write passes.
    policies: HashMap<String, Arc<RolePolicies>>,
}

/// One authorization a request needs.
struct Authorization {
    action: String,
    resource: String,
    context: Context,
}

/// The access key and region of a signed request.
fn credential(request: &Request<'_>) -> Option<(String, String)> {
    let scope = request
        .headers
        .get("authorization")?
        .to_str()
        .ok()?
        .split("Credential=")
        .nth(1)?
        .split([',', ' '])
        .next()?
        .to_string();
    let parts: Vec<&str> = scope.split('/').collect();
    Some((parts.first()?.to_string(), parts.get(2)?.to_string()))
}

/// IAM's error code for a refusal, in the service's own words.
fn denied_code(service: Service) -> &'static str {
    match service {
        Service::Ec2 => "UnauthorizedOperation",
        Service::Sns => "AuthorizationError",
        Service::Iam
        | Service::Sts
        | Service::Elbv2
        | Service::Rds
        | Service::Sqs
        | Service::CloudWatch => "AccessDenied",
        _ => "AccessDeniedException",
    }
}

fn verdict(service: Service, message: String, reason: String) -> Verdict {
    Verdict::new(denied_code(service), message, reason)
}

impl Strict {
    /// Takes note of the credentials STS hands out and forgets role
    /// policies an IAM write may have changed.
    pub(super) fn observe_iam(&self, request: &Request<'_>, answer: &[u8]) {
        match (request.service, request.operation) {
            (Service::Sts, "AssumeRole" | "AssumeRoleWithWebIdentity") => {
                let Some(root) = Element::parse(&String::from_utf8_lossy(answer)) else {
                    return;
                };
                let (Some(key), Some(arn)) = (
                    root.find("AccessKeyId").map(|e| e.text.clone()),
                    root.find("AssumedRoleUser")
                        .and_then(|u| u.text_of("Arn"))
                        .map(str::to_string),
                ) else {
                    return;
                };
                let mut parts = arn.split(':');
                let account = parts.nth(4).unwrap_or_default().to_string();
                let role = arn.split('/').nth(1).unwrap_or_default().to_string();
                self.memory().iam.by_key.insert(
                    key,
                    Session {
                        arn: arn.clone(),
                        role,
                        account,
                    },
                );
            }
            (Service::Iam, operation)
                if !operation.starts_with("Get") && !operation.starts_with("List") =>
            {
                self.memory().iam.policies.clear();
            }
            _ => {}
        }
    }

    /// IAM's refusal of the request, if AWS would refuse it.
    pub(super) async fn authorize(&self, request: &Request<'_>) -> Option<Verdict> {
        match (request.service, request.operation) {
            (Service::Sts, "AssumeRoleWithWebIdentity") => {
                return self.web_identity(request).await;
            }
            (Service::Sts, "AssumeRole") if request.headers.contains_key(ASSUMED_BY) => {
                return self.assumed_by_service(request).await;
            }
            (Service::Sts, "AssumeRole") => {
                if let Some(refused) = self.assumed_by_caller(request).await {
                    return Some(refused);
                }
            }
            // Needs no permission at all.
            (Service::Sts, "GetCallerIdentity") => return None,
            _ => {}
        }
        let (key, region) = credential(request)?;
        let session = self.memory().iam.by_key.get(&key).cloned()?;
        let authorizations = match self.authorizations(request, &session, &region).await {
            Ok(found) => found,
            Err(unknown) => {
                return Some(verdict(
                    request.service,
                    format!(
                        "User: {} is not authorized to perform: {unknown}",
                        session.arn
                    ),
                    format!(
                        "the strict proxy does not know what {} is authorized against: teach strict/iam.rs",
                        request.operation
                    ),
                ));
            }
        };
        let Some(policies) = self.role_policies(request, &session.role).await else {
            return Some(verdict(
                request.service,
                format!(
                    "User: {} is not authorized to perform this operation",
                    session.arn
                ),
                format!("the role {} could not be read from IAM", session.role),
            ));
        };
        for mut authorization in authorizations {
            authorization
                .context
                .set("aws:PrincipalArn", vec![policies.arn.clone()]);
            authorization
                .context
                .set("aws:PrincipalAccount", vec![session.account.clone()]);
            authorization
                .context
                .set("aws:RequestedRegion", vec![region.clone()]);
            let asked = iam::Request {
                action: &authorization.action,
                resource: &authorization.resource,
                context: &authorization.context,
            };
            let decision = iam::evaluate(&policies.identity, policies.boundary.as_ref(), &asked);
            let why = match &decision {
                Decision::Allowed(_) => continue,
                Decision::Denied(Denial::Explicit(_)) => {
                    "with an explicit deny in an identity-based policy".to_string()
                }
                Decision::Denied(Denial::NoAllow) => format!(
                    "because no identity-based policy allows the {} action",
                    authorization.action
                ),
                Decision::Denied(Denial::OutsideBoundary(_)) => format!(
                    "because no permissions boundary allows the {} action",
                    authorization.action
                ),
            };
            return Some(verdict(
                request.service,
                format!(
                    "User: {} is not authorized to perform: {} on resource: {} {why}",
                    session.arn, authorization.action, authorization.resource
                ),
                format!(
                    "role {}: {} on {} denied {decision}",
                    session.role, authorization.action, authorization.resource
                ),
            ));
        }
        None
    }

    /// The role's policies, read from moto once until an IAM write.
    async fn role_policies(&self, request: &Request<'_>, role: &str) -> Option<Arc<RolePolicies>> {
        if let Some(known) = self.memory().iam.policies.get(role) {
            return Some(known.clone());
        }
        let got = self
            .iam_query(request, &[("Action", "GetRole"), ("RoleName", role)])
            .await?;
        let arn = got.find("Arn")?.text.clone();
        let boundary_arn = got
            .find("PermissionsBoundary")
            .and_then(|b| b.text_of("PermissionsBoundaryArn"))
            .map(str::to_string);
        let mut identity = Vec::new();
        let inline = self
            .iam_query(
                request,
                &[("Action", "ListRolePolicies"), ("RoleName", role)],
            )
            .await?;
        for name in inline.texts("member") {
            let document = self
                .iam_query(
                    request,
                    &[
                        ("Action", "GetRolePolicy"),
                        ("RoleName", role),
                        ("PolicyName", name),
                    ],
                )
                .await?;
            identity.push(parse(
                &format!("inline {name}"),
                document.find("PolicyDocument")?,
            ));
        }
        let attached = self
            .iam_query(
                request,
                &[("Action", "ListAttachedRolePolicies"), ("RoleName", role)],
            )
            .await?;
        for policy in attached.texts("PolicyArn") {
            identity.push(self.managed(request, policy).await?);
        }
        let boundary = match boundary_arn {
            Some(arn) => Some(self.managed(request, &arn).await?),
            None => None,
        };
        let loaded = Arc::new(RolePolicies {
            arn,
            identity,
            boundary,
        });
        self.memory()
            .iam
            .policies
            .insert(role.to_string(), loaded.clone());
        Some(loaded)
    }

    /// A managed policy's default version.
    async fn managed(&self, request: &Request<'_>, arn: &str) -> Option<Policy> {
        let policy = self
            .iam_query(request, &[("Action", "GetPolicy"), ("PolicyArn", arn)])
            .await?;
        let version = policy.find("DefaultVersionId")?.text.clone();
        let document = self
            .iam_query(
                request,
                &[
                    ("Action", "GetPolicyVersion"),
                    ("PolicyArn", arn),
                    ("VersionId", &version),
                ],
            )
            .await?;
        Some(parse(arn, document.find("Document")?))
    }

    async fn iam_query(&self, request: &Request<'_>, params: &[(&str, &str)]) -> Option<Element> {
        let mut params = params.to_vec();
        params.push(("Version", "2010-05-08"));
        self.query(request, "iam", &params).await
    }

    /// A role's trust policy, by the role's ARN.
    async fn trust_policy(&self, request: &Request<'_>, role_arn: &str) -> Option<Policy> {
        let name = role_arn.rsplit('/').next()?;
        let got = self
            .iam_query(request, &[("Action", "GetRole"), ("RoleName", name)])
            .await?;
        Some(parse("trust", got.find("AssumeRolePolicyDocument")?))
    }

    /// `AssumeRole` by a service on a task's behalf: the role must trust
    /// the service, for this account's tasks.
    async fn assumed_by_service(&self, request: &Request<'_>) -> Option<Verdict> {
        let service = request.headers.get(ASSUMED_BY)?.to_str().ok()?.to_string();
        let role_arn = request.form("RoleArn")?;
        let account = role_arn.split(':').nth(4).unwrap_or_default();
        let region = credential(request).map_or("us-east-1".to_string(), |(_, r)| r);
        let context = Context::new().with("aws:SourceAccount", account).with(
            "aws:SourceArn",
            format!("arn:aws:ecs:{region}:{account}:task/test/0123456789abcdef"),
        );
        let refused = || {
            Some(verdict(
                Service::Sts,
                format!(
                    "{service} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"
                ),
                format!("the trust policy of {role_arn} does not let {service} assume it"),
            ))
        };
        let Some(trust) = self.trust_policy(request, role_arn).await else {
            return refused();
        };
        let decision = iam::evaluate_trust(
            &trust,
            &Principal::Service(&service),
            "sts:AssumeRole",
            &context,
        );
        if decision.is_allowed() {
            None
        } else {
            refused()
        }
    }

    /// `AssumeRole` by the caller itself: the role's trust policy must name
    /// it (the console stands for a principal of the account).
    async fn assumed_by_caller(&self, request: &Request<'_>) -> Option<Verdict> {
        let role_arn = request.form("RoleArn")?;
        let account = role_arn.split(':').nth(4).unwrap_or_default();
        let caller = credential(request)
            .and_then(|(key, _)| self.memory().iam.by_key.get(&key).cloned())
            .map_or_else(
                || format!("arn:aws:iam::{account}:user/console"),
                |s| s.role_arn("/"),
            );
        let trusted = match self.trust_policy(request, role_arn).await {
            Some(trust) => iam::evaluate_trust(
                &trust,
                &Principal::Aws(&caller),
                "sts:AssumeRole",
                &Context::new(),
            )
            .is_allowed(),
            None => false,
        };
        (!trusted).then(|| {
            verdict(
                Service::Sts,
                format!("User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"),
                format!("the trust policy of {role_arn} does not name {caller}"),
            )
        })
    }

    /// `AssumeRoleWithWebIdentity`: the token must be GitHub's (the test
    /// key), the account must have GitHub's OIDC provider with the token's
    /// audience, and the role's trust policy must take the token's claims.
    async fn web_identity(&self, request: &Request<'_>) -> Option<Verdict> {
        let role_arn = request.form("RoleArn").unwrap_or_default().to_string();
        let token = request.form("WebIdentityToken").unwrap_or_default();
        let claims = match crate::github::verify(token) {
            Ok(claims) => claims,
            Err(crate::github::Refused::Expired) => {
                return Some(Verdict::new(
                    "ExpiredTokenException",
                    "Token expired".into(),
                    "the web identity token has expired".into(),
                ));
            }
            Err(crate::github::Refused::Invalid(why)) => {
                return Some(Verdict::new(
                    "InvalidIdentityToken",
                    format!(
                        "Couldn't retrieve verification key from your identity provider: {why}"
                    ),
                    why,
                ));
            }
        };
        let host = crate::github::ISSUER.trim_start_matches("https://");
        let account = role_arn.split(':').nth(4).unwrap_or_default();
        let provider = format!("arn:aws:iam::{account}:oidc-provider/{host}");
        let claim = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default();
        let known = self
            .iam_query(
                request,
                &[
                    ("Action", "GetOpenIDConnectProvider"),
                    ("OpenIDConnectProviderArn", &provider),
                ],
            )
            .await;
        let audience_known = known
            .as_ref()
            .is_some_and(|p| p.texts("member").contains(&claim("aud")));
        if !audience_known {
            return Some(Verdict::new(
                "InvalidIdentityToken",
                format!(
                    "No OpenIDConnect provider found in your account for {}",
                    crate::github::ISSUER
                ),
                format!(
                    "no OIDC provider {provider} with the audience {}",
                    claim("aud")
                ),
            ));
        }
        let context = Context::new()
            .with(&format!("{host}:aud"), claim("aud"))
            .with(&format!("{host}:sub"), claim("sub"));
        let allowed = match self.trust_policy(request, &role_arn).await {
            Some(trust) => iam::evaluate_trust(
                &trust,
                &Principal::Federated(&provider),
                "sts:AssumeRoleWithWebIdentity",
                &context,
            )
            .is_allowed(),
            None => false,
        };
        (!allowed).then(|| {
            Verdict::new(
                "AccessDenied",
                "Not authorized to perform sts:AssumeRoleWithWebIdentity".into(),
                format!(
                    "the trust policy of {role_arn} does not take the token of {}",
                    claim("sub")
                ),
            )
        })
    }
}

/// A policy document as IAM answers it (URL-encoded in the query
/// protocol), parsed; what cannot be evaluated grants nothing.
fn parse(name: &str, document: &Element) -> Policy {
    Policy::parse_lenient(name, &iam::document_json(&document.text)).0
}

impl Strict {
    /// A task start (RunTask, or a service's tasks on CreateService and
    /// UpdateService) checked as ECS checks it before the container
    /// starts: the task definition's execution role must read each secret
    /// it names, pull its image from ECR and write its log group. What it
    /// may not is recorded; a RunTask's task then stops with ECS's reason.
    pub(super) async fn check_task_start(&self, request: &Request<'_>) {
        if request.service != Service::Ecs
            || !matches!(
                request.operation,
                "RunTask" | "CreateService" | "UpdateService"
            )
        {
            return;
        }
        let Some(definition) = request.json_str("taskDefinition") else {
            return;
        };
        let Some(described) = self
            .ecs(
                request,
                "DescribeTaskDefinition",
                json!({ "taskDefinition": definition }),
            )
            .await
        else {
            return;
        };
        let task = &described["taskDefinition"];
        let Some(role_arn) = task["executionRoleArn"].as_str() else {
            return;
        };
        let role = role_arn.rsplit('/').next().unwrap_or_default();
        let account = role_arn.split(':').nth(4).unwrap_or_default();
        let region = credential(request).map_or("us-east-1".to_string(), |(_, r)| r);
        let Some(policies) = self.role_policies(request, role).await else {
            return;
        };
        let mut needs: Vec<(String, String)> = Vec::new();
        for container in task["containerDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for secret in container["secrets"].as_array().into_iter().flatten() {
                // `arn:…:secret:NAME-AbCdEf:json-key::` names a key of it.
                if let Some(from) = secret["valueFrom"].as_str() {
                    let arn: Vec<&str> = from.split(':').take(7).collect();
                    needs.push(("secretsmanager:GetSecretValue".into(), arn.join(":")));
                }
            }
            if let Some(image) = container["image"].as_str()
                && image.contains(".dkr.ecr.")
                && let Some((_, path)) = image.split_once('/')
            {
                let repository = path.split(['@', ':']).next().unwrap_or(path);
                let arn = format!("arn:aws:ecr:{region}:{account}:repository/{repository}");
                needs.push(("ecr:GetAuthorizationToken".into(), "*".into()));
                needs.push(("ecr:BatchGetImage".into(), arn.clone()));
                needs.push(("ecr:GetDownloadUrlForLayer".into(), arn));
            }
            let options = &container["logConfiguration"]["options"];
            if let Some(group) = options["awslogs-group"].as_str() {
                let stream =
                    format!("arn:aws:logs:{region}:{account}:log-group:{group}:log-stream:task");
                needs.push(("logs:CreateLogStream".into(), stream.clone()));
                needs.push(("logs:PutLogEvents".into(), stream));
            }
        }
        let context = Context::new();
        let denied = needs.into_iter().find(|(action, resource)| {
            !iam::evaluate(
                &policies.identity,
                policies.boundary.as_ref(),
                &iam::Request {
                    action,
                    resource,
                    context: &context,
                },
            )
            .is_allowed()
        });
        let mut memory = self.memory();
        memory.start_denials.retain(|(d, _)| d != definition);
        if let Some((action, resource)) = denied {
            let why = format!(
                "AccessDeniedException: User: arn:aws:sts::{account}:assumed-role/{role}/ecs-task is not authorized to perform: {action} on resource: {resource}"
            );
            memory
                .start_failures
                .push(format!("{} of {definition}: {why}", request.operation));
            memory.start_denials.push((definition.to_string(), why));
        }
    }
}

/// The IAM action of an operation of `service`.
fn action_of(service: Service, operation: &str) -> Option<String> {
    let prefix = match service {
        Service::Ec2 => "ec2",
        Service::Elbv2 => "elasticloadbalancing",
        Service::Rds => "rds",
        Service::Iam => "iam",
        Service::Sts => "sts",
        Service::Sns => "sns",
        Service::Sqs => "sqs",
        Service::SecretsManager => "secretsmanager",
        Service::Ecs => "ecs",
        Service::ApplicationAutoScaling => "application-autoscaling",
        Service::Logs => "logs",
        Service::Ecr => "ecr",
        Service::CloudWatch => "cloudwatch",
        // HTTP APIs are authorized by method.
        Service::ApiGatewayV2 => {
            let method = match operation {
                o if o.starts_with("Get") => "GET",
                o if o.starts_with("Create") || o == "TagResource" => "POST",
                o if o.starts_with("Update") => "PATCH",
                o if o.starts_with("Delete") || o == "UntagResource" => "DELETE",
                _ => return None,
            };
            return Some(format!("apigateway:{method}"));
        }
        Service::Other => return None,
    };
    Some(iam::reference::action_for(prefix, operation))
}

/// The EC2 id parameters that name a resource, and its type in ARNs.
const EC2_IDS: [(&str, &str); 8] = [
    ("VpcId", "vpc"),
    ("SubnetId", "subnet"),
    ("GroupId", "security-group"),
    ("RouteTableId", "route-table"),
    ("InternetGatewayId", "internet-gateway"),
    ("NatGatewayId", "natgateway"),
    ("AllocationId", "elastic-ip"),
    ("NetworkInterfaceId", "network-interface"),
];

impl Strict {
    /// What a request needs authorized, or the operation when the layer
    /// cannot tell.
    async fn authorizations(
        &self,
        request: &Request<'_>,
        session: &Session,
        region: &str,
    ) -> Result<Vec<Authorization>, String> {
        let unknown = || format!("{} ({:?})", request.operation, request.service);
        let action = action_of(request.service, request.operation).ok_or_else(unknown)?;
        let account = session.account.as_str();
        let arn =
            |service: &str, rest: &str| format!("arn:aws:{service}:{region}:{account}:{rest}");
        let mut named: Vec<String> = Vec::new();
        let mut context = Context::new();
        let mut extra: Vec<Authorization> = Vec::new();
        let json = &request.json;
        let json_str = |key: &str| json.get(key).and_then(Value::as_str);
        match request.service {
            Service::Sqs => {
                if let Some(url) = json_str("QueueUrl") {
                    let name = url
                        .trim_end_matches('/')
                        .rsplit('/')
                        .next()
                        .unwrap_or_default();
                    named.push(arn("sqs", name));
                } else if let Some(name) = json_str("QueueName") {
                    named.push(arn("sqs", name));
                }
            }
            Service::Sns => {
                for key in ["TopicArn", "ResourceArn", "SubscriptionArn"] {
                    named.extend(request.form(key).map(str::to_string));
                }
                if request.operation == "CreateTopic" {
                    named.extend(request.form("Name").map(|n| arn("sns", n)));
                }
            }
            Service::SecretsManager => {
                if request.operation == "BatchGetSecretValue" {
                    for id in json["SecretIdList"].as_array().into_iter().flatten() {
                        if let Some(id) = id.as_str() {
                            extra.push(Authorization {
                                action: "secretsmanager:GetSecretValue".into(),
                                resource: self.secret_arn(request, id, region, account).await,
                                context: Context::new(),
                            });
                        }
                    }
                    if json.get("Filters").is_some() {
                        extra.push(Authorization {
                            action: "secretsmanager:ListSecrets".into(),
                            resource: "*".into(),
                            context: Context::new(),
                        });
                    }
                } else if let Some(id) = json_str("SecretId").or(json_str("Name")) {
                    named.push(self.secret_arn(request, id, region, account).await);
                }
            }
            Service::Logs => {
                let group = json_str("logGroupName").or(json_str("logGroupIdentifier"));
                match (group, json_str("logStreamName")) {
                    (Some(g), Some(s)) => {
                        named.push(arn("logs", &format!("log-group:{g}:log-stream:{s}")))
                    }
                    (Some(g), None) => named.push(arn("logs", &format!("log-group:{g}"))),
                    _ => named.extend(json_str("resourceArn").map(str::to_string)),
                }
            }
            Service::Ecr => {
                if let Some(name) = json_str("repositoryName") {
                    named.push(arn("ecr", &format!("repository/{name}")));
                }
                named.extend(json_str("resourceArn").map(str::to_string));
            }
            Service::CloudWatch => {
                named.extend(
                    json_str("AlarmName").map(|n| arn("cloudwatch", &format!("alarm:{n}"))),
                );
                for name in json["AlarmNames"].as_array().into_iter().flatten() {
                    named.extend(
                        name.as_str()
                            .map(|n| arn("cloudwatch", &format!("alarm:{n}"))),
                    );
                }
                named.extend(json_str("ResourceARN").map(str::to_string));
            }
            Service::Iam => {
                self.iam_names(request, session, &mut named, &mut context)
                    .await;
            }
            Service::Sts => {
                named.extend(request.form("RoleArn").map(str::to_string));
            }
            Service::Ec2 => {
                named.extend(EC2_IDS.iter().find_map(|(param, kind)| {
                    request
                        .form(param)
                        .map(|id| arn("ec2", &format!("{kind}/{id}")))
                }));
            }
            Service::Elbv2 => {
                for key in [
                    "LoadBalancerArn",
                    "TargetGroupArn",
                    "ListenerArn",
                    "RuleArn",
                ] {
                    named.extend(request.form(key).map(str::to_string));
                }
                for (key, value) in &request.params {
                    if key.starts_with("ResourceArns.member.") {
                        named.push(value.clone());
                    }
                }
            }
            Service::Rds => {
                named.extend(
                    request
                        .form("DBInstanceIdentifier")
                        .map(|id| arn("rds", &format!("db:{id}"))),
                );
                named.extend(
                    request
                        .form("DBSubnetGroupName")
                        .map(|n| arn("rds", &format!("subgrp:{n}"))),
                );
                named.extend(request.form("ResourceName").map(str::to_string));
            }
            Service::Ecs => {
                let cluster = json_str("cluster")
                    .map(|c| c.rsplit('/').next().unwrap_or(c))
                    .unwrap_or("default");
                match request.operation {
                    "CreateCluster" | "DeleteCluster" | "UpdateClusterSettings" => {
                        let name = json_str("clusterName").unwrap_or(cluster);
                        named.push(arn("ecs", &format!("cluster/{name}")));
                    }
                    "CreateService" => named.extend(
                        json_str("serviceName")
                            .map(|s| arn("ecs", &format!("service/{cluster}/{s}"))),
                    ),
                    "UpdateService" | "DeleteService" => {
                        named.extend(json_str("service").map(|s| {
                            arn(
                                "ecs",
                                &format!("service/{cluster}/{}", s.rsplit('/').next().unwrap_or(s)),
                            )
                        }))
                    }
                    "RunTask" => named.extend(json_str("taskDefinition").map(|t| {
                        if t.starts_with("arn:") {
                            t.to_string()
                        } else {
                            arn("ecs", &format!("task-definition/{t}"))
                        }
                    })),
                    _ => named.extend(json_str("resourceArn").map(str::to_string)),
                }
                // Roles named in a task definition (or a run's overrides)
                // are passed to ECS's tasks.
                let overrides = &json["overrides"];
                for role in [
                    &json["taskRoleArn"],
                    &json["executionRoleArn"],
                    &overrides["taskRoleArn"],
                    &overrides["executionRoleArn"],
                ] {
                    if let Some(role) = role.as_str() {
                        extra.push(pass_role(role, "ecs-tasks.amazonaws.com"));
                    }
                }
            }
            Service::ApplicationAutoScaling => {
                if let Some(role) = json_str("RoleARN") {
                    extra.push(pass_role(role, "application-autoscaling.amazonaws.com"));
                }
                // Target tracking makes its alarms with the caller's rights.
                if request.operation == "PutScalingPolicy"
                    && !json["TargetTrackingScalingPolicyConfiguration"].is_null()
                    && let Some(resource) = json_str("ResourceId")
                {
                    let alarm = arn(
                        "cloudwatch",
                        &format!(
                            "alarm:TargetTracking-{resource}-AlarmHigh-00000000-0000-0000-0000-000000000000"
                        ),
                    );
                    for action in ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms"] {
                        extra.push(Authorization {
                            action: action.into(),
                            resource: alarm.clone(),
                            context: Context::new(),
                        });
                    }
                }
            }
            Service::ApiGatewayV2 => {
                named.push(format!(
                    "arn:aws:apigateway:{region}::{}",
                    request.path.trim_start_matches("/v2")
                ));
            }
            Service::Other => return Err(unknown()),
        }
        if iam::reference::aws().action(&action).is_none() {
            return Err(unknown());
        }
        let reference = iam::reference::aws();
        let takes = |key: &str| {
            reference
                .action(&action)
                .is_some_and(|a| a.takes_condition(key))
        };
        if takes("aws:RequestTag/k") {
            tag_context(&mut context, request_tags(request).into_iter());
        }
        if named.is_empty() {
            named.push("*".into());
        }
        let mut out = Vec::new();
        for name in named {
            let resource = reference.authorized_against(&action, &name).to_string();
            let mut context = context.clone();
            // What the resource is tagged with, where the action reads it.
            if resource != "*" && takes("aws:ResourceTag/k") {
                for (key, value) in self.resource_tags(request, &resource).await {
                    context.set(&format!("aws:ResourceTag/{key}"), vec![value]);
                }
            }
            out.push(Authorization {
                action: action.clone(),
                resource,
                context,
            });
        }
        out.extend(extra);
        Ok(out)
    }

    /// The tags of a resource as moto holds them; none where the layer
    /// cannot read them.
    async fn resource_tags(&self, request: &Request<'_>, arn: &str) -> Vec<(String, String)> {
        let pairs = |root: Option<Element>, key: &str, value: &str| -> Vec<(String, String)> {
            let Some(root) = root else { return vec![] };
            root.texts(key)
                .into_iter()
                .zip(root.texts(value))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let service = arn.split(':').nth(2).unwrap_or_default();
        match service {
            "ec2" => {
                let id = arn.rsplit('/').next().unwrap_or_default();
                let params = [
                    ("Action", "DescribeTags"),
                    ("Version", "2016-11-15"),
                    ("Filter.1.Name", "resource-id"),
                    ("Filter.1.Value.1", id),
                ];
                pairs(self.query(request, "ec2", &params).await, "key", "value")
            }
            "elasticloadbalancing" => {
                let params = [
                    ("Action", "DescribeTags"),
                    ("Version", "2015-12-01"),
                    ("ResourceArns.member.1", arn),
                ];
                let root = self.query(request, "elasticloadbalancing", &params).await;
                pairs(root, "Key", "Value")
            }
            "rds" => {
                let params = [
                    ("Action", "ListTagsForResource"),
                    ("Version", "2014-10-31"),
                    ("ResourceName", arn),
                ];
                pairs(self.query(request, "rds", &params).await, "Key", "Value")
            }
            "ecs" => {
                let answer = self
                    .ecs(
                        request,
                        "ListTagsForResource",
                        json!({ "resourceArn": arn }),
                    )
                    .await
                    .unwrap_or_default();
                json_tags(&answer["tags"])
            }
            "apigateway" => {
                let answer = self
                    .rest_get(request, &format!("/v2/tags/{}", encode_path(arn)))
                    .await
                    .unwrap_or_default();
                json_tags(&answer["tags"])
            }
            _ => vec![],
        }
    }

    /// A secret's ARN by its name or ARN; a secret that does not exist is
    /// named as AWS would name it once made (six characters after a `-`).
    async fn secret_arn(
        &self,
        request: &Request<'_>,
        id: &str,
        region: &str,
        account: &str,
    ) -> String {
        if id.starts_with("arn:") {
            return id.to_string();
        }
        let described = self
            .send(
                request,
                "secretsmanager",
                hyper::Method::POST,
                "/",
                json!({ "SecretId": id }).to_string(),
                &[
                    ("content-type", "application/x-amz-json-1.1"),
                    ("x-amz-target", "secretsmanager.DescribeSecret"),
                ],
            )
            .await
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        described
            .and_then(|d| d["ARN"].as_str().map(str::to_string))
            .unwrap_or_else(|| {
                format!("arn:aws:secretsmanager:{region}:{account}:secret:{id}-AbCdEf")
            })
    }

    /// The resources an IAM request names, and the context IAM gives it:
    /// the boundary a role has or is given, the policy attached.
    async fn iam_names(
        &self,
        request: &Request<'_>,
        session: &Session,
        named: &mut Vec<String>,
        context: &mut Context,
    ) {
        let account = &session.account;
        if let Some(name) = request.form("RoleName") {
            if request.operation == "CreateRole" {
                let path = request.form("Path").unwrap_or("/");
                named.push(format!("arn:aws:iam::{account}:role{path}{name}"));
                if let Some(boundary) = request.form("PermissionsBoundary") {
                    context.set("iam:PermissionsBoundary", vec![boundary.to_string()]);
                }
            } else {
                let got = self
                    .iam_query(request, &[("Action", "GetRole"), ("RoleName", name)])
                    .await;
                let role_arn = got
                    .as_ref()
                    .and_then(|g| g.find("Arn"))
                    .map(|a| a.text.clone())
                    .unwrap_or_else(|| {
                        Session {
                            role: name.to_string(),
                            ..session.clone()
                        }
                        .role_arn("/")
                    });
                named.push(role_arn);
                let current = got
                    .as_ref()
                    .and_then(|g| g.find("PermissionsBoundary"))
                    .and_then(|b| b.text_of("PermissionsBoundaryArn"))
                    .map(str::to_string);
                let boundary = match request.operation {
                    "PutRolePermissionsBoundary" => {
                        request.form("PermissionsBoundary").map(str::to_string)
                    }
                    _ => current,
                };
                if let Some(boundary) = boundary {
                    context.set("iam:PermissionsBoundary", vec![boundary]);
                }
            }
        }
        for key in ["PolicyArn", "OpenIDConnectProviderArn"] {
            if let Some(arn) = request.form(key) {
                if request.operation.ends_with("RolePolicy") {
                    context.set("iam:PolicyARN", vec![arn.to_string()]);
                } else {
                    named.push(arn.to_string());
                }
            }
        }
        if request.operation == "CreateServiceLinkedRole"
            && let Some(service) = request.form("AWSServiceName")
        {
            context.set("iam:AWSServiceName", vec![service.to_string()]);
            named.push(format!(
                "arn:aws:iam::{account}:role/aws-service-role/{service}/AWSServiceRole"
            ));
        }
    }
}

/// The tags a request puts on what it makes or tags: the query protocol's
/// `…Tag(s).N.Key`/`.Value` (EC2's `TagSpecification.N.Tag.M`), or a JSON
/// body's `tags`/`Tags`, as a list of `{key, value}` or a map.
fn request_tags(request: &Request<'_>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = request
        .params
        .iter()
        .filter(|(k, _)| k.contains("Tag") && k.ends_with(".Key"))
        .filter_map(|(k, v)| {
            let value_key = format!("{}.Value", k.strip_suffix(".Key")?);
            Some((
                v.clone(),
                request.form(&value_key).unwrap_or_default().to_string(),
            ))
        })
        .collect();
    for key in ["tags", "Tags"] {
        out.extend(json_tags(&request.json[key]));
    }
    out
}

/// Tags in a JSON body: a list of `{key, value}` (any case) or a map.
fn json_tags(tags: &Value) -> Vec<(String, String)> {
    match tags {
        Value::Array(items) => items
            .iter()
            .filter_map(|t| {
                let key = t.get("key").or(t.get("Key"))?.as_str()?;
                let value = t.get("value").or(t.get("Value"))?.as_str()?;
                Some((key.to_string(), value.to_string()))
            })
            .collect(),
        Value::Object(map) => map
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect(),
        _ => vec![],
    }
}

/// An ARN as one segment of a URL path.
fn encode_path(text: &str) -> String {
    text.replace('%', "%25")
        .replace('/', "%2F")
        .replace(':', "%3A")
}

/// `iam:PassRole` of `role` to `service`.
fn pass_role(role: &str, service: &str) -> Authorization {
    Authorization {
        action: "iam:PassRole".into(),
        resource: role.to_string(),
        context: Context::new().with("iam:PassedToService", service),
    }
}

/// The request's tags as `aws:RequestTag/KEY` and `aws:TagKeys`.
fn tag_context(context: &mut Context, tags: impl Iterator<Item = (String, String)>) {
    let mut keys = Vec::new();
    for (key, value) in tags {
        context.set(&format!("aws:RequestTag/{key}"), vec![value]);
        keys.push(key);
    }
    if !keys.is_empty() {
        context.set("aws:TagKeys", keys);
    }
}
