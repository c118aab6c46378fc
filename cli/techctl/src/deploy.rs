//! `techctl deploy`: a service from source to running on ECS Fargate.
//!
//! build (cargo, release) → image ([`image`], by digest) → push (ECR
//! or `--registry`, missing blobs only) → task definition revision
//! ([`task`], reused when nothing changed) → service created or updated,
//! scaling target and policy ([`ecs`]) → rollout watched to its end
//! ([`rollout`]), the previous revision put back when it fails. The AWS
//! work is the `aws` crate's; this module orders it and reports it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::printer::Printer;
use aws::deploy::rollout::{Snapshot, Verdict, Watcher};
use aws::deploy::task::StackFacts;
use aws::deploy::{ecs, task};
use aws::{Aws, AwsError};
use blueprint::Blueprint;
use image::registry::Registry;
use image::{self, ImageSpec};

/// Why a deploy did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The user's to fix: a service the blueprint lacks, a stack not up
    /// yet, an image that is not the service's.
    #[error("{0}")]
    Yours(String),
    /// The user's to fix, as another crate's error says it.
    #[error(transparent)]
    YoursBecause(Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The rollout failed; the service was put back on its previous
    /// revision when it had one.
    #[error("{0}")]
    RolledBack(String),
}

impl DeployError {
    fn yours(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        DeployError::YoursBecause(Box::new(e))
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub services: Vec<String>,
    /// Push here instead of the stack's ECR repositories.
    pub registry: Option<String>,
    /// Deploy this image (by digest) instead of building one.
    pub image: Option<String>,
    pub dry_run: bool,
    /// Watch the rollout to its end.
    pub wait: bool,
    pub timeout: Duration,
    pub poll: Duration,
    /// The workspace holding the services' source.
    pub source: PathBuf,
    /// The cargo profile the services are built in.
    pub profile: image::build::Profile,
    /// Build the services first (else use the binaries as they are).
    pub build: bool,
}

/// The stack's outputs from the stack secret, and the names of what each
/// service's secret holds. No secret value is kept.
pub async fn read_facts(aws: &Aws, stack: &str) -> Result<StackFacts, DeployError> {
    let name = engine::plan::expand::secret_name(stack);
    let Some(version) = aws::secrets::current_version(aws, &name).await? else {
        return Err(DeployError::Yours(format!(
            "the stack {stack} has no secret {name}: run `techctl up` first"
        )));
    };
    let Ok(Value::Object(mut secret)) = serde_json::from_str::<Value>(&version.text) else {
        return Err(DeployError::Yours(format!(
            "the stack secret {name} does not hold a JSON object; restore it (its previous version is AWSPREVIOUS) or run `techctl up`"
        )));
    };
    secret.remove(engine::plan::outputs::DB_PASSWORD);
    let outputs = engine::plan::outputs::Outputs(secret.clone());
    let mut service_secrets = std::collections::BTreeMap::new();
    let mut database_ready = std::collections::BTreeSet::new();
    let database_identity = match outputs.text(engine::plan::outputs::DB_INSTANCE_ID) {
        Some(id) => aws::deploy::db_init::instance_identity(aws, &id).await?,
        None => None,
    };
    for service in outputs.services() {
        let Some(arn) = outputs.own(&service, engine::plan::outputs::Own::SecretArn) else {
            continue;
        };
        let Some(current) = aws::secrets::describe(aws, &arn).await? else {
            continue;
        };
        if database_identity.is_some()
            && current.tags.get(aws::deploy::db_init::READY_TAG) == database_identity.as_ref()
        {
            database_ready.insert(service.clone());
        }
        // Names only: the values are dropped here.
        let held = current
            .value
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, v)| !v.is_null() && v != "")
            .map(|(k, _)| k)
            .collect();
        service_secrets.insert(service, held);
    }
    Ok(StackFacts {
        secret,
        secret_arn: version.arn,
        service_secrets,
        database_ready,
        database_identity,
    })
}

/// Deploys each service of `options`, stopping at the first that fails.
pub async fn run(
    aws: &Aws,
    blueprint: &Blueprint,
    options: &Options,
    printer: &Printer,
) -> Result<(), DeployError> {
    let facts = read_facts(aws, blueprint.stack_name()).await?;
    let missing = task::missing_operator_values(blueprint, &facts, &options.services);
    if !missing.is_empty() {
        return Err(DeployError::Yours(format!(
            "nothing was built: {}",
            task::missing_values_message(&missing)
        )));
    }
    let binaries = match options.image {
        Some(_) => Default::default(),
        None => {
            if options.build {
                printer.text(&format!(
                    "Building the services ({}; only what changed)…",
                    options.profile.name()
                ));
            }
            image::build::binaries(
                &options.source,
                &options.services,
                options.build,
                &options.profile,
                &|line| printer.text(&format!("  {line}")),
            )
            .await
            .map_err(DeployError::yours)?
        }
    };
    let revision = image::git_revision(&options.source);
    let mut images = Vec::new();
    for service in &options.services {
        printer.text(&format!("\n==> {service}: image"));
        let image = match &options.image {
            Some(reference) => {
                let reference = given_image(reference)?;
                let architecture =
                    image_architecture(aws, blueprint, options, &facts, service, &reference)
                        .await?;
                (reference, architecture)
            }
            None => {
                let spec = ImageSpec {
                    service,
                    binary: &binaries[service],
                    port: port_of(blueprint, service),
                    revision: revision.clone(),
                };
                build_and_push(aws, blueprint, options, &facts, &spec, printer).await?
            }
        };
        images.push((service, image));
    }
    if let Some((service, (image, architecture))) = images.first() {
        set_up_databases(
            aws,
            blueprint,
            options,
            &facts,
            (service, image, *architecture),
            printer,
        )
        .await?;
    }
    for (service, (image, architecture)) in images {
        printer.text(&format!("\n==> {service}: rollout"));
        deploy_image(
            aws,
            blueprint,
            options,
            &facts,
            service,
            (&image, architecture),
            printer,
        )
        .await?;
    }
    Ok(())
}

/// Runs the database set-up task for the services being deployed whose
/// role is not made yet, with the image of one of them.
async fn set_up_databases(
    aws: &Aws,
    blueprint: &Blueprint,
    options: &Options,
    facts: &StackFacts,
    (with, image, architecture): (&str, &str, image::Architecture),
    printer: &Printer,
) -> Result<(), DeployError> {
    use aws::deploy::db_init;
    let needed: Vec<String> = options
        .services
        .iter()
        .filter(|s| !facts.database_ready.contains(&s.replace('-', "_")))
        .cloned()
        .collect();
    if needed.is_empty() {
        return Ok(());
    }
    let spec = db_init::task_spec(blueprint, facts, &needed, image, architecture)
        .map_err(|e| DeployError::Yours(e.0))?;
    if facts.database_identity.is_none() && !options.dry_run {
        return Err(DeployError::Yours(
            "the stack's database instance does not exist: run `techctl up` first".into(),
        ));
    }
    if options.dry_run {
        printer.text(&format!(
            "\nwould run the database set-up task for {} (their roles and databases)",
            needed.join(", ")
        ));
        return Ok(());
    }
    printer.text(&format!(
        "\n==> database set-up: a role and a database for {} (one-off task, {with}'s image)…",
        needed.join(", ")
    ));
    let network = ecs::ServiceSettings::from_stack(facts, with, 1, 0, blueprint.stack_name())?;
    let binary = format!("{}/{with}-service", image::BIN_DIR);
    let started = Instant::now();
    db_init::run(
        aws,
        &spec,
        &network,
        &binary,
        options.timeout,
        options.poll,
        blueprint.stack_name(),
    )
    .await?;
    if let Some(identity) = &facts.database_identity {
        db_init::mark_ready(aws, facts, &needed, identity).await?;
    }
    printer.text(&format!(
        "  done in {:.0}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

fn port_of(blueprint: &Blueprint, service: &str) -> u16 {
    blueprint
        .services()
        .find(|(name, _)| *name == service)
        .map_or(0, |(_, s)| *s.port.get_ref())
}

/// A prebuilt image must be named by digest: a tag can move under a deploy.
fn given_image(reference: &str) -> Result<String, DeployError> {
    if reference.contains("@sha256:") {
        Ok(reference.to_string())
    } else {
        Err(DeployError::Yours(format!(
            "--image {reference} names no digest; deploys never follow a moving tag\n  give it as REPOSITORY@sha256:…"
        )))
    }
}

/// The architecture of a prebuilt image, from its config: the task
/// definition must name it. The image must be in the registry the service
/// deploys from (the stack's repository or `--registry`), the only one its
/// tasks may pull from.
async fn image_architecture(
    aws: &Aws,
    blueprint: &Blueprint,
    options: &Options,
    facts: &StackFacts,
    service: &str,
    reference: &str,
) -> Result<image::Architecture, DeployError> {
    let (registry, repository) = destination(aws, blueprint, options, facts, service).await?;
    let (name, digest) = reference.split_once('@').unwrap_or((reference, ""));
    if name != format!("{}/{repository}", registry.host()) {
        return Err(DeployError::Yours(format!(
            "--image {reference} is not in {}/{repository}, the repository the {service} service's tasks pull from\n  push it there first, or deploy from source",
            registry.host()
        )));
    }
    let unreadable = |e: image::ImageError| DeployError::Yours(format!("reading {reference}: {e}"));
    let (manifest, _) = registry
        .manifest(&repository, digest)
        .await
        .map_err(unreadable)?;
    let manifest: Value = serde_json::from_slice(&manifest)
        .map_err(|e| DeployError::Yours(format!("{reference} has no readable manifest: {e}")))?;
    let config_digest = manifest
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .ok_or_else(|| DeployError::Yours(format!("{reference} is not a single-platform image")))?;
    let config: Value = serde_json::from_slice(
        &registry
            .blob(&repository, config_digest)
            .await
            .map_err(unreadable)?,
    )
    .map_err(|e| DeployError::Yours(format!("{reference} has no readable config: {e}")))?;
    let named = config
        .get("architecture")
        .and_then(Value::as_str)
        .unwrap_or_default();
    image::Architecture::from_oci(named).ok_or_else(|| {
        DeployError::Yours(format!(
            "{reference} is built for {named:?}; Fargate runs amd64 and arm64 images only"
        ))
    })
}

/// Where a service's image goes: the `--registry`, else the stack's ECR
/// repository with ECR's authorization token.
async fn destination(
    aws: &Aws,
    blueprint: &Blueprint,
    options: &Options,
    facts: &StackFacts,
    service: &str,
) -> Result<(Registry, String), DeployError> {
    let repository = format!("{}/{service}", blueprint.stack_name());
    if let Some(url) = &options.registry {
        let registry = Registry::new(url, None).map_err(DeployError::yours)?;
        return Ok((registry, repository));
    }
    let key = engine::plan::outputs::Own::RepositoryUri.of(service);
    let uri = facts
        .secret
        .get(&key)
        .and_then(Value::as_str)
        .ok_or_else(|| {
            DeployError::Yours(format!(
                "the stack secret has no {key}: run `techctl up` first"
            ))
        })?;
    let (host, repository) = uri
        .split_once('/')
        .ok_or_else(|| DeployError::Yours(format!("{key} is not a repository URI: {uri}")))?;
    let token = aws::registry::authorization_token(aws).await?;
    let registry = Registry::new(&format!("https://{host}"), Some(format!("Basic {token}")))
        .map_err(DeployError::yours)?;
    Ok((registry, repository.to_string()))
}

async fn build_and_push(
    aws: &Aws,
    blueprint: &Blueprint,
    options: &Options,
    facts: &StackFacts,
    spec: &ImageSpec<'_>,
    printer: &Printer,
) -> Result<(String, image::Architecture), DeployError> {
    let built = image::build(spec).map_err(DeployError::yours)?;
    let (registry, repository) = destination(aws, blueprint, options, facts, spec.service).await?;
    let reference = format!("{}/{repository}@{}", registry.host(), built.digest);
    let size = |bytes: usize| format!("{:.1} MiB", bytes as f64 / 1_048_576.0);
    printer.text(&format!(
        "  image {} ({} compressed, {} uncompressed)",
        built.digest,
        size(built.compressed_size()),
        size(built.uncompressed_size())
    ));
    let failed = |e: image::ImageError| DeployError::Yours(format!("pushing {reference}: {e}"));
    if options.dry_run {
        let mut missing = 0;
        let mut bytes = 0;
        for (digest, blob) in built.blobs() {
            if !registry
                .has_blob(&repository, digest)
                .await
                .map_err(failed)?
            {
                missing += 1;
                bytes += blob.len();
            }
        }
        printer.text(&format!(
            "  would push {reference}: {missing} of {} blobs missing ({})",
            built.blobs().len(),
            size(bytes)
        ));
        return Ok((reference, built.architecture));
    }
    let mut tags = vec!["latest".to_string()];
    if let Some(revision) = &spec.revision {
        tags.push(
            revision.chars().take(12).collect::<String>()
                + if revision.ends_with("-dirty") {
                    "-dirty"
                } else {
                    ""
                },
        );
    }
    let pushed = registry
        .push(&built, &repository, &tags)
        .await
        .map_err(failed)?;
    printer.text(&format!(
        "  pushed {reference}: {} blobs uploaded ({}), {} already there; tagged {}",
        pushed.uploaded.len(),
        size(pushed.bytes_uploaded),
        pushed.present.len(),
        tags.join(", ")
    ));
    Ok((reference, built.architecture))
}

async fn deploy_image(
    aws: &Aws,
    blueprint: &Blueprint,
    options: &Options,
    facts: &StackFacts,
    service: &str,
    (image, architecture): (&str, image::Architecture),
    printer: &Printer,
) -> Result<(), DeployError> {
    let spec = task::task_spec(blueprint, service, facts, image, architecture)
        .map_err(DeployError::yours)?;
    let latest = ecs::latest_revision(aws, &spec.family).await?;
    if options.dry_run {
        let changes = task::diff(latest.as_ref().map(|(_, s)| s), &spec);
        if changes.is_empty() {
            printer.text("  task definition: no change");
        } else {
            printer.text(&format!(
                "  task definition {}:\n{}",
                latest
                    .as_ref()
                    .map_or("(first revision)".to_string(), |(arn, _)| format!(
                        "after {arn}"
                    )),
                changes
                    .iter()
                    .map(|l| format!("    {l}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        return Ok(());
    }
    let revision = match latest {
        Some((arn, current)) if current == spec => {
            printer.text(&format!("  task definition unchanged: {arn}"));
            arn
        }
        _ => {
            let arn = ecs::register(aws, &spec, blueprint.stack_name()).await?;
            printer.text(&format!("  registered {arn}"));
            arn
        }
    };
    let (_, definition) = blueprint
        .services()
        .find(|(name, _)| *name == service)
        .ok_or_else(|| DeployError::Yours(format!("the blueprint has no service {service}")))?;
    let settings = ecs::ServiceSettings::from_stack(
        facts,
        service,
        *definition.desired.get_ref(),
        spec.port,
        blueprint.stack_name(),
    )?;
    let previous = ecs::current_service(aws, &settings.cluster, &settings.name)
        .await?
        .map(|c| c.task_definition);
    let changed = ecs::roll_out(aws, &settings, &revision).await?;
    ecs::ensure_scaling(
        aws,
        &settings,
        *definition.min.get_ref(),
        *definition.max.get_ref(),
    )
    .await?;
    let mut looks = EcsLooks {
        aws,
        cluster: &settings.cluster,
        service,
    };
    let before = looks.look().await?;
    if !changed {
        if before.is_steady_on(&revision) {
            printer.text(&format!(
                "  the service runs {revision} already: nothing to roll out"
            ));
            return Ok(());
        }
        // An earlier deploy stopped before its rollout ended (it failed
        // half way, or was interrupted): this one sees it through.
        printer.text(&format!(
            "  the service is on {revision} but its rollout has not finished: watching it"
        ));
    }
    if !options.wait {
        printer.text("  rolling out (not watched: --no-wait)");
        return Ok(());
    }
    let watcher = Watcher::new(&revision, options.timeout, Instant::now(), &before);
    let outcome = watch(&mut looks, watcher, options.poll, &mut |line| {
        printer.text(&format!("  {line}"))
    })
    .await?;
    match outcome {
        Ok(()) => {
            printer.text(&format!("  {service} runs {revision}"));
            Ok(())
        }
        Err(why) => {
            let undone = match &previous {
                Some(previous) => {
                    ecs::roll_back(aws, &settings, previous).await?;
                    format!("; the service is back on {previous}")
                }
                None => String::new(),
            };
            Err(DeployError::RolledBack(format!(
                "{service} was not deployed: {why}{undone}"
            )))
        }
    }
}

/// Where the watcher looks: ECS, or a script in tests.
pub trait Looks {
    fn look(&mut self) -> impl Future<Output = Result<Snapshot, AwsError>> + Send;
}

struct EcsLooks<'a> {
    aws: &'a Aws,
    cluster: &'a str,
    service: &'a str,
}

impl Looks for EcsLooks<'_> {
    async fn look(&mut self) -> Result<Snapshot, AwsError> {
        ecs::snapshot(self.aws, self.cluster, self.service).await
    }
}

/// Looks every `poll` until the watcher has a verdict, telling `say` what
/// is new each time: `Ok` when the rollout succeeded, `Err` with why not.
pub async fn watch(
    looks: &mut impl Looks,
    mut watcher: Watcher,
    poll: Duration,
    say: &mut (dyn FnMut(&str) + Send),
) -> Result<Result<(), String>, AwsError> {
    loop {
        let snapshot = looks.look().await?;
        let (lines, verdict) = watcher.observe(&snapshot, Instant::now());
        for line in &lines {
            say(line);
        }
        match verdict {
            Verdict::Watching => tokio::time::sleep(poll).await,
            Verdict::Succeeded => return Ok(Ok(())),
            Verdict::Failed(why) => return Ok(Err(why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws::deploy::rollout::Deployment;

    const NEW: &str = "arn:aws:ecs:us-east-1:123:task-definition/techchallenge-user:4";
    const OLD: &str = "arn:aws:ecs:us-east-1:123:task-definition/techchallenge-user:3";

    /// DescribeServices answers played back in order (the last repeats).
    struct Script(Vec<Snapshot>);

    impl Looks for Script {
        async fn look(&mut self) -> Result<Snapshot, AwsError> {
            Ok(if self.0.len() > 1 {
                self.0.remove(0)
            } else {
                self.0[0].clone()
            })
        }
    }

    fn look(deployments: &[(&str, &str, i32, &str)], events: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            deployments: deployments
                .iter()
                .map(|(td, status, running, state)| Deployment {
                    id: format!("ecs-svc/{status}"),
                    status: status.to_string(),
                    task_definition: td.to_string(),
                    desired: 1,
                    running: *running,
                    pending: 1 - running,
                    failed_tasks: if *state == "FAILED" { 2 } else { 0 },
                    rollout_state: state.to_string(),
                    rollout_reason: if *state == "FAILED" {
                        "ECS deployment circuit breaker: tasks failed to start.".into()
                    } else {
                        String::new()
                    },
                })
                .collect(),
            events: events
                .iter()
                .map(|(id, m)| (id.to_string(), m.to_string()))
                .collect(),
            stopped: Vec::new(),
        }
    }

    async fn run_script(
        script: Vec<Snapshot>,
        timeout: Duration,
    ) -> (Vec<String>, Result<(), String>) {
        let before = look(&[(OLD, "PRIMARY", 1, "COMPLETED")], &[]);
        let watcher = Watcher::new(NEW, timeout, Instant::now(), &before);
        let mut lines = Vec::new();
        let outcome = watch(
            &mut Script(script),
            watcher,
            Duration::from_millis(5),
            &mut |l| lines.push(l.to_string()),
        )
        .await
        .unwrap();
        (lines, outcome)
    }

    #[tokio::test]
    async fn a_scripted_rollout_succeeds() {
        let (lines, outcome) = run_script(
            vec![
                look(
                    &[
                        (NEW, "PRIMARY", 0, "IN_PROGRESS"),
                        (OLD, "ACTIVE", 1, "COMPLETED"),
                    ],
                    &[("1", "(service user) has started 1 tasks: (task t1).")],
                ),
                look(
                    &[(NEW, "PRIMARY", 1, "COMPLETED")],
                    &[("2", "(service user) has reached a steady state.")],
                ),
            ],
            Duration::from_secs(60),
        )
        .await;
        assert_eq!(outcome, Ok(()));
        assert_eq!(
            lines,
            [
                "event: (service user) has started 1 tasks: (task t1).",
                "desired 1, running 0, pending 1",
                "event: (service user) has reached a steady state.",
                "desired 1, running 1, pending 0"
            ]
        );
    }

    #[tokio::test]
    async fn a_scripted_circuit_breaker_fails_the_deploy_with_exit_code_5() {
        let (lines, outcome) = run_script(
            vec![
                look(&[(NEW, "PRIMARY", 0, "IN_PROGRESS"), (OLD, "ACTIVE", 1, "COMPLETED")], &[]),
                look(
                    &[(NEW, "PRIMARY", 0, "FAILED"), (OLD, "ACTIVE", 1, "COMPLETED")],
                    &[("3", "(service user) (deployment ecs-svc/1) deployment failed: tasks failed to start.")],
                ),
            ],
            Duration::from_secs(60),
        )
        .await;
        let why = outcome.unwrap_err();
        assert_eq!(
            why,
            "the deployment circuit breaker stopped the rollout: ECS deployment circuit breaker: tasks failed to start."
        );
        assert!(
            lines.contains(&"desired 1, running 0, pending 1, 2 failed".to_string()),
            "{lines:?}"
        );
        let error = crate::error::CliError::from(DeployError::RolledBack(format!(
            "user was not deployed: {why}"
        )));
        assert_eq!(error.exit_code(), std::process::ExitCode::from(5));
    }

    #[tokio::test]
    async fn a_scripted_stuck_rollout_hits_its_deadline() {
        let (lines, outcome) = run_script(
            vec![look(
                &[
                    (NEW, "PRIMARY", 0, "IN_PROGRESS"),
                    (OLD, "ACTIVE", 1, "COMPLETED"),
                ],
                &[],
            )],
            Duration::from_millis(50),
        )
        .await;
        assert_eq!(lines, ["desired 1, running 0, pending 1"]);
        assert_eq!(
            outcome.unwrap_err(),
            "the rollout did not finish within 0s (0 running of 1 desired, 1 pending, 0 failed)"
        );
    }

    #[test]
    fn a_prebuilt_image_must_be_named_by_digest() {
        assert!(given_image("registry/techchallenge/user@sha256:abc").is_ok());
        let message = given_image("registry/techchallenge/user:latest")
            .unwrap_err()
            .to_string();
        assert!(message.contains("names no digest"), "{message}");
    }
}
