//! The stack outputs: the names `up` writes them under in the stack secret
//! ([`expand`](super::expand) builds them), and one reader for everyone who
//! reads them back (`deploy`, `verify`, `status`, the services' task
//! definitions). A name is spelled here and nowhere else.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

pub const STACK: &str = "stack";
pub const REGION: &str = "region";
pub const VPC_ID: &str = "vpc_id";
pub const PUBLIC_SUBNET_IDS: &str = "public_subnet_ids";
pub const PRIVATE_SUBNET_IDS: &str = "private_subnet_ids";
pub const NAT_GATEWAY_IDS: &str = "nat_gateway_ids";
pub const API_ID: &str = "api_id";
pub const API_ENDPOINT: &str = "api_endpoint";
pub const VPC_LINK_ID: &str = "vpc_link_id";
pub const ALB_ARN: &str = "alb_arn";
pub const ALB_DNS_NAME: &str = "alb_dns_name";
pub const LISTENER_ARN: &str = "listener_arn";
pub const CLUSTER_ARN: &str = "cluster_arn";
pub const CLUSTER_NAME: &str = "cluster_name";
pub const TASK_EXECUTION_ROLE_ARN: &str = "task_execution_role_arn";
pub const DB_INIT_ROLE_ARN: &str = "db_init_role_arn";
pub const DB_INIT_LOG_GROUP: &str = "db_init_log_group";
pub const SIGNING_KEYS_SECRET_ARN: &str = "signing_keys_secret_arn";
pub const PUBLIC_KEYS_SECRET_ARN: &str = "public_keys_secret_arn";
pub const DB_HOST: &str = "db_host";
pub const DB_PORT: &str = "db_port";
pub const DB_NAME: &str = "db_name";
pub const DB_USER: &str = "db_user";
pub const DB_INSTANCE_ID: &str = "db_instance_id";
/// Not an output but a credential: the master password in the stack
/// secret, and each service's own in its service secret. Tasks get it by
/// reference (`valueFrom`), never as text.
pub const DB_PASSWORD: &str = "db_password";

/// The output naming the security group of `role` (`alb`, `services`).
pub fn security_group_id(role: &str) -> String {
    format!("{}_security_group_id", role.replace('-', "_"))
}

/// What each service has of its own, written as `{service}_{what}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Own {
    TargetGroupArn,
    TaskRoleArn,
    LogGroup,
    RepositoryUri,
    Database,
    TopicArn,
    QueueUrl,
    DeadLetterQueueUrl,
    /// The service's own secret (its database password, operators' values).
    SecretArn,
}

impl Own {
    fn suffix(self) -> &'static str {
        match self {
            Own::TargetGroupArn => "target_group_arn",
            Own::TaskRoleArn => "task_role_arn",
            Own::LogGroup => "log_group",
            Own::RepositoryUri => "repository_uri",
            Own::Database => "database",
            Own::TopicArn => "topic_arn",
            Own::QueueUrl => "queue_url",
            Own::DeadLetterQueueUrl => "dead_letter_queue_url",
            Own::SecretArn => "secret_arn",
        }
    }

    /// The output's name for `service` (`order-api` → `order_api_queue_url`).
    pub fn of(self, service: &str) -> String {
        format!("{}_{}", service.replace('-', "_"), self.suffix())
    }
}

/// The outputs as the stack secret holds them: a flat JSON object.
#[derive(Clone, Debug, Default)]
pub struct Outputs(pub Map<String, Value>);

impl Outputs {
    /// A text output; numbers read as their text, empty text as missing.
    pub fn text(&self, key: &str) -> Option<String> {
        match self.0.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    }

    /// A list output (a JSON array, or text separated by commas).
    pub fn list(&self, key: &str) -> Vec<String> {
        match self.0.get(key) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            Some(Value::String(s)) => s
                .split(',')
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// One of `service`'s own outputs.
    pub fn own(&self, service: &str, what: Own) -> Option<String> {
        self.text(&what.of(service))
    }

    /// The services the outputs name, as their outputs spell them (`order`,
    /// `my_api`): every service has a task role.
    pub fn services(&self) -> BTreeSet<String> {
        let suffix = format!("_{}", Own::TaskRoleArn.suffix());
        self.0
            .keys()
            .filter_map(|k| k.strip_suffix(&suffix))
            .map(str::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_s_outputs_are_named_after_it_with_underscores() {
        assert_eq!(Own::QueueUrl.of("order"), "order_queue_url");
        assert_eq!(Own::TaskRoleArn.of("my-api"), "my_api_task_role_arn");
        assert_eq!(security_group_id("vpc-link"), "vpc_link_security_group_id");
    }

    #[test]
    fn outputs_read_text_numbers_and_lists_and_name_their_services() {
        let outputs = Outputs(
            serde_json::json!({
                "db_port": 5432,
                "db_host": "",
                "private_subnet_ids": ["subnet-1", "subnet-2"],
                "public_subnet_ids": "subnet-3, subnet-4",
                "order_task_role_arn": "arn:aws:iam::1:role/o",
                "my_api_task_role_arn": "arn:aws:iam::1:role/m",
                "order_queue_url": "https://sqs/order",
            })
            .as_object()
            .cloned()
            .unwrap(),
        );
        assert_eq!(outputs.text(DB_PORT).as_deref(), Some("5432"));
        assert_eq!(outputs.text(DB_HOST), None, "empty is missing");
        assert_eq!(outputs.list(PRIVATE_SUBNET_IDS), ["subnet-1", "subnet-2"]);
        assert_eq!(outputs.list(PUBLIC_SUBNET_IDS), ["subnet-3", "subnet-4"]);
        assert_eq!(
            outputs.own("order", Own::QueueUrl).as_deref(),
            Some("https://sqs/order")
        );
        assert_eq!(
            outputs.services(),
            BTreeSet::from(["my_api".to_string(), "order".to_string()])
        );
    }
}
