//! The task definition of a service: what ECS runs, derived from the
//! blueprint, the stack outputs and the image digest. Settings reach the
//! container as environment variables; secrets only as `valueFrom`
//! references to keys of the stack secret, never as plain text.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use blueprint::Blueprint;
use engine::plan::outputs::{self as out, Own};

/// What deploy knows of the stack: its outputs and the secret's ARN.
#[derive(Debug, Clone)]
pub struct StackFacts {
    /// The whole stack secret document (outputs and credentials).
    pub secret: Map<String, Value>,
    pub secret_arn: String,
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

/// The stack secret keys the payment service reads, with what they hold.
pub const MERCADO_PAGO_KEYS: [(&str, &str, &str); 4] = [
    (
        "MERCADOPAGO_ACCESS_TOKEN",
        "mercadopago_access_token",
        "the account's access token",
    ),
    (
        "MERCADOPAGO_WEBHOOK_SECRET",
        "mercadopago_webhook_secret",
        "the webhook signing secret",
    ),
    (
        "MERCADOPAGO_COLLECTOR_ID",
        "mercadopago_collector_id",
        "the collector (user) id",
    ),
    (
        "MERCADOPAGO_POS_ID",
        "mercadopago_pos_id",
        "the point of sale's external id",
    ),
];

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SpecError(pub String);

impl StackFacts {
    fn text(&self, key: &str) -> Result<String, SpecError> {
        match self.secret.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(SpecError(format!(
                "the stack secret has no output {key:?}: run `techctl up` first so the stack is complete"
            ))),
        }
    }

    fn value_from(&self, key: &str) -> String {
        format!("{}:{key}::", self.secret_arn)
    }
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
        ("STACK_SECRET_ID".to_string(), facts.secret_arn.clone()),
        ("DB_HOST".to_string(), facts.text(out::DB_HOST)?),
        ("DB_PORT".to_string(), facts.text(out::DB_PORT)?),
        ("DB_USER".to_string(), facts.text("db_user")?),
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
        environment.insert(
            "EVENTS_MAX_RECEIVE".into(),
            messaging.max_receive_count.get_ref().to_string(),
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
        facts.value_from(out::DB_PASSWORD),
    )]);
    match service {
        "user" => {
            environment.insert("PUBLIC_URL".into(), facts.text(out::API_ENDPOINT)?);
        }
        "order" => {
            // The internal ALB routes /products to the product service.
            environment.insert(
                "PRODUCT_SERVICE_URL".into(),
                format!("http://{}", facts.text(out::ALB_DNS_NAME)?),
            );
        }
        "payment" => {
            environment.insert(
                "PAYMENT_NOTIFICATION_URL".into(),
                format!("{}/webhooks/mercadopago", facts.text(out::API_ENDPOINT)?),
            );
            let missing: Vec<String> = MERCADO_PAGO_KEYS
                .iter()
                .filter(|(_, key, _)| !facts.secret.contains_key(*key))
                .map(|(_, key, what)| format!("{key} ({what})"))
                .collect();
            if !missing.is_empty() {
                return Err(SpecError(format!(
                    "the payment service needs Mercado Pago's credentials in the stack secret, which lacks: {}\n  add them to the secret {} (a JSON object), then deploy again",
                    missing.join(", "),
                    facts.secret_arn
                )));
            }
            for (variable, key, _) in MERCADO_PAGO_KEYS {
                secrets.insert(variable.into(), facts.value_from(key));
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

    fn blueprint() -> Blueprint {
        blueprint::parse(
            std::path::Path::new("techchallenge.toml"),
            include_str!("../../../../blueprints/techchallenge.toml"),
        )
        .unwrap()
    }

    fn facts(extra: &[(&str, &str)]) -> StackFacts {
        let mut secret = json!({
            "db_host": "techchallenge.abc.us-east-1.rds.amazonaws.com",
            "db_port": "5432",
            "db_user": "techctl",
            "db_password": "secret",
            "api_endpoint": "https://abc.execute-api.us-east-1.amazonaws.com",
            "alb_dns_name": "internal-techchallenge-1.us-east-1.elb.amazonaws.com",
            "task_execution_role_arn": "arn:aws:iam::123456789012:role/techctl/techchallenge/execution",
        });
        for service in ["user", "product", "order", "payment", "production"] {
            secret[format!("{service}_database")] = json!(format!("{service}_service"));
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
        for (k, v) in extra {
            secret[*k] = json!(v);
        }
        StackFacts {
            secret: secret.as_object().unwrap().clone(),
            secret_arn: ARN.into(),
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
        assert_eq!(spec.secrets["DB_PASSWORD"], format!("{ARN}:db_password::"));
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
    }

    #[test]
    fn the_payment_service_needs_mercado_pago_in_the_stack_secret() {
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
        assert!(message.contains(ARN), "{message}");
        let ready = facts(&[
            ("mercadopago_access_token", "APP_USR-1"),
            ("mercadopago_webhook_secret", "s"),
            ("mercadopago_collector_id", "1"),
            ("mercadopago_pos_id", "CAIXA01"),
        ]);
        let spec = task_spec(&blueprint(), "payment", &ready, "x", Architecture::Amd64).unwrap();
        assert_eq!(
            spec.secrets["MERCADOPAGO_ACCESS_TOKEN"],
            format!("{ARN}:mercadopago_access_token::")
        );
        assert_eq!(
            spec.environment["PAYMENT_NOTIFICATION_URL"],
            "https://abc.execute-api.us-east-1.amazonaws.com/webhooks/mercadopago"
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
