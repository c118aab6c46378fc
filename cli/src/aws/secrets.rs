//! The stack secret: one Secrets Manager secret per stack holding the stack
//! outputs, the JWT signing keys and the database password, as the design
//! documents ask.
//!
//! Layout (a JSON object): every output under its own name (`vpc_id`,
//! `db_host`, `order_queue_url`, ...); the keys as `jwt_kid`,
//! `jwt_private_key` (PKCS#8 PEM), `jwt_public_key` (SPKI PEM) and
//! `jwt_jwks` (a JWK set); the master password as `db_password`.
//! Credentials are made once, by the first `up`, and kept by every later
//! one; outputs are written by a step of their own once what they name
//! exists.

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::types::Tag;
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde_json::{Map, Value, json};

use super::{Aws, AwsError};
use crate::apply::{Ctx, Step};
use crate::keys;
use crate::plan::expand::{ids, secret_name};
use crate::plan::resource::{KeysState, Output};
use crate::plan::{Observed, Resource, Spec};

/// Days a deleted stack secret can still be restored (AWS allows 7 to 30).
pub const RECOVERY_WINDOW_DAYS: i64 = 7;

const KEY_FIELDS: [&str; 4] = ["jwt_kid", "jwt_private_key", "jwt_public_key", "jwt_jwks"];
pub const DATABASE_PASSWORD: &str = "db_password";
/// Long enough to be unguessable, alphanumeric so that no URL or shell
/// quoting can mangle it.
const PASSWORD_LENGTH: usize = 40;

/// Fields the secret's own step owns; the outputs step leaves them alone.
fn is_credential(key: &str) -> bool {
    key.starts_with("jwt_") || key == DATABASE_PASSWORD
}

fn present(value: &Map<String, Value>, fields: &[&str]) -> bool {
    fields
        .iter()
        .all(|f| value.get(*f).is_some_and(|v| !v.is_null() && v != ""))
}

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

/// The stack secret and its outputs, if there is a secret. Outputs are
/// read as text; the observation of the whole stack turns the ids and ARNs
/// among them back into references.
pub async fn observe(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    let name = secret_name(stack);
    let Some(current) = read(aws, &name).await? else {
        return Ok(Vec::new());
    };
    let state = |ok: bool| {
        if ok {
            KeysState::Present
        } else {
            KeysState::Missing
        }
    };
    let value = current.value.clone().unwrap_or_default();
    let mut found = vec![Observed {
        id: ids::stack_secret(),
        physical_id: current.arn.clone(),
        spec: Spec::StackSecret {
            name,
            jwt_keys: state(present(&value, &KEY_FIELDS)),
            database_password: state(present(&value, &[DATABASE_PASSWORD])),
            scheduled_for_deletion: current.scheduled_for_deletion,
        },
        tags: current.tags,
        state: None,
        attributes: BTreeMap::new(),
    }];
    // A secret scheduled for deletion cannot be read: no outputs to compare.
    if current.value.is_some() {
        let outputs = value
            .iter()
            .filter(|(k, _)| !is_credential(k))
            .filter_map(|(k, v)| Some((k.clone(), as_output(v)?)))
            .collect();
        found.push(Observed {
            id: ids::stack_outputs(),
            physical_id: outputs_physical_id(&current.arn),
            spec: Spec::StackOutputs {
                secret: ids::stack_secret(),
                outputs,
            },
            tags: BTreeMap::new(),
            state: None,
            attributes: BTreeMap::new(),
        });
    }
    Ok(found)
}

/// The outputs are not a resource of their own in AWS; they are known by
/// the secret's ARN with a suffix.
fn outputs_physical_id(arn: &str) -> String {
    format!("{arn}#outputs")
}

fn as_output(value: &Value) -> Option<Output> {
    match value {
        Value::String(s) => Some(Output::Text(s.clone())),
        Value::Array(items) => Some(Output::List(items.iter().filter_map(as_output).collect())),
        _ => None,
    }
}

/// Restores a secret scheduled for deletion (only then can the keys it
/// holds be read and kept), and reads it.
async fn restored(ctx: &Ctx, name: &str) -> Result<Option<Current>, AwsError> {
    let current = read(&ctx.aws, name).await?;
    match current {
        Some(scheduled) if scheduled.scheduled_for_deletion => {
            sdk!(
                "RestoreSecret",
                ctx.aws
                    .secrets
                    .restore_secret()
                    .secret_id(&scheduled.arn)
                    .send()
            )?;
            read(&ctx.aws, name).await
        }
        other => Ok(other),
    }
}

/// Creates the secret, or restores it, and makes the credentials it lacks;
/// credentials it has are never replaced.
pub async fn converge(ctx: &Ctx, _step: &Step, resource: &Resource) -> Result<String, AwsError> {
    match &resource.spec {
        Spec::StackSecret { name, .. } => converge_secret(ctx, resource, name).await,
        Spec::StackOutputs { secret, outputs } => {
            let arn = ctx.resolve(secret)?;
            write_outputs(ctx, &arn, outputs).await?;
            Ok(outputs_physical_id(&arn))
        }
        _ => Err(AwsError::new("converge", "not the stack secret")),
    }
}

async fn converge_secret(ctx: &Ctx, resource: &Resource, name: &str) -> Result<String, AwsError> {
    let sm = &ctx.aws.secrets;
    let tags = ctx.tags(&resource.id);
    let current = restored(ctx, name).await?;
    let mut value = current
        .as_ref()
        .and_then(|c| c.value.clone())
        .unwrap_or_default();
    if !present(&value, &KEY_FIELDS) {
        let key = tokio::task::spawn_blocking(keys::generate)
            .await
            .map_err(|e| AwsError::new("keys", e.to_string()))?
            .map_err(|e| AwsError::new("keys", e.to_string()))?;
        value.extend(keys::key_document(&key));
    }
    if !present(&value, &[DATABASE_PASSWORD]) {
        value.insert(DATABASE_PASSWORD.into(), json!(new_password()));
    }
    let text = Value::Object(value.clone()).to_string();

    let Some(current) = current else {
        let created = sdk!(
            "CreateSecret",
            sm.create_secret()
                .name(name)
                .description(format!(
                    "techctl stack {}: outputs, JWT signing keys, database password",
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
        put(ctx, &current.arn, &text).await?;
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

async fn put(ctx: &Ctx, arn: &str, text: &str) -> Result<(), AwsError> {
    sdk!(
        "PutSecretValue",
        ctx.aws
            .secrets
            .put_secret_value()
            .secret_id(arn)
            .secret_string(text)
            .send()
    )
    .map(|_| ())
}

/// Writes the outputs beside the credentials, dropping outputs the
/// blueprint no longer has.
async fn write_outputs(
    ctx: &Ctx,
    arn: &str,
    outputs: &BTreeMap<String, Output>,
) -> Result<(), AwsError> {
    let current = read(&ctx.aws, arn)
        .await?
        .and_then(|c| c.value)
        .ok_or_else(|| AwsError::new("GetSecretValue", "the stack secret cannot be read"))?;
    let mut value: Map<String, Value> = current
        .iter()
        .filter(|(k, _)| is_credential(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, output) in outputs {
        value.insert(key.clone(), ctx.output(output)?);
    }
    if value != current {
        put(ctx, arn, &Value::Object(value).to_string()).await?;
    }
    Ok(())
}

fn new_password() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(PASSWORD_LENGTH)
        .map(char::from)
        .collect()
}

/// The master password of the stack's database, from the stack secret
/// (which the secret's step has made before the database's step runs).
pub async fn database_password(ctx: &Ctx) -> Result<String, AwsError> {
    let arn = ctx.resolve(&ids::stack_secret())?;
    read(&ctx.aws, &arn)
        .await?
        .and_then(|c| c.value)
        .and_then(|v| v.get(DATABASE_PASSWORD)?.as_str().map(str::to_string))
        .ok_or_else(|| {
            AwsError::new(
                "GetSecretValue",
                format!("the stack secret has no {DATABASE_PASSWORD}; re-run `techctl up`"),
            )
        })
}

/// Schedules the secret's deletion with a recovery window, or deletes it at
/// once when asked to.
pub async fn delete(ctx: &Ctx, observed: &Observed) -> Result<(), AwsError> {
    // The outputs go with the secret.
    if observed.spec.kind() == crate::plan::Kind::StackOutputs {
        return Ok(());
    }
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
    super::gone(sdk!("DeleteSecret", req.send()).map(|_| ()))
}
