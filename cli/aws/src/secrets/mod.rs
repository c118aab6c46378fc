//! The stack's secrets. The stack secret, one per stack as the design
//! documents ask, is the operators' record of the stack: the outputs and
//! the database's master password, read by `techctl` and by the database
//! set-up task, by no service. What the services read lives in secrets of
//! its own ([`split`]).
//!
//! Layout (a JSON object): every output under its own name (`vpc_id`,
//! `db_host`, `order_queue_url`, ...) and the master password as
//! `db_password`. The password is made once, by the first `up`, and kept
//! by every later one; outputs are written by a step of their own once
//! what they name exists.

pub mod split;

use std::collections::{BTreeMap, HashMap};

use aws_sdk_secretsmanager::types::Tag;
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde_json::{Map, Value, json};

use super::{Aws, AwsError};
use crate::{Ctx, Step};
use engine::plan::expand::{ids, secret_name};
use engine::plan::resource::{KeysState, Output};
use engine::plan::{Observed, Resource, Spec};

/// How long a force-deleted secret may keep its name, with room to spare.
const NAME_HELD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);
const NAME_HELD_POLL: std::time::Duration = std::time::Duration::from_secs(2);

/// Secrets Manager's answer to a create while a secret of the same name is
/// still being deleted.
fn is_name_still_held(e: &AwsError) -> bool {
    e.code.as_deref() == Some("InvalidRequestException")
        && e.message.contains("scheduled for deletion")
}

/// Days a deleted stack secret can still be restored (AWS allows 7 to 30).
pub const RECOVERY_WINDOW_DAYS: i64 = 7;

pub(crate) const KEY_FIELDS: [&str; 4] =
    ["jwt_kid", "jwt_private_key", "jwt_public_key", "jwt_jwks"];
pub use engine::plan::outputs::DB_PASSWORD as DATABASE_PASSWORD;
/// Long enough to be unguessable, alphanumeric so that no URL or shell
/// quoting can mangle it.
const PASSWORD_LENGTH: usize = 40;

/// Fields the secret's own step owns (and a stack made before the split
/// kept its keys in); the outputs step leaves them alone.
fn is_credential(key: &str) -> bool {
    key.starts_with("jwt_") || key == DATABASE_PASSWORD
}

/// The names of the outputs `up` wrote last, kept in the secret itself.
/// Operators add values of their own beside them (the Mercado Pago
/// credentials); only what is listed here is `up`'s to change or drop,
/// and only what is listed here is ever printed.
pub const OWNED_OUTPUTS: &str = "techctl_outputs";

/// The keys `up` owns as outputs: those listed in [`OWNED_OUTPUTS`].
/// A secret written before the list existed owns none, so its first `up`
/// rewrites its outputs and starts the list without touching anything else.
pub fn owned_outputs(value: &Map<String, Value>) -> Vec<String> {
    value
        .get(OWNED_OUTPUTS)
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(Value::as_str)
                .filter(|k| !is_credential(k) && *k != OWNED_OUTPUTS)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn present(value: &Map<String, Value>, fields: &[&str]) -> bool {
    fields
        .iter()
        .all(|f| value.get(*f).is_some_and(|v| !v.is_null() && v != ""))
}

/// What a secret holds now.
pub struct Current {
    pub arn: String,
    pub tags: BTreeMap<String, String>,
    pub scheduled_for_deletion: bool,
    pub value: Option<Map<String, Value>>,
}

/// A secret as DescribeSecret or a ListSecrets entry shows it.
pub(crate) struct Described {
    pub name: String,
    pub arn: String,
    pub tags: BTreeMap<String, String>,
    pub scheduled_for_deletion: bool,
}

/// A secret's tags as a map.
pub(crate) fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// The secret `id` (a name or an ARN) as DescribeSecret, which is current
/// where ListSecrets may lag, shows it; `None` when it does not exist.
pub(crate) async fn described(aws: &Aws, id: &str) -> Result<Option<Described>, AwsError> {
    match sdk!(
        "DescribeSecret",
        aws.secrets.describe_secret().secret_id(id).send()
    ) {
        Ok(d) => Ok(Some(Described {
            name: d.name().unwrap_or(id).to_string(),
            arn: d.arn().unwrap_or(id).to_string(),
            tags: tag_map(d.tags()),
            scheduled_for_deletion: d.deleted_date().is_some(),
        })),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) async fn read(aws: &Aws, name: &str) -> Result<Option<Current>, AwsError> {
    let Some(described) = described(aws, name).await? else {
        return Ok(None);
    };
    // A secret scheduled for deletion cannot be read until it is restored.
    let value = if described.scheduled_for_deletion {
        None
    } else {
        // Created without a value yet (an interrupted create): empty.
        Some(match current_version(aws, name).await? {
            Some(version) => parse(name, &version.text)?,
            None => Map::new(),
        })
    };
    Ok(Some(Current {
        arn: described.arn,
        tags: described.tags,
        scheduled_for_deletion: described.scheduled_for_deletion,
        value,
    }))
}

/// A secret's description (ARN, tags, whether it is scheduled for
/// deletion) and value, or `None` when it does not exist.
pub async fn describe(aws: &Aws, id: &str) -> Result<Option<Current>, AwsError> {
    read(aws, id).await
}

/// One version of a secret's value.
#[derive(Debug, Clone)]
pub struct Version {
    pub arn: String,
    pub version_id: String,
    pub text: String,
}

/// The version labelled AWSCURRENT, or `None` when the secret has no value
/// (or does not exist: `DescribeSecret` tells those apart). The label is
/// asked for by name: readers must see what the last conditional write
/// made current.
pub async fn current_version(aws: &Aws, id: &str) -> Result<Option<Version>, AwsError> {
    match sdk!(
        "GetSecretValue",
        aws.secrets
            .get_secret_value()
            .secret_id(id)
            .version_stage(CURRENT)
            .send()
    ) {
        Ok(out) => Ok(Some(Version {
            arn: out.arn().unwrap_or(id).to_string(),
            version_id: out.version_id().unwrap_or_default().to_string(),
            text: out.secret_string().unwrap_or("{}").to_string(),
        })),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The AWSCURRENT versions of several secrets (by ARN or name), read 20 a
/// call with BatchGetSecretValue: what `observe` needs of every secret of
/// the stack in one call instead of one each. A secret without a value
/// (or gone since it was listed) maps to `None`; any other refusal of one
/// of them is the error.
pub async fn current_versions(
    aws: &Aws,
    ids: &[String],
) -> Result<HashMap<String, Option<Version>>, AwsError> {
    let mut found: HashMap<String, Option<Version>> = HashMap::new();
    for chunk in ids.chunks(BATCH_READ) {
        let out = match sdk!(
            "BatchGetSecretValue",
            aws.secrets
                .batch_get_secret_value()
                .set_secret_id_list(Some(chunk.to_vec()))
                .send()
        ) {
            Ok(out) => out,
            // Credentials granted GetSecretValue but not the batch call
            // (it came later): one read each, as before it.
            Err(e) if e.code.as_deref() == Some("AccessDeniedException") => {
                for id in chunk {
                    found.insert(id.clone(), current_version(aws, id).await?);
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        for error in out.errors() {
            let named = error.secret_id().unwrap_or_default();
            let asked = chunk.iter().find(|id| answers(id, named, None));
            match error.error_code() {
                Some("ResourceNotFoundException") => {
                    if let Some(asked) = asked {
                        found.insert(asked.clone(), None);
                    }
                }
                code => {
                    return Err(AwsError {
                        code: code.map(str::to_string),
                        transient: code == Some("InternalServiceError"),
                        ..AwsError::new(
                            "BatchGetSecretValue",
                            format!("{named}: {}", error.message().unwrap_or_default()),
                        )
                    });
                }
            }
        }
        for entry in out.secret_values() {
            let Some(arn) = entry.arn() else { continue };
            // Asked for by ARN or by name: answered under what was asked.
            let asked = chunk.iter().find(|id| answers(id, arn, entry.name()));
            if let Some(asked) = asked {
                found.insert(
                    asked.clone(),
                    Some(Version {
                        arn: arn.to_string(),
                        version_id: entry.version_id().unwrap_or_default().to_string(),
                        text: entry.secret_string().unwrap_or("{}").to_string(),
                    }),
                );
            }
        }
        // Each one asked for is answered, as a value or as an error.
        if let Some(unanswered) = chunk.iter().find(|id| !found.contains_key(*id)) {
            return Err(AwsError {
                transient: true,
                ..AwsError::new(
                    "BatchGetSecretValue",
                    format!("{unanswered} was neither answered nor refused"),
                )
            });
        }
    }
    Ok(found)
}

/// Whether an answer about `id` (an ARN or a name), or named `name`, is
/// the one to `asked`, which may be either: AWS may answer an ARN with the
/// name, and a secret's ARN is its name and a random suffix.
fn answers(asked: &str, id: &str, name: Option<&str>) -> bool {
    asked == id
        || Some(asked) == name
        || asked.contains(&format!(":secret:{id}-"))
        || id.contains(&format!(":secret:{asked}-"))
}

/// The most secrets one BatchGetSecretValue names (its SecretIdList).
const BATCH_READ: usize = 20;

/// The stack secret's value as a JSON object, or an error that says how to
/// recover when someone edited it into something else.
pub fn parse(name: &str, text: &str) -> Result<Map<String, Value>, AwsError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(AwsError {
            code: Some(UNUSABLE_VALUE.into()),
            ..AwsError::new(
                "GetSecretValue",
                format!(
                    "the stack secret {name} does not hold a JSON object (edited by hand?); nothing was changed.\n  \
                 Restore its previous version (aws secretsmanager update-secret-version-stage --secret-id {name} \
                 --version-stage AWSCURRENT --move-to-version-id <the AWSPREVIOUS version> --remove-from-version-id <the current one>) \
                 or fix its JSON, then re-run"
                ),
            )
        }),
    }
}

/// The code of the error [`parse`] returns: the secret holds something
/// only a person can repair.
pub const UNUSABLE_VALUE: &str = "techctl.UnusableSecretValue";

const CURRENT: &str = "AWSCURRENT";
/// How often a write that lost the race to another writer starts over.
const WRITE_ATTEMPTS: usize = 10;

/// Reads the secret's current value, lets `change` edit it, and writes the
/// result as a new version only if nobody wrote in between; if somebody
/// did, starts over from their version. Nothing is written when `change`
/// leaves the value as it was. `change` may run more than once.
pub async fn update<T, E>(
    aws: &Aws,
    id: &str,
    mut change: impl FnMut(&mut Map<String, Value>) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<AwsError>,
{
    for _ in 0..WRITE_ATTEMPTS {
        let version = current_version(aws, id).await?;
        let before = match &version {
            Some(v) => parse(id, &v.text)?,
            None => Map::new(),
        };
        let mut value = before.clone();
        let outcome = change(&mut value)?;
        if value == before {
            return Ok(outcome);
        }
        let text = Value::Object(value).to_string();
        let expected = version.as_ref().map(|v| v.version_id.as_str());
        if replace(aws, id, expected, &text).await? {
            return Ok(outcome);
        }
        // Another writer won: back off a little so the two do not collide
        // again, then redo the change on top of theirs.
        tokio::time::sleep(std::time::Duration::from_millis(fastrand::u64(20..200))).await;
    }
    Err(AwsError::new(
        "UpdateSecretVersionStage",
        format!(
            "the secret {id} kept changing under this command ({WRITE_ATTEMPTS} attempts); nothing was changed by it. Re-run it"
        ),
    )
    .into())
}

/// Writes `text` as the new current version if `expected` is still the
/// current one; `false` when another version became current first. The
/// version is put under a label of its own, then AWSCURRENT is moved to it
/// from `expected`, which Secrets Manager refuses when `expected` no longer
/// holds it; the version it is taken from becomes AWSPREVIOUS.
async fn replace(
    aws: &Aws,
    id: &str,
    expected: Option<&str>,
    text: &str,
) -> Result<bool, AwsError> {
    let sm = &aws.secrets;
    let Some(expected) = expected else {
        // The secret's first value becomes current by itself.
        sdk!(
            "PutSecretValue",
            sm.put_secret_value()
                .secret_id(id)
                .secret_string(text)
                .send()
        )?;
        return Ok(true);
    };
    // The token makes a retried put idempotent; the label keeps the new
    // version from being deprecated before it is made current.
    let token: String = (0..32)
        .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
        .collect();
    let pending = format!("techctl-pending-{}", &token[..12]);
    let put = sdk!(
        "PutSecretValue",
        sm.put_secret_value()
            .secret_id(id)
            .secret_string(text)
            .client_request_token(&token)
            .version_stages(&pending)
            .send()
    )?;
    let version_id = put.version_id().unwrap_or(&token).to_string();
    let moved = sdk!(
        "UpdateSecretVersionStage",
        sm.update_secret_version_stage()
            .secret_id(id)
            .version_stage(CURRENT)
            .move_to_version_id(&version_id)
            .remove_from_version_id(expected)
            .send()
    );
    // The label has done its work either way; a version without labels
    // is deprecated, as a lost race's should be.
    let _ = sdk!(
        "UpdateSecretVersionStage",
        sm.update_secret_version_stage()
            .secret_id(id)
            .version_stage(&pending)
            .remove_from_version_id(&version_id)
            .send()
    );
    match moved {
        Ok(_) => Ok(true),
        Err(e) if e.code.as_deref() == Some("InvalidParameterException") => Ok(false),
        Err(e) => Err(e),
    }
}

/// Every secret of the stack, with the stack secret's outputs.
pub async fn observe(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    let (mut found, recorded) = observe_stack_secret(aws, stack).await?;
    found.extend(split::observe(aws, stack, &recorded).await?);
    Ok(found)
}

/// The stack secret and its outputs, if there is a secret, with the ARNs
/// of the other secrets its outputs record. Outputs are read as text; the
/// observation of the whole stack turns the ids and ARNs among them back
/// into references.
async fn observe_stack_secret(
    aws: &Aws,
    stack: &str,
) -> Result<(Vec<Observed>, Vec<String>), AwsError> {
    let name = secret_name(stack);
    let Some(current) = read(aws, &name).await? else {
        return Ok((Vec::new(), Vec::new()));
    };
    // The signing and public key secrets' and each service's
    // (`…_secret_arn`): what a listing that lags may not show yet.
    let recorded = current
        .value
        .iter()
        .flat_map(|value| {
            owned_outputs(value).into_iter().filter_map(|k| {
                let arn = value.get(&k)?.as_str()?;
                (k.ends_with("_secret_arn") && !arn.is_empty()).then(|| arn.to_string())
            })
        })
        .collect();
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
            database_password: state(present(&value, &[DATABASE_PASSWORD])),
            scheduled_for_deletion: current.scheduled_for_deletion,
        },
        tags: current.tags,
        state: None,
        attributes: BTreeMap::new(),
    }];
    // A secret scheduled for deletion cannot be read: no outputs to compare.
    if current.value.is_some() {
        let outputs = owned_outputs(&value)
            .into_iter()
            .filter_map(|k| {
                let output = as_output(value.get(&k)?)?;
                Some((k, output))
            })
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
    Ok((found, recorded))
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
pub(crate) async fn restored(ctx: &Ctx<'_>, name: &str) -> Result<Option<Current>, AwsError> {
    let current = read(ctx.aws, name).await?;
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
            read(ctx.aws, name).await
        }
        other => Ok(other),
    }
}

/// Creates the secret, or restores it, and makes the credentials it lacks;
/// credentials it has are never replaced.
pub async fn converge(ctx: &Ctx<'_>, step: &Step, resource: &Resource) -> Result<String, AwsError> {
    match &resource.spec {
        Spec::StackSecret { name, .. } => converge_secret(ctx, step, resource, name).await,
        Spec::Secret { name, holds, .. } => split::converge(ctx, step, resource, name, holds).await,
        Spec::StackOutputs { secret, outputs } => {
            let arn = ctx.resolve(secret)?;
            write_outputs(ctx, &arn, outputs).await?;
            Ok(outputs_physical_id(&arn))
        }
        _ => Err(AwsError::new("converge", "not the stack secret")),
    }
}

async fn converge_secret(
    ctx: &Ctx<'_>,
    step: &Step,
    resource: &Resource,
    name: &str,
) -> Result<String, AwsError> {
    let current = restored(ctx, name).await?;
    let password = new_password();
    let description = format!(
        "techctl stack {}: outputs and the database's master password",
        ctx.stack
    );
    ensure(ctx, step, resource, name, &description, current, |value| {
        if !present(value, &[DATABASE_PASSWORD]) {
            value.insert(DATABASE_PASSWORD.into(), json!(password));
        }
        Ok(())
    })
    .await
}

/// Creates the secret `name` with what `complete` adds to an empty value,
/// or, when it exists (`current`, restored if it was scheduled for
/// deletion), lets `complete` add what it lacks and puts back missing tags.
/// `complete` may run more than once and must only add what is missing.
pub(crate) async fn ensure(
    ctx: &Ctx<'_>,
    step: &Step,
    resource: &Resource,
    name: &str,
    description: &str,
    current: Option<Current>,
    complete: impl FnMut(&mut Map<String, Value>) -> Result<(), AwsError>,
) -> Result<String, AwsError> {
    let mut complete = complete;
    let sm = &ctx.aws.secrets;
    let tags = ctx.tags(&resource.id);
    let Some(current) = current else {
        let mut value = Map::new();
        complete(&mut value)?;
        let text = Value::Object(value).to_string();
        // A secret deleted without recovery (`down --force-delete-secrets`)
        // holds its name for a while longer: wait until it lets go.
        return step
            .wait_until(
                &format!(
                    "Secrets Manager to free the name {name}: a secret of that name is still being deleted"
                ),
                ctx.steady(NAME_HELD_POLL, NAME_HELD_DEADLINE),
                || async {
                    let created = sdk!(
                        "CreateSecret",
                        sm.create_secret()
                            .name(name)
                            .description(description)
                            .secret_string(&text)
                            .set_tags(Some(
                                tags.iter()
                                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                                    .collect()
                            ))
                            .send()
                    );
                    match created {
                        Ok(answer) => Ok(Some(answer.arn().unwrap_or(name).to_string())),
                        Err(e) if is_name_still_held(&e) => Ok(None),
                        Err(e) => Err(e),
                    }
                },
            )
            .await;
    };

    update(ctx.aws, &current.arn, complete).await?;
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

/// Writes the outputs beside the credentials, dropping the outputs an
/// earlier `up` wrote that the blueprint no longer has. Every other key
/// (the credentials, and values operators added) is left as it is.
async fn write_outputs(
    ctx: &Ctx<'_>,
    arn: &str,
    outputs: &BTreeMap<String, Output>,
) -> Result<(), AwsError> {
    let mut values = Map::new();
    for (key, output) in outputs {
        values.insert(key.clone(), ctx.output(output)?);
    }
    update(ctx.aws, arn, |value: &mut Map<String, Value>| {
        apply_outputs(value, &values);
        Ok::<_, AwsError>(())
    })
    .await
}

/// `value` with `outputs` written into it and recorded as owned; outputs
/// owned before and not written now are removed.
fn apply_outputs(value: &mut Map<String, Value>, outputs: &Map<String, Value>) {
    for stale in owned_outputs(value) {
        if !outputs.contains_key(&stale) {
            value.remove(&stale);
        }
    }
    value.extend(outputs.clone());
    let mut names: Vec<String> = outputs.keys().cloned().collect();
    names.sort();
    let names: Vec<Value> = names.into_iter().map(Value::String).collect();
    value.insert(OWNED_OUTPUTS.into(), Value::Array(names));
}

pub(crate) fn new_password() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(PASSWORD_LENGTH)
        .map(char::from)
        .collect()
}

/// The master password of the stack's database, from the stack secret
/// (which the secret's step has made before the database's step runs).
pub async fn database_password(ctx: &Ctx<'_>) -> Result<String, AwsError> {
    let arn = ctx.resolve(&ids::stack_secret())?;
    read(ctx.aws, &arn)
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
pub async fn delete(ctx: &Ctx<'_>, observed: &Observed) -> Result<(), AwsError> {
    // The outputs go with the secret.
    if observed.spec.kind() == engine::plan::Kind::StackOutputs {
        return Ok(());
    }
    let scheduled = matches!(
        observed.spec,
        Spec::StackSecret {
            scheduled_for_deletion: true,
            ..
        } | Spec::Secret {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn a_batch_answer_is_matched_to_what_was_asked_by_arn_or_name() {
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:techctl/shop/service/order-AbCdEf";
        assert!(answers(arn, arn, None));
        assert!(answers(arn, "techctl/shop/service/order", None));
        assert!(answers("techctl/shop/service/order", arn, None));
        assert!(answers(
            "techctl/shop/service/order",
            "arn:x",
            Some("techctl/shop/service/order")
        ));
        assert!(!answers(arn, "techctl/shop/service/orders", None));
        assert!(!answers(arn, "techctl/shop/service", None));
    }

    #[test]
    fn outputs_replace_only_what_up_wrote_before() {
        let mut secret = object(json!({
            "jwt_kid": "k1",
            "db_password": "pw",
            "vpc_id": "vpc-1",
            "old_output": "gone soon",
            "mercadopago_access_token": "APP_USR-operator",
            OWNED_OUTPUTS: ["vpc_id", "old_output"],
        }));
        apply_outputs(
            &mut secret,
            &object(json!({"vpc_id": "vpc-2", "alb_dns_name": "a"})),
        );
        assert_eq!(secret["vpc_id"], "vpc-2");
        assert_eq!(secret["alb_dns_name"], "a");
        assert!(
            !secret.contains_key("old_output"),
            "an output no longer listed goes"
        );
        assert_eq!(secret["mercadopago_access_token"], "APP_USR-operator");
        assert_eq!(secret["jwt_kid"], "k1");
        assert_eq!(secret["db_password"], "pw");
        assert_eq!(owned_outputs(&secret), ["alb_dns_name", "vpc_id"]);
    }

    #[test]
    fn a_secret_from_before_the_list_owns_no_operator_value() {
        let mut secret = object(json!({
            "vpc_id": "vpc-1",
            "mercadopago_webhook_secret": "operator",
        }));
        assert!(owned_outputs(&secret).is_empty());
        apply_outputs(&mut secret, &object(json!({"vpc_id": "vpc-1"})));
        assert_eq!(secret["mercadopago_webhook_secret"], "operator");
        assert_eq!(owned_outputs(&secret), ["vpc_id"]);
        // A list edited to name a credential does not make it an output.
        let forged = object(json!({OWNED_OUTPUTS: ["db_password", "jwt_private_key"]}));
        assert!(owned_outputs(&forged).is_empty());
    }
}
