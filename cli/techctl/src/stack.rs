//! A stack as a whole: observe everything it owns, plan against the
//! blueprint, and read its outputs.

use serde_json::{Map, Value, json};

use aws::{self, Aws, AwsError, AwsProvider};
use blueprint::Blueprint;
use engine::apply::Provider;
use engine::plan::{self, Observed, Plan};

/// Everything in AWS tagged with the stack, whatever the blueprint says.
pub async fn observe(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    AwsProvider::new(aws.clone()).observe(stack).await
}

/// What `down` deletes: everything observed, except secrets already
/// scheduled for deletion, unless they are to go at once.
pub fn doomed(observed: Vec<Observed>, force_delete_secrets: bool) -> Vec<Observed> {
    observed
        .into_iter()
        .filter(|o| {
            force_delete_secrets
                || !matches!(
                    o.spec,
                    plan::Spec::StackSecret {
                        scheduled_for_deletion: true,
                        ..
                    } | plan::Spec::Secret {
                        scheduled_for_deletion: true,
                        ..
                    }
                )
        })
        .collect()
}

pub async fn plan(aws: &Aws, blueprint: &Blueprint) -> Result<Plan, AwsError> {
    let provider = AwsProvider::new(aws.clone());
    let (checked, planned) = tokio::join!(
        aws::preflight::check(aws, blueprint),
        plan::observe_and_compute(
            &provider,
            blueprint.stack_name(),
            blueprint.region(),
            plan::expand::desired(blueprint),
        )
    );
    checked?;
    planned
}

/// The stack outputs, with secrets masked: what `status` shows.
pub async fn outputs(aws: &Aws, stack: &str) -> Result<Option<Map<String, Value>>, AwsError> {
    let name = plan::expand::secret_name(stack);
    let value = match aws::secrets::current_version(aws, &name).await {
        Ok(Some(version)) => version.text,
        Ok(None) => return Ok(None),
        // Scheduled for deletion: no outputs to show.
        Err(e) if e.code.as_deref() == Some("InvalidRequestException") => return Ok(None),
        Err(e) => return Err(e),
    };
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(&value) else {
        return Ok(Some(Map::from_iter([(
            "error".to_string(),
            json!("the stack secret does not hold a JSON object"),
        )])));
    };
    // Only the outputs `up` wrote are shown; values operators added (the
    // Mercado Pago credentials) are named but never printed.
    let owned = aws::secrets::owned_outputs(&map);
    map.remove(aws::secrets::OWNED_OUTPUTS);
    for (key, v) in map.iter_mut() {
        if !key.starts_with("jwt_") && !key.contains("password") && !owned.contains(key) {
            *v = json!("(set by an operator, hidden)");
        } else if key == "jwt_private_key" || key.contains("password") {
            *v = json!("(secret, hidden)");
        } else if key == "jwt_public_key" {
            *v = json!("(PEM public key)");
        } else if key == "jwt_keys" {
            let count = v.as_array().map_or(0, Vec::len);
            *v = json!(format!(
                "(key history, {count} key{}: techctl keys list)",
                if count == 1 { "" } else { "s" }
            ));
        } else if key == "jwt_jwks" {
            let count = v.get("keys").and_then(Value::as_array).map_or(0, Vec::len);
            *v = json!(format!(
                "(JWK set, {count} key{})",
                if count == 1 { "" } else { "s" }
            ));
        }
    }
    Ok(Some(map))
}
