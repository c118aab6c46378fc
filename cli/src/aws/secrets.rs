//! The stack secret: one Secrets Manager secret per stack holding the stack
//! outputs and the JWT signing keys, as the design documents ask.
//!
//! Layout (a JSON object): every output under its own name (`vpc_id`,
//! `private_subnet_ids`, ...), and the keys as `jwt_kid`,
//! `jwt_private_key` (PKCS#8 PEM), `jwt_public_key` (SPKI PEM) and
//! `jwt_jwks` (a JWK set). Keys are made once and kept by every later `up`.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_secretsmanager::types::Tag;
use serde_json::{Map, Value, json};

use super::{Aws, AwsError};
use crate::apply::{Ctx, Step};
use crate::keys;
use crate::plan::expand::{ids, secret_name};
use crate::plan::resource::{KeysState, Output};
use crate::plan::{LogicalId, Observed, Resource, Spec};

/// Days a deleted stack secret can still be restored (AWS allows 7 to 30).
pub const RECOVERY_WINDOW_DAYS: i64 = 7;

const KEY_FIELDS: [&str; 4] = ["jwt_kid", "jwt_private_key", "jwt_public_key", "jwt_jwks"];

/// What the stack secret holds now.
struct Current {
    arn: String,
    tags: BTreeMap<String, String>,
    scheduled_for_deletion: bool,
    value: Option<Map<String, Value>>,
}

async fn read(aws: &Aws, name: &str) -> Result<Option<Current>, AwsError> {
    let described = match sdk!(
        "DescribeSecret",
        aws.secrets.describe_secret().secret_id(name).send()
    ) {
        Ok(d) => d,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let scheduled_for_deletion = described.deleted_date().is_some();
    let tags = described
        .tags()
        .iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect();
    // A secret scheduled for deletion cannot be read until it is restored.
    let value = if scheduled_for_deletion {
        None
    } else {
        match sdk!(
            "GetSecretValue",
            aws.secrets.get_secret_value().secret_id(name).send()
        ) {
            Ok(out) => Some(parse(name, out.secret_string().unwrap_or("{}"))?),
            // Created without a value yet (an interrupted create).
            Err(e) if e.is_not_found() => Some(Map::new()),
            Err(e) => return Err(e),
        }
    };
    Ok(Some(Current {
        arn: described.arn().unwrap_or(name).to_string(),
        tags,
        scheduled_for_deletion,
        value,
    }))
}

fn parse(name: &str, text: &str) -> Result<Map<String, Value>, AwsError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AwsError::new(
            "GetSecretValue",
            format!(
                "the stack secret {name} does not hold a JSON object (edited by hand?); nothing was changed.\n  \
                 Restore its previous version (aws secretsmanager update-secret-version-stage) or fix its JSON, then re-run"
            ),
        )),
    }
}

/// The stack secret, if there is one; its physical references are turned
/// back into logical ids through `names`.
pub async fn observe(
    aws: &Aws,
    stack: &str,
    names: &HashMap<String, LogicalId>,
) -> Result<Vec<Observed>, AwsError> {
    let name = secret_name(stack);
    let Some(current) = read(aws, &name).await? else {
        return Ok(Vec::new());
    };
    let value = current.value.unwrap_or_default();
    let logical = |v: &str| {
        names
            .get(v)
            .cloned()
            .unwrap_or_else(|| LogicalId::foreign(v))
    };
    let outputs = value
        .iter()
        .filter(|(k, _)| !k.starts_with("jwt_"))
        .filter_map(|(k, v)| {
            let output = match v {
                Value::String(s) if names.contains_key(s) => Output::Id(logical(s)),
                Value::String(s) if looks_physical(s) => Output::Id(LogicalId::foreign(s)),
                Value::String(s) => Output::Text(s.clone()),
                Value::Array(items) => Output::Ids(
                    items
                        .iter()
                        .filter_map(Value::as_str)
                        .map(logical)
                        .collect(),
                ),
                _ => return None,
            };
            Some((k.clone(), output))
        })
        .collect();
    let has_keys = KEY_FIELDS
        .iter()
        .all(|f| value.get(*f).is_some_and(|v| !v.is_null()));
    Ok(vec![Observed {
        id: ids::stack_secret(),
        physical_id: current.arn,
        spec: Spec::StackSecret {
            name,
            outputs,
            jwt_keys: if has_keys {
                KeysState::Present
            } else {
                KeysState::Missing
            },
            scheduled_for_deletion: current.scheduled_for_deletion,
        },
        tags: current.tags,
        state: None,
    }])
}

/// An EC2-style id such as `vpc-0abc` or `subnet-12`: a stale reference.
fn looks_physical(s: &str) -> bool {
    s.split_once('-').is_some_and(|(prefix, rest)| {
        ["vpc", "subnet", "sg", "nat", "igw", "rtb", "eipalloc"].contains(&prefix)
            && rest.chars().all(|c| c.is_ascii_hexdigit())
    })
}

/// Creates the secret, or restores and updates it, keeping its keys.
pub async fn converge(ctx: &Ctx, _step: &Step, resource: &Resource) -> Result<String, AwsError> {
    let Spec::StackSecret { name, outputs, .. } = &resource.spec else {
        return Err(AwsError::new("converge", "not the stack secret"));
    };
    let sm = &ctx.aws.secrets;
    let tags = ctx.tags(&resource.id);
    let mut current = read(&ctx.aws, name).await?;
    if let Some(scheduled) = current.as_ref().filter(|c| c.scheduled_for_deletion) {
        // Restore first: only then can the keys it holds be read and kept.
        sdk!(
            "RestoreSecret",
            sm.restore_secret().secret_id(&scheduled.arn).send()
        )?;
        current = read(&ctx.aws, name).await?;
    }

    let mut value = Map::new();
    for (key, output) in outputs {
        let v = match output {
            Output::Text(t) => json!(t),
            Output::Id(id) => json!(ctx.resolve(id)?),
            Output::Ids(list) => json!(
                list.iter()
                    .map(|id| ctx.resolve(id))
                    .collect::<Result<Vec<_>, _>>()?
            ),
        };
        value.insert(key.clone(), v);
    }
    let kept_keys = current.as_ref().and_then(|c| c.value.as_ref()).filter(|v| {
        KEY_FIELDS
            .iter()
            .all(|f| v.get(*f).is_some_and(|x| !x.is_null()))
    });
    match kept_keys {
        // Every jwt_ field is carried over, so later key rotations survive `up`.
        Some(old) => value.extend(
            old.iter()
                .filter(|(k, _)| k.starts_with("jwt_"))
                .map(|(k, v)| (k.clone(), v.clone())),
        ),
        None => {
            let key = tokio::task::spawn_blocking(keys::generate)
                .await
                .map_err(|e| AwsError::new("keys", e.to_string()))?
                .map_err(|e| AwsError::new("keys", e.to_string()))?;
            value.insert("jwt_kid".into(), json!(key.kid));
            value.insert("jwt_private_key".into(), json!(key.private_key_pem));
            value.insert("jwt_public_key".into(), json!(key.public_key_pem));
            value.insert("jwt_jwks".into(), keys::jwk_set(&[&key]));
        }
    }
    let text = Value::Object(value.clone()).to_string();

    let Some(current) = current else {
        let created = sdk!(
            "CreateSecret",
            sm.create_secret()
                .name(name)
                .description(format!(
                    "techctl stack {}: outputs and JWT signing keys",
                    ctx.stack
                ))
                .secret_string(&text)
                .set_tags(Some(
                    tags.iter()
                        .map(|(k, v)| Tag::builder().key(k).value(v).build())
                        .collect()
                ))
                .send()
        )?;
        return Ok(created.arn().unwrap_or(name).to_string());
    };

    if current.value.as_ref() != Some(&value) {
        sdk!(
            "PutSecretValue",
            sm.put_secret_value()
                .secret_id(&current.arn)
                .secret_string(&text)
                .send()
        )?;
    }
    let missing: Vec<Tag> = tags
        .iter()
        .filter(|(k, v)| current.tags.get(*k) != Some(*v))
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    if !missing.is_empty() {
        sdk!(
            "TagResource",
            sm.tag_resource()
                .secret_id(&current.arn)
                .set_tags(Some(missing))
                .send()
        )?;
    }
    Ok(current.arn)
}

/// Schedules the secret's deletion with a recovery window, or deletes it at
/// once when asked to.
pub async fn delete(ctx: &Ctx, observed: &Observed) -> Result<(), AwsError> {
    let scheduled = matches!(
        observed.spec,
        Spec::StackSecret {
            scheduled_for_deletion: true,
            ..
        }
    );
    if scheduled && !ctx.options.force_delete_secrets {
        return Ok(());
    }
    let mut req = ctx
        .aws
        .secrets
        .delete_secret()
        .secret_id(&observed.physical_id);
    req = if ctx.options.force_delete_secrets {
        req.force_delete_without_recovery(true)
    } else {
        req.recovery_window_in_days(RECOVERY_WINDOW_DAYS)
    };
    match sdk!("DeleteSecret", req.send()) {
        Err(e) if e.is_not_found() => Ok(()),
        other => other.map(|_| ()),
    }
}
