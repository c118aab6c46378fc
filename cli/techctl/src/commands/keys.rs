//! `techctl keys rotate | retire | list`: the JWT signing keys of the stack
//! secret, or with `--local` of `techctl dev`'s key file.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::{Settings, confirm, prepare};
use crate::cli::{KeyStoreArgs, KeysAction};
use crate::error::CliError;
use crate::keystore::KeyStore;
use crate::printer::Printer;
use crate::table::Table;
use dev::home::FOLDER;
use keys::ring::{KeyRing, KeyView, Retirement, TokenPolicy, TokensLive};

pub async fn exec(
    settings: &Settings,
    printer: &Printer,
    action: KeysAction,
) -> Result<ExitCode, CliError> {
    let (KeysAction::Rotate { store, .. }
    | KeysAction::Retire { store, .. }
    | KeysAction::List { store }) = &action;
    let (store, policy) = open(settings, store).await?;
    match action {
        KeysAction::Rotate { retire_old, .. } => rotate(&store, policy, retire_old, printer).await,
        KeysAction::Retire { kid, .. } => retire(settings, &store, policy, kid, printer).await,
        KeysAction::List { .. } => list(&store, policy, printer).await,
    }
}

/// The key store asked for, and the blueprint's token policy.
async fn open(
    settings: &Settings,
    args: &KeyStoreArgs,
) -> Result<(KeyStore, TokenPolicy), CliError> {
    if args.local {
        let blueprint = settings.load_blueprint()?;
        let dir = std::env::current_dir()
            .map_err(|e| CliError::User(format!("cannot tell the working directory: {e}")))?;
        let path = dir.join(FOLDER).join("keys.json");
        return Ok((KeyStore::File(path), blueprint.token_policy()));
    }
    let (blueprint, aws) = prepare(settings).await?;
    let stack = blueprint.stack_name();
    let store = KeyStore::Stack {
        aws: Box::new(aws),
        name: engine::plan::expand::signing_keys_name(stack),
        public: engine::plan::expand::public_keys_name(stack),
    };
    Ok((store, blueprint.token_policy()))
}

fn time(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}

fn duration(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Where the new version went, said once after a change.
fn saved_in(store: &KeyStore) -> String {
    match store {
        KeyStore::Stack { name, public, .. } => format!(
            "the secret {name}, and its public set in {public} (new versions; the ones before are kept as AWSPREVIOUS)"
        ),
        KeyStore::File(path) => path.display().to_string(),
    }
}

async fn rotate(
    store: &KeyStore,
    policy: TokenPolicy,
    retire_old: bool,
    printer: &Printer,
) -> Result<ExitCode, CliError> {
    // Made once: a write that loses a race is redone with the same key.
    let key = tokio::task::spawn_blocking(keys::generate)
        .await
        .map_err(|e| CliError::User(format!("cannot make a key: {e}")))?
        .map_err(|e| CliError::User(format!("cannot make a key: {e}")))?;
    let ((previous, retired), ring) = store
        .update(|ring| {
            let now = SystemTime::now();
            let retired = if retire_old {
                ring.retire_expired(now, policy)
            } else {
                Vec::new()
            };
            let previous = ring.signing_kid().to_string();
            ring.rotate(&key, now);
            Ok((previous, retired))
        })
        .await?;
    let views = ring.list(policy);
    printer.json(&json!({
        "store": store.describe(),
        "signing": key.kid,
        "previous": previous,
        "published": ring.published_kids(),
        "retired": retired,
        "keys": views.iter().map(view_json).collect::<Vec<_>>(),
    }));
    let mut text = format!(
        "Rotated the signing key in {}.\n  signing    {}\n",
        saved_in(store),
        key.kid
    );
    for view in views.iter().filter(|v| v.record.kid != key.kid) {
        match view.tokens {
            TokensLive::Refused(_) if retired.contains(&view.record.kid) => {
                text.push_str(&format!(
                    "  retired    {}  (its tokens had all expired)\n",
                    view.record.kid
                ));
            }
            TokensLive::Refused(_) => {}
            tokens => text.push_str(&format!(
                "  published  {}  {}\n",
                view.record.kid,
                tokens_text(tokens, policy)
            )),
        }
    }
    text.push_str(&format!(
        "\nThe user service signs with the new key, and every service accepts it, within {} \
         (tokens.keys_refresh_seconds); tokens signed before keep working while their key stays published.",
        duration(policy.refresh)
    ));
    if let Some(TokensLive::Until(until)) = ring
        .list(policy)
        .iter()
        .find(|v| v.record.kid == previous)
        .map(|v| v.tokens)
    {
        text.push_str(&format!(
            "\nRetire {previous} after {}: techctl keys retire{}",
            time(until),
            local_flag(store)
        ));
    }
    printer.text(&text);
    Ok(ExitCode::SUCCESS)
}

fn local_flag(store: &KeyStore) -> &'static str {
    match store {
        KeyStore::File(_) => " --local",
        KeyStore::Stack { .. } => "",
    }
}

async fn retire(
    settings: &Settings,
    store: &KeyStore,
    policy: TokenPolicy,
    kid: Option<String>,
    printer: &Printer,
) -> Result<ExitCode, CliError> {
    let Some(kid) = kid else {
        let (retired, ring) = store
            .update(|ring| Ok(ring.retire_expired(SystemTime::now(), policy)))
            .await?;
        printer.json(&json!({
            "store": store.describe(),
            "retired": retired,
            "published": ring.published_kids(),
        }));
        let text = if retired.is_empty() {
            let mut text =
                "Nothing to retire: every published key may still have live tokens.".to_string();
            for view in ring.list(policy) {
                if let TokensLive::Until(until) = view.tokens {
                    text.push_str(&format!(
                        "\n  {} can be retired after {}",
                        view.record.kid,
                        time(until)
                    ));
                }
            }
            text
        } else {
            format!(
                "Retired {} from {}: their tokens had all expired.\n  still published: {}",
                retired.join(", "),
                saved_in(store),
                ring.published_kids().join(", ")
            )
        };
        printer.text(&text);
        return Ok(ExitCode::SUCCESS);
    };

    let ring = store.read().await?;
    if let Some(live) = ring.live_tokens(&kid, SystemTime::now(), policy) {
        let until = match live {
            TokensLive::Until(until) => format!("until {}", time(until)),
            _ => "for all anyone recorded".to_string(),
        };
        printer.warn(&format!(
            "tokens signed with {kid} may be alive {until}; once it is retired every service refuses them \
             (within {}) and their holders must sign in again.",
            duration(policy.refresh)
        ));
        confirm(
            settings,
            &format!("Retire {kid} now?"),
            "retire",
            "to retire it anyway",
        )?;
    }
    let (outcome, ring) = store
        .update(|ring| ring.retire(&kid, SystemTime::now()))
        .await?;
    let (state, text) = match outcome {
        Retirement::Retired => (
            "retired",
            format!(
                "Retired {kid} from {}: every service refuses its tokens within {}.\n  still published: {}",
                saved_in(store),
                duration(policy.refresh),
                ring.published_kids().join(", ")
            ),
        ),
        Retirement::AlreadyRetired(at) => (
            "already retired",
            format!(
                "{kid} was retired already{}; nothing was changed.",
                at.map(|t| format!(" on {}", time(t))).unwrap_or_default()
            ),
        ),
    };
    printer.json(&json!({
        "store": store.describe(),
        "kid": kid,
        "outcome": state,
        "published": ring.published_kids(),
    }));
    printer.text(&text);
    Ok(ExitCode::SUCCESS)
}

async fn list(
    store: &KeyStore,
    policy: TokenPolicy,
    printer: &Printer,
) -> Result<ExitCode, CliError> {
    let ring: KeyRing = store.read().await?;
    let views = ring.list(policy);
    printer.json(&json!({
        "store": store.describe(),
        "token_lifetime_seconds": policy.lifetime.as_secs(),
        "keys_refresh_seconds": policy.refresh.as_secs(),
        "keys": views.iter().map(view_json).collect::<Vec<_>>(),
    }));
    let rows: Vec<[String; 4]> = views
        .iter()
        .map(|v| {
            [
                v.record.kid.clone(),
                v.record.created_at.map_or("-".into(), time),
                v.role.as_str().to_string(),
                tokens_text(v.tokens, policy),
            ]
        })
        .collect();
    let mut table = Table::new(&["KID", "CREATED", "ROLE", "TOKENS LIVE UNTIL"]).indent(2);
    for row in rows {
        table.row(row);
    }
    let text = format!("Keys in {}:\n{}", store.describe(), table.render());
    printer.text(&text);
    Ok(ExitCode::SUCCESS)
}

fn tokens_text(tokens: TokensLive, policy: TokenPolicy) -> String {
    match tokens {
        TokensLive::WhileSigning => {
            format!("{} after the next rotation", duration(policy.overlap()))
        }
        TokensLive::Until(until) if until <= SystemTime::now() => {
            format!("{} (expired: retire it)", time(until))
        }
        TokensLive::Until(until) => time(until),
        TokensLive::Unknown => "unknown (no rotation date recorded)".into(),
        TokensLive::Refused(at) => format!("refused since {}", time(at)),
    }
}

fn view_json(view: &KeyView) -> Value {
    let (until, retirable) = match view.tokens {
        TokensLive::Until(until) => (Some(time(until)), until <= SystemTime::now()),
        _ => (None, false),
    };
    json!({
        "kid": view.record.kid,
        "created_at": view.record.created_at.map(time),
        "role": view.role,
        "signing_until": view.record.signing_until.map(time),
        "retired_at": view.record.retired_at.map(time),
        "tokens_live_until": until,
        "retirable": retirable,
    })
}
