//! AWS's Service Authorization Reference for the services the stack and
//! techctl call: for each action, the resource types IAM authorizes it
//! against (required or not) and the condition keys it takes; for each
//! resource type, its ARN format.
//!
//! The data is `reference/aws.json`, made by `scripts/authz-reference.sh`
//! from the npm package that republishes AWS's machine-readable reference;
//! nothing in it is typed by hand. An action is authorized against the
//! resource a request names when that resource is of one of the action's
//! types, and against `*` otherwise: an action with no resource type
//! (`sqs:ListQueues`), or one whose types do not include what the request
//! names (`sns:Unsubscribe` names a subscription; SNS authorizes only
//! topics), is granted only by a statement on `*`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::Value;

use crate::pattern::glob;

const DATA: &str = include_str!("../reference/aws.json");

/// The IAM action an API operation is authorized as: `prefix:Operation`,
/// except the batch operations IAM authorizes as what they batch
/// (`sqs:SendMessageBatch` is `sqs:SendMessage`).
pub fn action_for(prefix: &str, operation: &str) -> String {
    let name = match (prefix, operation) {
        ("sqs", "SendMessageBatch") => "SendMessage",
        ("sqs", "DeleteMessageBatch") => "DeleteMessage",
        ("sqs", "ChangeMessageVisibilityBatch") => "ChangeMessageVisibility",
        ("sns", "PublishBatch") => "Publish",
        _ => operation,
    };
    format!("{prefix}:{name}")
}

/// One action of the reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Action {
    /// `prefix:Name`, as AWS spells it.
    pub name: String,
    /// The resource types, and whether each is required.
    pub resource_types: Vec<(String, bool)>,
    /// The condition keys the action and its resource types take.
    pub conditions: Vec<String>,
}

impl Action {
    /// Whether only a statement on `*` can grant the action.
    pub fn takes_only_any_resource(&self) -> bool {
        self.resource_types.is_empty()
    }

    /// Whether the action takes condition `key` (`aws:ResourceTag/…`
    /// matches the reference's `aws:ResourceTag/${TagKey}`).
    pub fn takes_condition(&self, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        self.conditions.iter().any(|c| {
            let c = c.to_ascii_lowercase();
            match c.split_once("${") {
                Some((head, _)) => key.starts_with(head) && key.len() > head.len(),
                None => c == key,
            }
        })
    }
}

#[derive(Debug)]
struct Service {
    /// By lower-case action name.
    actions: BTreeMap<String, Action>,
    /// Resource type → ARN format, as a glob pattern.
    arn_formats: BTreeMap<String, Vec<char>>,
}

/// The reference, as loaded from its data.
#[derive(Debug)]
pub struct Reference {
    version: String,
    services: BTreeMap<String, Service>,
}

/// The reference techctl ships.
pub fn aws() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| Reference::parse(DATA))
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

impl Reference {
    fn parse(data: &str) -> Reference {
        let root: Value = serde_json::from_str(data).expect("reference/aws.json is JSON");
        let mut services = BTreeMap::new();
        for (prefix, service) in root["services"].as_object().into_iter().flatten() {
            let actions = service["actions"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, a)| {
                    let resource_types = a["resources"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|r| Some((r[0].as_str()?.to_string(), r[1].as_bool()?)))
                        .collect();
                    let action = Action {
                        name: format!("{prefix}:{name}"),
                        resource_types,
                        conditions: str_list(&a["conditions"]),
                    };
                    (name.to_ascii_lowercase(), action)
                })
                .collect();
            let arn_formats = service["resources"]
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(name, r)| Some((name.clone(), format_pattern(r["arn"].as_str()?))))
                .collect();
            services.insert(
                prefix.clone(),
                Service {
                    actions,
                    arn_formats,
                },
            );
        }
        Reference {
            version: root["version"].as_str().unwrap_or_default().to_string(),
            services,
        }
    }

    /// The version of the package the data came from.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Whether the reference covers the service of `action` at all.
    pub fn knows_service(&self, action: &str) -> bool {
        let prefix = action.split_once(':').map_or(action, |(p, _)| p);
        self.services.contains_key(&prefix.to_ascii_lowercase())
    }

    /// An action, by its `prefix:Name` (case-insensitive).
    pub fn action(&self, action: &str) -> Option<&Action> {
        let (prefix, name) = action.split_once(':')?;
        self.services
            .get(&prefix.to_ascii_lowercase())?
            .actions
            .get(&name.to_ascii_lowercase())
    }

    /// The resource type of `arn`, among those `action` is authorized
    /// against; the most specific when several formats fit.
    pub fn resource_type(&self, action: &str, arn: &str) -> Option<&str> {
        let found = self.action(action)?;
        let service = self.services.get(action.split_once(':')?.0)?;
        let text: Vec<char> = arn.chars().collect();
        found
            .resource_types
            .iter()
            .filter_map(|(name, _)| Some((name, service.arn_formats.get(name)?)))
            .filter(|(_, format)| glob(format, &text, &|_| false))
            .max_by_key(|(_, format)| format.iter().filter(|c| **c != '*').count())
            .map(|(name, _)| name.as_str())
    }

    /// What IAM authorizes `action` against when a request names `arn`:
    /// the ARN when it is of one of the action's resource types, `*`
    /// otherwise.
    pub fn authorized_against<'a>(&self, action: &str, arn: &'a str) -> &'a str {
        if self.resource_type(action, arn).is_some() {
            arn
        } else {
            "*"
        }
    }
}

/// An ARN format (`arn:${Partition}:sns:${Region}:${Account}:${TopicName}`)
/// as a glob: each variable a run of anything but a colon.
fn format_pattern(format: &str) -> Vec<char> {
    let mut out = Vec::new();
    let mut rest = format;
    while let Some(start) = rest.find("${") {
        out.extend(rest[..start].chars());
        out.push('*');
        rest = rest[start..]
            .find('}')
            .map_or("", |end| &rest[start + end + 1..]);
    }
    out.extend(rest.chars());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_know_their_resource_types_and_conditions() {
        let r = aws();
        assert!(r.version().starts_with("0."));
        let publish = r.action("sns:Publish").unwrap();
        assert_eq!(publish.resource_types, [("topic".to_string(), true)]);
        assert!(
            r.action("SQS:listqueues")
                .unwrap()
                .takes_only_any_resource()
        );
        assert!(
            r.action("secretsmanager:BatchGetSecretValue")
                .unwrap()
                .takes_only_any_resource()
        );
        assert!(r.action("sqs:NoSuchThing").is_none());
        let create_role = r.action("iam:CreateRole").unwrap();
        assert!(create_role.takes_condition("iam:PermissionsBoundary"));
        assert!(create_role.takes_condition("aws:RequestTag/techctl:stack"));
        assert!(!create_role.takes_condition("aws:ResourceTag/techctl:stack"));
        assert!(
            r.action("iam:PassRole")
                .unwrap()
                .takes_condition("iam:PassedToService")
        );
    }

    #[test]
    fn a_request_is_authorized_against_its_resource_only_when_the_action_takes_its_type() {
        let r = aws();
        let topic = "arn:aws:sns:us-east-1:123456789012:shop-order-events";
        assert_eq!(r.resource_type("sns:Publish", topic), Some("topic"));
        assert_eq!(r.authorized_against("sns:Publish", topic), topic);
        // A subscription is no resource type of SNS's.
        let subscription = format!("{topic}:0f1e2d3c-aaaa-bbbb-cccc-123456789012");
        assert_eq!(r.authorized_against("sns:Unsubscribe", &subscription), "*");
        let secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:techctl/shop-AbCdEf";
        assert_eq!(
            r.resource_type("secretsmanager:GetSecretValue", secret),
            Some("Secret")
        );
        let role = "arn:aws:iam::123456789012:role/techctl/shop/order";
        assert_eq!(r.resource_type("iam:PassRole", role), Some("role"));
        let repo = "arn:aws:ecr:us-east-1:123456789012:repository/shop/order";
        assert_eq!(
            r.resource_type("ecr:GetDownloadUrlForLayer", repo),
            Some("repository")
        );
    }
}
