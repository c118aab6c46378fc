//! The secrets beside the stack secret, so that each is read by only the
//! roles that need it:
//!
//! - `techctl/<stack>/signing-keys`: the token signing key ring (the
//!   stack secret's old `jwt_*` fields), read by the user service alone
//!   and changed by `techctl keys`;
//! - `techctl/<stack>/public-keys`: `{"jwt_jwks": …}`, the ring's public
//!   set, which every other service verifies tokens with;
//! - `techctl/<stack>/service/<service>`: the service's database password
//!   (`db_password`, made by `up`) and the values operators set with
//!   `techctl secrets` (the Mercado Pago credentials, the first admin's
//!   password), given to its tasks by `valueFrom`.
//!
//! `up` makes what each lacks and never touches anything else in them.

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use serde_json::{Map, Value, json};

use super::{
    DATABASE_PASSWORD, Described, KEY_FIELDS, current_version, new_password, parse, present,
    tag_map, update,
};
use crate::{Aws, AwsError, Ctx, Step, in_stack};
use engine::plan::expand::{secret_name, secret_prefix, signing_keys_name};
use engine::plan::resource::{KeysState, SecretHolds};
use engine::plan::{Observed, Resource, Spec};
use keys::ring::KeyRing;

/// The field of the public-keys secret that holds the set.
pub const PUBLIC_SET: &str = "jwt_jwks";
/// The history of the ring's keys, beside [`KEY_FIELDS`].
const HISTORY: &str = "jwt_keys";

/// What a secret of the stack holds, read from its name.
pub fn holds(stack: &str, name: &str) -> Option<SecretHolds> {
    let rest = name.strip_prefix(&secret_prefix(stack))?;
    match rest {
        "signing-keys" => Some(SecretHolds::SigningKeys),
        "public-keys" => Some(SecretHolds::PublicKeys),
        _ => rest
            .strip_prefix("service/")
            .filter(|s| !s.is_empty() && !s.contains('/'))
            .map(|s| SecretHolds::Service(s.to_string())),
    }
}

/// What each secret is for, said once where it is created.
fn description(stack: &str, holds: &SecretHolds) -> String {
    match holds {
        SecretHolds::SigningKeys => {
            format!("techctl stack {stack}: the token signing key ring (user service only)")
        }
        SecretHolds::PublicKeys => {
            format!("techctl stack {stack}: the public JWK set every service verifies tokens with")
        }
        SecretHolds::Service(service) => format!(
            "techctl stack {stack}: the {service} service's database password and operators' values"
        ),
    }
}

/// Every secret of the stack under its prefix, with whether what `up`
/// makes for it is there. ListSecrets is eventually consistent (AWS: it
/// may miss changes of the last minutes), so each of `recorded` (ARNs the
/// stack secret's outputs name) that it does not list yet is described by
/// ARN, which is current: a `plan` right after `up` must not offer to make
/// the secrets `up` just made.
pub async fn observe(
    aws: &Aws,
    stack: &str,
    recorded: &[String],
) -> Result<Vec<Observed>, AwsError> {
    let prefix = secret_prefix(stack);
    let listed = crate::all_pages(|token| {
        let prefix = prefix.clone();
        async move {
            let page = sdk!(
                "ListSecrets",
                aws.secrets
                    .list_secrets()
                    .filters(
                        Filter::builder()
                            .key(FilterNameStringType::Name)
                            .values(prefix)
                            .build(),
                    )
                    // A secret scheduled for deletion still holds its name;
                    // `up` restores it rather than failing to create it.
                    .include_planned_deletion(true)
                    .set_next_token(token)
                    .send()
            )?;
            Ok((
                page.secret_list().to_vec(),
                page.next_token().map(str::to_string),
            ))
        }
    })
    .await?;
    let mut seen: Vec<Described> = listed
        .iter()
        .filter_map(|entry| {
            Some(Described {
                name: entry.name()?.to_string(),
                arn: entry.arn()?.to_string(),
                tags: tag_map(entry.tags()),
                scheduled_for_deletion: entry.deleted_date().is_some(),
            })
        })
        .collect();
    for arn in recorded {
        if !seen.iter().any(|s| &s.arn == arn)
            && let Some(found) = super::described(aws, arn).await?
        {
            seen.push(found);
        }
    }
    // The stack's own, with what each holds; their values in one read.
    let ours: Vec<_> = seen
        .iter()
        .filter_map(|s| {
            let holds = holds(stack, &s.name).filter(|_| in_stack(&s.tags, stack))?;
            Some((
                s.name.as_str(),
                s.arn.as_str(),
                s.tags.clone(),
                holds,
                s.scheduled_for_deletion,
            ))
        })
        .collect();
    // A secret scheduled for deletion cannot be read until it is restored.
    let readable: Vec<String> = ours
        .iter()
        .filter(|(_, _, _, _, scheduled)| !scheduled)
        .map(|(_, arn, ..)| arn.to_string())
        .collect();
    let mut values = if readable.is_empty() {
        Default::default()
    } else {
        super::current_versions(aws, &readable).await?
    };
    let mut found = Vec::new();
    let mut ring: Option<Map<String, Value>> = None;
    let mut public: Option<(usize, Option<Value>)> = None;
    for (name, arn, tags, holds, scheduled_for_deletion) in ours {
        let value = match values.remove(arn).flatten() {
            Some(version) => parse(name, &version.text)?,
            None => Map::new(),
        };
        let complete = match &holds {
            SecretHolds::SigningKeys => {
                ring = Some(value.clone());
                present(&value, &KEY_FIELDS)
            }
            SecretHolds::PublicKeys => {
                // Judged against the ring once both are read.
                public = Some((found.len(), value.get(PUBLIC_SET).cloned()));
                false
            }
            SecretHolds::Service(_) => present(&value, &[DATABASE_PASSWORD]),
        };
        found.push(crate::observed(
            arn,
            tags,
            Spec::Secret {
                name: name.to_string(),
                holds,
                complete: state(complete),
                scheduled_for_deletion,
            },
            None,
        ));
    }
    if let Some((at, set)) = public {
        let in_step = ring
            .as_ref()
            .and_then(|doc| KeyRing::from_document(doc, "the signing keys").ok())
            .is_some_and(|ring| set.as_ref() == Some(&ring.public_set(set.as_ref())));
        if let Spec::Secret { complete, .. } = &mut found[at].spec {
            *complete = state(in_step);
        }
    }
    Ok(found)
}

fn state(ok: bool) -> KeysState {
    if ok {
        KeysState::Present
    } else {
        KeysState::Missing
    }
}

/// Creates (or restores) the secret and adds what `up` makes for it.
pub async fn converge(
    ctx: &Ctx<'_>,
    step: &Step,
    resource: &Resource,
    name: &str,
    holds: &SecretHolds,
) -> Result<String, AwsError> {
    let current = super::restored(ctx, name).await?;
    let known = current
        .as_ref()
        .and_then(|c| c.value.clone())
        .unwrap_or_default();
    let description = description(&ctx.stack, holds);
    match holds {
        SecretHolds::SigningKeys => {
            let ring = if present(&known, &KEY_FIELDS) {
                None
            } else {
                Some(first_ring(ctx.aws, &ctx.stack).await?)
            };
            let arn = super::ensure(ctx, step, resource, name, &description, current, |doc| {
                if !present(doc, &KEY_FIELDS) {
                    let ring = ring.as_ref().ok_or_else(|| {
                        AwsError::new(
                            "GetSecretValue",
                            format!(
                                "{name} lost its signing keys while this ran; re-run `techctl up`"
                            ),
                        )
                    })?;
                    doc.extend(ring.clone());
                }
                Ok(())
            })
            .await?;
            forget_legacy_keys(ctx.aws, &ctx.stack).await?;
            Ok(arn)
        }
        SecretHolds::PublicKeys => {
            let ring_name = signing_keys_name(&ctx.stack);
            let ring = match current_version(ctx.aws, &ring_name).await? {
                Some(version) => {
                    KeyRing::from_document(&parse(&ring_name, &version.text)?, &ring_name)
                        .map_err(|e| AwsError::new("GetSecretValue", e.0))?
                }
                None => {
                    return Err(AwsError::new(
                        "GetSecretValue",
                        format!("{ring_name} holds no key ring yet; re-run `techctl up`"),
                    ));
                }
            };
            super::ensure(ctx, step, resource, name, &description, current, |doc| {
                let set = ring.public_set(doc.get(PUBLIC_SET));
                doc.insert(PUBLIC_SET.into(), set);
                Ok(())
            })
            .await
        }
        SecretHolds::Service(_) => {
            let password = new_password();
            super::ensure(ctx, step, resource, name, &description, current, |doc| {
                if !present(doc, &[DATABASE_PASSWORD]) {
                    doc.insert(DATABASE_PASSWORD.into(), json!(password));
                }
                Ok(())
            })
            .await
        }
    }
}

/// The ring a new signing-keys secret starts with: the one a stack made
/// before the split kept in its stack secret (so tokens signed with it stay
/// valid), or a new key.
async fn first_ring(aws: &Aws, stack: &str) -> Result<Map<String, Value>, AwsError> {
    let stack_secret = secret_name(stack);
    if let Some(version) = current_version(aws, &stack_secret).await? {
        let doc = parse(&stack_secret, &version.text)?;
        if present(&doc, &KEY_FIELDS) {
            return Ok(doc
                .into_iter()
                .filter(|(k, _)| KEY_FIELDS.contains(&k.as_str()) || k == HISTORY)
                .collect());
        }
    }
    let key = tokio::task::spawn_blocking(keys::generate)
        .await
        .map_err(|e| AwsError::new("keys", e.to_string()))?
        .map_err(|e| AwsError::new("keys", e.to_string()))?;
    Ok(keys::key_document(&key))
}

/// Takes the keys out of the stack secret once the signing-keys secret
/// holds them: the stack secret keeps no private key nobody maintains.
async fn forget_legacy_keys(aws: &Aws, stack: &str) -> Result<(), AwsError> {
    let stack_secret = secret_name(stack);
    match current_version(aws, &stack_secret).await? {
        Some(_) => {
            update(aws, &stack_secret, |doc: &mut Map<String, Value>| {
                doc.retain(|k, _| !k.starts_with("jwt_"));
                Ok::<_, AwsError>(())
            })
            .await
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_s_purpose_is_read_from_its_name() {
        assert_eq!(
            holds("shop", "techctl/shop/signing-keys"),
            Some(SecretHolds::SigningKeys)
        );
        assert_eq!(
            holds("shop", "techctl/shop/public-keys"),
            Some(SecretHolds::PublicKeys)
        );
        assert_eq!(
            holds("shop", "techctl/shop/service/payment"),
            Some(SecretHolds::Service("payment".into()))
        );
        assert_eq!(holds("shop", "techctl/shop"), None);
        assert_eq!(holds("shop", "techctl/shop-2/public-keys"), None);
        assert_eq!(holds("shop", "techctl/shop/service/a/b"), None);
    }
}
