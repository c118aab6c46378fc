//! The task definition of a service: what ECS runs, derived from the
//! blueprint, the stack outputs and the image digest. Settings reach the
//! container as environment variables; secrets only as `valueFrom`
//! references to keys of the service's own secret, never as plain text.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::{Map, Value};

use blueprint::Blueprint;
use engine::plan::outputs::{self as out, Own};

/// What deploy knows of the stack: its outputs, and the names (never the
/// values) of what each service's secret holds.
#[derive(Debug, Clone, Default)]
pub struct StackFacts {
    /// The stack secret's outputs; its master password is never kept.
    pub secret: Map<String, Value>,
    pub secret_arn: String,
    /// Service → the names of the values its secret holds.
    pub service_secrets: BTreeMap<String, BTreeSet<String>>,
    /// Services whose database role the set-up task has made on the
    /// stack's instance.
    pub database_ready: BTreeSet<String>,
    /// The instance's identity (its `DbiResourceId`), once it exists.
    pub database_identity: Option<String>,
}

/// The parts of a task definition techctl sets, comparable between a
/// wanted revision and the latest registered one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskSpec {
    pub family: String,
    pub cpu: String,
    pub memory: String,
    pub execution_role_arn: String,
    pub task_role_arn: String,
    pub container: String,
    /// By digest: `repository@sha256:…`.
    pub image: String,
    /// The image's processor architecture (`runtimePlatform`), as ECS
    /// names it: `X86_64` or `ARM64`.
    pub cpu_architecture: String,
    pub port: u16,
    pub environment: BTreeMap<String, String>,
    /// Variable → `valueFrom` (`<secret arn>:<json key>::`).
    pub secrets: BTreeMap<String, String>,
    pub log_group: String,
    pub log_region: String,
    pub health_check: Vec<String>,
}

pub use blueprint::operator::{ADMIN_PASSWORD, MERCADO_PAGO_KEYS, operator_values};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

impl StackFacts {
    pub(crate) fn text(&self, key: &str) -> Result<String, SpecError> {
        match self.secret.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(SpecError(format!(
                "the stack secret has no output {key:?}: run `techctl up` first so the stack is complete"
            ))),
        }
    }

    /// The `valueFrom` of `key` in `service`'s own secret.
    fn value_from(&self, service: &str, key: &str) -> Result<String, SpecError> {
        Ok(format!(
            "{}:{key}::",
            self.text(&Own::SecretArn.of(service))?
        ))
    }

    /// An error naming each of `wanted` (variable, key, what) that
    /// `service`'s secret lacks, with the command that sets it.
    fn require(
        &self,
        service: &str,
        wanted: &[(&str, &'static str, &'static str)],
    ) -> Result<(), SpecError> {
        // Keyed as the outputs spell services (`my_api`).
        let held = self.service_secrets.get(&service.replace('-', "_"));
        let missing: Vec<(String, &str, &str)> = wanted
            .iter()
            .filter(|(_, key, _)| !held.is_some_and(|h| h.contains(*key)))
            .map(|(_, key, what)| (service.to_string(), *key, *what))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(SpecError(missing_values_message(&missing)))
    }
}

/// What operators must set before `services` can be deployed and have not:
/// (service, name, what it holds). Asked before anything is built.
pub fn missing_operator_values(
    blueprint: &Blueprint,
    facts: &StackFacts,
    services: &[String],
) -> Vec<(String, &'static str, &'static str)> {
    let mut missing = Vec::new();
    for service in services {
        let held = facts.service_secrets.get(&service.replace('-', "_"));
        for (_, name, what) in operator_values(service) {
            let needed = *name != ADMIN_PASSWORD.1 || blueprint.admin_email().is_some();
            if needed && !held.is_some_and(|h| h.contains(*name)) {
                missing.push((service.clone(), *name, *what));
            }
        }
    }
    missing
}

/// What to tell an operator about `missing` values (service, name, what):
/// each, and the command that sets it.
pub fn missing_values_message(missing: &[(String, &str, &str)]) -> String {
    format!(
        "the services need values only operators have, which their secrets lack:\n{}\n  set each (the value is read from standard input, never shown), then deploy again:\n{}",
        missing
            .iter()
            .map(|(service, name, what)| format!("    {service}: {name} ({what})"))
            .collect::<Vec<_>>()
            .join("\n"),
        missing
            .iter()
            .map(|(service, name, _)| format!("    techctl secrets set {service} {name}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// The task definition `service` should run with `image`.
pub fn task_spec(
    blueprint: &Blueprint,
    service: &str,
    facts: &StackFacts,
    image: &str,
    architecture: image::Architecture,
) -> Result<TaskSpec, SpecError> {
    let (_, definition) = blueprint
        .services()
        .find(|(name, _)| *name == service)
        .ok_or_else(|| SpecError(format!("the blueprint has no service {service:?}")))?;
    let key = service.replace('-', "_");
    let port = *definition.port.get_ref();
    let messaging = &blueprint.messaging;

    let mut environment = BTreeMap::from([
        ("PORT".to_string(), port.to_string()),
        ("LOG_FORMAT".to_string(), "json".to_string()),
        // The user service signs tokens with the ring; the others only
        // verify them with the public set.
        (
            "KEYS_SECRET_ID".to_string(),
            facts.text(if service == "user" {
                out::SIGNING_KEYS_SECRET_ARN
            } else {
                out::PUBLIC_KEYS_SECRET_ARN
            })?,
        ),
        ("DB_HOST".to_string(), facts.text(out::DB_HOST)?),
        ("DB_PORT".to_string(), facts.text(out::DB_PORT)?),
        // Its own role, which owns its database and nothing else.
        (
            "DB_USER".to_string(),
            facts.text(&Own::Database.of(service))?,
        ),
        (
            "DB_NAME".to_string(),
            facts.text(&Own::Database.of(service))?,
        ),
        // The task's share of the instance's connections, so that every
        // task at the rollout peak fits in what the instance class takes.
        (
            "DB_POOL_SIZE".to_string(),
            blueprint.db_pool_size().to_string(),
        ),
    ]);
    environment.extend(blueprint.token_environment(service));
    if !definition.publishes.is_empty() || !definition.consumes.is_empty() {
        environment.insert("EVENT_TRANSPORT".into(), "sns-sqs".into());
        // On SQS every retry is a receive: the consumer's budget is the
        // queue's redrive count, which leaves room for them all.
        environment.insert(
            "EVENTS_MAX_RECEIVE".into(),
            messaging.redrive_max_receive_count().to_string(),
        );
        environment.insert(
            "EVENTS_RETRY_FOR_SECONDS".into(),
            messaging.retry_for_seconds().to_string(),
        );
        environment.insert(
            "EVENTS_VISIBILITY_SECONDS".into(),
            messaging.visibility_timeout_seconds.get_ref().to_string(),
        );
    }
    if !definition.publishes.is_empty() {
        environment.insert(
            "EVENTS_TOPIC_ARN".into(),
            facts.text(&Own::TopicArn.of(service))?,
        );
    }
    if !definition.consumes.is_empty() {
        environment.insert(
            "EVENTS_QUEUE_URL".into(),
            facts.text(&Own::QueueUrl.of(service))?,
        );
        environment.insert(
            "EVENTS_DLQ_URL".into(),
            facts.text(&Own::DeadLetterQueueUrl.of(service))?,
        );
    }
    let mut secrets = BTreeMap::from([(
        "DB_PASSWORD".to_string(),
        facts.value_from(service, out::DB_PASSWORD)?,
    )]);
    if service != "user" && blueprint.services().any(|(name, _)| name == "user") {
        // The user service's revocation list, through the internal ALB.
        environment.insert(
            "USER_SERVICE_URL".into(),
            format!("http://{}", facts.text(out::ALB_DNS_NAME)?),
        );
    }
    match service {
        "user" => {
            environment.insert("PUBLIC_URL".into(), facts.text(out::API_ENDPOINT)?);
            // The load balancer and the VPC link sit in the VPC: only they
            // may say, in x-forwarded-for, who the client is.
            environment.insert(
                "TRUSTED_PROXIES".into(),
                blueprint.network.vpc_cidr.get_ref().clone(),
            );
            if let Some(email) = blueprint.admin_email() {
                facts.require(service, std::slice::from_ref(&ADMIN_PASSWORD))?;
                environment.insert("ADMIN_EMAIL".into(), email.to_string());
                secrets.insert(
                    ADMIN_PASSWORD.0.into(),
                    facts.value_from(service, ADMIN_PASSWORD.1)?,
                );
            }
        }
        "order" => {
            // The internal ALB routes /products to the product service.
            environment.insert(
                "PRODUCT_SERVICE_URL".into(),
                format!("http://{}", facts.text(out::ALB_DNS_NAME)?),
            );
            environment.insert(
                "POINTS_OF_SALE".into(),
                blueprint.kiosks.points_of_sale().join(","),
            );
        }
        "payment" => {
            facts.require(service, &MERCADO_PAGO_KEYS)?;
            for (variable, key, _) in MERCADO_PAGO_KEYS {
                secrets.insert(variable.into(), facts.value_from(service, key)?);
            }
        }
        _ => {}
    }
    let binary = format!("{}/{service}-service", image::BIN_DIR);
    Ok(TaskSpec {
        family: format!("{}-{service}", blueprint.stack_name()),
        cpu: definition.cpu.get_ref().to_string(),
        memory: definition.memory.get_ref().to_string(),
        execution_role_arn: facts.text("task_execution_role_arn")?,
        task_role_arn: facts.text(&Own::TaskRoleArn.of(service))?,
        container: service.to_string(),
        image: image.to_string(),
        cpu_architecture: architecture.ecs().to_string(),
        port,
        environment,
        secrets,
        log_group: facts.text(&format!("{key}_log_group"))?,
        log_region: blueprint.region().to_string(),
        health_check: vec!["CMD".into(), binary, "health".into()],
    })
}

/// The lines that differ between two specs, `-` old and `+` new, for
/// `deploy --dry-run`.
pub fn diff(old: Option<&TaskSpec>, new: &TaskSpec) -> Vec<String> {
    let flat = |spec: &TaskSpec| -> BTreeMap<String, String> {
        let mut lines = BTreeMap::new();
        if let Ok(Value::Object(map)) = serde_json::to_value(spec) {
            for (field, value) in map {
                match value {
                    Value::Object(inner) => {
                        for (k, v) in inner {
                            lines.insert(format!("{field}.{k}"), plain(&v));
                        }
                    }
                    other => {
                        lines.insert(field, plain(&other));
                    }
                }
            }
        }
        lines
    };
    let new_lines = flat(new);
    let old_lines = old.map(flat).unwrap_or_default();
    let mut out = Vec::new();
    for (field, value) in &new_lines {
        match old_lines.get(field) {
            Some(before) if before == value => {}
            Some(before) => {
                out.push(format!("- {field} = {before}"));
                out.push(format!("+ {field} = {value}"));
            }
            None => out.push(format!("+ {field} = {value}")),
        }
    }
    for (field, value) in &old_lines {
        if !new_lines.contains_key(field) {
            out.push(format!("- {field} = {value}"));
        }
    }
    out
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Architecture;
    use serde_json::json;

    const ARN: &str =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:techctl/techchallenge-AbCdEf";

    fn service_secret(service: &str) -> String {
        format!(
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:techctl/techchallenge/service/{service}-AbCdEf"
        )
    }

    fn blueprint() -> Blueprint {
        blueprint::parse(
            std::path::Path::new("techchallenge.toml"),
            include_str!("../../../../blueprints/techchallenge.toml"),
        )
        .unwrap()
    }

    /// The stack's facts, the payment secret holding `payment_holds` and
    /// the user's its first admin's password.
    fn facts(payment_holds: &[&str]) -> StackFacts {
        let mut secret = json!({
            "db_host": "techchallenge.abc.us-east-1.rds.amazonaws.com",
            "db_port": "5432",
            "db_user": "techctl",
            "signing_keys_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:techctl/techchallenge/signing-keys-AbCdEf",
            "public_keys_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:techctl/techchallenge/public-keys-AbCdEf",
            "api_endpoint": "https://abc.execute-api.us-east-1.amazonaws.com",
            "alb_dns_name": "internal-techchallenge-1.us-east-1.elb.amazonaws.com",
            "task_execution_role_arn": "arn:aws:iam::123456789012:role/techctl/techchallenge/execution",
        });
        for service in ["user", "product", "order", "payment", "production"] {
            secret[format!("{service}_database")] = json!(format!("{service}_service"));
            secret[format!("{service}_secret_arn")] = json!(service_secret(service));
            secret[format!("{service}_task_role_arn")] =
                json!(format!("arn:aws:iam::123456789012:role/{service}"));
            secret[format!("{service}_log_group")] =
                json!(format!("/techctl/techchallenge/{service}"));
            secret[format!("{service}_topic_arn")] =
                json!(format!("arn:aws:sns:us-east-1:123456789012:{service}"));
            secret[format!("{service}_queue_url")] = json!(format!("https://sqs/{service}"));
            secret[format!("{service}_dead_letter_queue_url")] =
                json!(format!("https://sqs/{service}-dlq"));
        }
        let mut service_secrets = BTreeMap::new();
        service_secrets.insert(
            "payment".to_string(),
            payment_holds.iter().map(|k| k.to_string()).collect(),
        );
        service_secrets.insert(
            "user".to_string(),
            BTreeSet::from(["admin_password".to_string()]),
        );
        StackFacts {
            secret: secret.as_object().unwrap().clone(),
            secret_arn: ARN.into(),
            service_secrets,
            ..StackFacts::default()
        }
    }

    #[test]
    fn a_task_gets_settings_in_its_environment_and_secrets_by_reference() {
        let spec = task_spec(
            &blueprint(),
            "order",
            &facts(&[]),
            "repo/order@sha256:ab",
            Architecture::Amd64,
        )
        .unwrap();
        assert_eq!(spec.family, "techchallenge-order");
        assert_eq!((spec.cpu.as_str(), spec.memory.as_str()), ("256", "512"));
        assert_eq!(spec.image, "repo/order@sha256:ab");
        assert_eq!(spec.environment["PORT"], "4003");
        assert_eq!(spec.environment["DB_NAME"], "order_service");
        assert_eq!(spec.environment["EVENT_TRANSPORT"], "sns-sqs");
        assert_eq!(spec.environment["EVENTS_QUEUE_URL"], "https://sqs/order");
        assert_eq!(
            spec.environment["PRODUCT_SERVICE_URL"],
            "http://internal-techchallenge-1.us-east-1.elb.amazonaws.com"
        );
        assert_eq!(
            spec.secrets["DB_PASSWORD"],
            format!("{}:db_password::", service_secret("order")),
            "its own role's password, from its own secret"
        );
        assert_eq!(spec.environment["DB_USER"], "order_service");
        assert!(
            spec.environment["KEYS_SECRET_ID"].contains("public-keys"),
            "a service that only verifies reads the public set"
        );
        assert!(
            !serde_json::to_string(&spec.environment)
                .unwrap()
                .contains("\"secret\""),
            "no secret value in the environment"
        );
        assert_eq!(
            spec.health_check,
            ["CMD", "/usr/local/bin/order-service", "health"]
        );

        let product = task_spec(
            &blueprint(),
            "product",
            &facts(&[]),
            "x",
            Architecture::Amd64,
        )
        .unwrap();
        assert!(!product.environment.contains_key("EVENT_TRANSPORT"));
        let user = task_spec(&blueprint(), "user", &facts(&[]), "x", Architecture::Amd64).unwrap();
        assert!(user.environment["KEYS_SECRET_ID"].contains("signing-keys"));
        assert!(!user.environment.contains_key("USER_SERVICE_URL"));
        assert_eq!(
            product.environment["USER_SERVICE_URL"],
            "http://internal-techchallenge-1.us-east-1.elb.amazonaws.com"
        );
        // The blueprint names its first admin: the password by reference.
        assert_eq!(
            user.environment["ADMIN_EMAIL"],
            "gerente@lanchonete.example"
        );
        assert_eq!(
            user.secrets["ADMIN_PASSWORD"],
            format!("{}:admin_password::", service_secret("user"))
        );
        let mut lacking = facts(&[]);
        lacking.service_secrets.remove("user");
        let refused = task_spec(&blueprint(), "user", &lacking, "x", Architecture::Amd64)
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("techctl secrets set user admin_password"),
            "{refused}"
        );
        for spec in [&spec, &product, &user] {
            let all = serde_json::to_string(spec).unwrap();
            assert!(
                !all.contains(ARN),
                "no task refers to the stack secret: {all}"
            );
        }
    }

    #[test]
    fn the_payment_service_needs_mercado_pago_in_its_secret() {
        let message = task_spec(
            &blueprint(),
            "payment",
            &facts(&[]),
            "x",
            Architecture::Amd64,
        )
        .unwrap_err()
        .to_string();
        assert!(message.contains("mercadopago_access_token"), "{message}");
        assert!(
            message.contains("techctl secrets set payment mercadopago_pos_id"),
            "{message}"
        );
        let partly = task_spec(
            &blueprint(),
            "payment",
            &facts(&["mercadopago_access_token", "mercadopago_pos_id"]),
            "x",
            Architecture::Amd64,
        )
        .unwrap_err()
        .to_string();
        assert!(
            !partly.contains("set payment mercadopago_pos_id"),
            "{partly}"
        );
        assert!(
            partly.contains("set payment mercadopago_collector_id"),
            "{partly}"
        );
        let ready = facts(&[
            "mercadopago_access_token",
            "mercadopago_webhook_secret",
            "mercadopago_collector_id",
            "mercadopago_pos_id",
        ]);
        let spec = task_spec(&blueprint(), "payment", &ready, "x", Architecture::Amd64).unwrap();
        assert_eq!(
            spec.secrets["MERCADOPAGO_ACCESS_TOKEN"],
            format!("{}:mercadopago_access_token::", service_secret("payment"))
        );
        // Mercado Pago's webhook URL is the application's, set in its panel.
        assert!(!spec.environment.contains_key("PAYMENT_NOTIFICATION_URL"));
        let order = task_spec(&blueprint(), "order", &ready, "x", Architecture::Amd64).unwrap();
        assert_eq!(
            order.environment["POINTS_OF_SALE"],
            "TOTEM01,TOTEM02,TOTEM03,TOTEM04"
        );
    }

    #[test]
    fn the_diff_names_what_a_new_revision_changes() {
        let old = task_spec(
            &blueprint(),
            "user",
            &facts(&[]),
            "repo/user@sha256:aa",
            Architecture::Amd64,
        )
        .unwrap();
        let new = task_spec(
            &blueprint(),
            "user",
            &facts(&[]),
            "repo/user@sha256:bb",
            Architecture::Amd64,
        )
        .unwrap();
        assert_eq!(
            diff(Some(&old), &new),
            [
                "- image = repo/user@sha256:aa",
                "+ image = repo/user@sha256:bb"
            ]
        );
        assert!(diff(Some(&new), &new).is_empty());
        assert!(diff(None, &new).iter().all(|l| l.starts_with("+ ")));
    }

    #[test]
    fn every_task_gets_its_share_of_the_database_connections() {
        // db.t4g.micro takes 82 connections; 68 are left after RDS's and
        // the operators', over 32 tasks at the rollout peak: 2 each.
        let shipped = blueprint();
        for service in ["user", "order", "production"] {
            let spec = task_spec(&shipped, service, &facts(&[]), "x", Architecture::Amd64).unwrap();
            assert_eq!(spec.environment["DB_POOL_SIZE"], "2", "{service}");
        }
        // A larger class gives larger pools: db.t4g.small, 192 connections,
        // 178 over 32 tasks; db.m6g.large, 855, capped at service-kit's 10.
        for (class, pool) in [("db.t4g.small", "5"), ("db.m6g.large", "10")] {
            let text = include_str!("../../../../blueprints/techchallenge.toml").replacen(
                "instance_class = \"db.t4g.micro\"",
                &format!("instance_class = \"{class}\""),
                1,
            );
            let bp = blueprint::parse(std::path::Path::new("bp.toml"), &text).unwrap();
            let spec = task_spec(&bp, "order", &facts(&[]), "x", Architecture::Amd64).unwrap();
            assert_eq!(spec.environment["DB_POOL_SIZE"], pool, "{class}");
        }
    }
}
