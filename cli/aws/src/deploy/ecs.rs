//! The AWS side of a rollout: task definition revisions, the ECS service
//! (created or updated), its Application Auto Scaling target and CPU
//! policy, and the looks at the service the rollout watcher needs.

use std::collections::BTreeMap;

use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ServiceNamespace,
    TargetTrackingScalingPolicyConfiguration,
};
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, Compatibility, ContainerDefinition, CpuArchitecture,
    DeploymentCircuitBreaker, DeploymentConfiguration, DesiredStatus, HealthCheck, KeyValuePair,
    LaunchType, LoadBalancer, LogConfiguration, LogDriver, NetworkConfiguration, NetworkMode,
    OsFamily, PortMapping, PropagateTags, RuntimePlatform, Secret, Tag, TransportProtocol,
};
use serde_json::Value;

use super::rollout::{Deployment, Snapshot, StoppedTask};
use super::task::{StackFacts, TaskSpec};
use crate::{Aws, AwsError, retry_passing};
use engine::plan::outputs::{self as out, Outputs, Own};

/// Seconds a new task may fail its health checks while it starts.
pub const GRACE_PERIOD_SECONDS: i32 = 60;
/// The average CPU the scaling policy keeps the service at.
pub const CPU_TARGET_PERCENT: f64 = 60.0;

/// The latest revision of `family`, as techctl would have written it.
pub async fn latest_revision(
    aws: &Aws,
    family: &str,
) -> Result<Option<(String, TaskSpec)>, AwsError> {
    let answer = aws
        .ecs
        .describe_task_definition()
        .task_definition(family)
        .send()
        .await
        .map_err(|e| AwsError::from_sdk("DescribeTaskDefinition", e));
    let described = match answer {
        Ok(d) => d,
        // ECS answers a ClientException for a family it does not know.
        Err(e) if e.is_not_found() || e.code.as_deref() == Some("ClientException") => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let Some(definition) = described.task_definition() else {
        return Ok(None);
    };
    let Some(container) = definition.container_definitions().first() else {
        return Ok(None);
    };
    let log = container
        .log_configuration()
        .map(|l| l.options().cloned().unwrap_or_default())
        .unwrap_or_default();
    let spec = TaskSpec {
        family: definition.family().unwrap_or_default().to_string(),
        cpu: definition.cpu().unwrap_or_default().to_string(),
        memory: definition.memory().unwrap_or_default().to_string(),
        execution_role_arn: definition
            .execution_role_arn()
            .unwrap_or_default()
            .to_string(),
        task_role_arn: definition.task_role_arn().unwrap_or_default().to_string(),
        container: container.name().unwrap_or_default().to_string(),
        image: container.image().unwrap_or_default().to_string(),
        // ECS's default when a definition names none.
        cpu_architecture: definition
            .runtime_platform()
            .and_then(|p| p.cpu_architecture())
            .map_or("X86_64", |a| a.as_str())
            .to_string(),
        port: container
            .port_mappings()
            .first()
            .and_then(|p| p.container_port())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_default(),
        environment: container
            .environment()
            .iter()
            .filter_map(|kv| Some((kv.name()?.to_string(), kv.value()?.to_string())))
            .collect(),
        secrets: container
            .secrets()
            .iter()
            .map(|s| (s.name().to_string(), s.value_from().to_string()))
            .collect(),
        log_group: log.get("awslogs-group").cloned().unwrap_or_default(),
        log_region: log.get("awslogs-region").cloned().unwrap_or_default(),
        health_check: container
            .health_check()
            .map(|h| h.command().to_vec())
            .unwrap_or_default(),
    };
    let arn = definition
        .task_definition_arn()
        .unwrap_or_default()
        .to_string();
    Ok(Some((arn, spec)))
}

/// Registers `spec` as a new revision; its ARN.
pub async fn register(aws: &Aws, spec: &TaskSpec, stack: &str) -> Result<String, AwsError> {
    let port = i32::from(spec.port);
    let mut container = ContainerDefinition::builder()
        .name(&spec.container)
        .image(&spec.image)
        .essential(true)
        .set_environment(Some(
            spec.environment
                .iter()
                .map(|(k, v)| KeyValuePair::builder().name(k).value(v).build())
                .collect(),
        ))
        .set_secrets(Some(
            spec.secrets
                .iter()
                .map(|(k, v)| Secret::builder().name(k).value_from(v).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| AwsError::new("RegisterTaskDefinition", e.to_string()))?,
        ))
        .log_configuration(
            LogConfiguration::builder()
                .log_driver(LogDriver::Awslogs)
                .options("awslogs-group", &spec.log_group)
                .options("awslogs-region", &spec.log_region)
                .options("awslogs-stream-prefix", &spec.container)
                .build()
                .map_err(|e| AwsError::new("RegisterTaskDefinition", e.to_string()))?,
        );
    // A one-off task (the database set-up) listens on nothing, and its
    // only container may use all of the task's memory.
    if port == 0 {
        container = container.set_memory(spec.memory.parse().ok());
    } else {
        container = container.port_mappings(
            PortMapping::builder()
                .container_port(port)
                .host_port(port)
                .protocol(TransportProtocol::Tcp)
                .build(),
        );
    }
    if !spec.health_check.is_empty() {
        container = container.health_check(
            HealthCheck::builder()
                .set_command(Some(spec.health_check.clone()))
                .interval(15)
                .timeout(5)
                .retries(3)
                .start_period(GRACE_PERIOD_SECONDS)
                .build()
                .map_err(|e| AwsError::new("RegisterTaskDefinition", e.to_string()))?,
        );
    }
    let container = container.build();
    let registered = sdk!(
        "RegisterTaskDefinition",
        aws.ecs
            .register_task_definition()
            .family(&spec.family)
            .requires_compatibilities(Compatibility::Fargate)
            .network_mode(NetworkMode::Awsvpc)
            .cpu(&spec.cpu)
            .memory(&spec.memory)
            .runtime_platform(
                RuntimePlatform::builder()
                    .cpu_architecture(CpuArchitecture::from(spec.cpu_architecture.as_str()))
                    .operating_system_family(OsFamily::Linux)
                    .build(),
            )
            .execution_role_arn(&spec.execution_role_arn)
            // A task that calls no AWS API runs with no role at all.
            .set_task_role_arn(Some(spec.task_role_arn.clone()).filter(|r| !r.is_empty()))
            .container_definitions(container)
            .tags(tag("techctl:stack", stack))
            .send()
    )?;
    registered
        .task_definition()
        .and_then(|d| d.task_definition_arn())
        .map(str::to_string)
        .ok_or_else(|| AwsError::new("RegisterTaskDefinition", "no ARN in the answer"))
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// The service as it runs now: its task definition and desired count.
#[derive(Debug, Clone)]
pub struct Current {
    pub task_definition: String,
    pub desired: i32,
}

/// The service unless it does not exist (or was deleted: INACTIVE).
async fn describe(
    aws: &Aws,
    cluster: &str,
    service: &str,
) -> Result<Option<aws_sdk_ecs::types::Service>, AwsError> {
    let described = sdk!(
        "DescribeServices",
        aws.ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
    )?;
    Ok(described
        .services()
        .iter()
        .find(|s| s.status() != Some("INACTIVE"))
        .cloned())
}

pub async fn current_service(
    aws: &Aws,
    cluster: &str,
    service: &str,
) -> Result<Option<Current>, AwsError> {
    Ok(describe(aws, cluster, service).await?.map(|s| Current {
        task_definition: s.task_definition().unwrap_or_default().to_string(),
        desired: s.desired_count(),
    }))
}

/// Everything about the ECS service techctl sets, besides the revision.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub cluster: String,
    pub name: String,
    pub desired: i32,
    pub subnets: Vec<String>,
    pub security_group: String,
    pub target_group_arn: String,
    pub container: String,
    pub port: u16,
    pub stack: String,
}

impl ServiceSettings {
    pub fn from_stack(
        facts: &StackFacts,
        service: &str,
        desired: u32,
        port: u16,
        stack: &str,
    ) -> Result<ServiceSettings, AwsError> {
        let text = |key: &str| -> Result<String, AwsError> {
            facts
                .secret
                .get(key)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    AwsError::new(
                        "ReadStackOutputs",
                        format!("the stack secret has no {key}: run `techctl up` first"),
                    )
                })
        };
        let subnets = Outputs(facts.secret.clone()).list(out::PRIVATE_SUBNET_IDS);
        if subnets.is_empty() {
            return Err(AwsError::new(
                "ReadStackOutputs",
                "the stack secret names no private subnets: run `techctl up` first",
            ));
        }
        Ok(ServiceSettings {
            cluster: text(out::CLUSTER_NAME)?,
            name: service.to_string(),
            desired: i32::try_from(desired).unwrap_or(i32::MAX),
            subnets,
            security_group: text(&out::security_group_id("services"))?,
            target_group_arn: text(&Own::TargetGroupArn.of(service))?,
            container: service.to_string(),
            port,
            stack: stack.to_string(),
        })
    }

    pub fn network(&self) -> Result<NetworkConfiguration, AwsError> {
        let vpc = AwsVpcConfiguration::builder()
            .set_subnets(Some(self.subnets.clone()))
            .security_groups(&self.security_group)
            .assign_public_ip(AssignPublicIp::Disabled)
            .build()
            .map_err(|e| AwsError::new("CreateService", e.to_string()))?;
        Ok(NetworkConfiguration::builder()
            .awsvpc_configuration(vpc)
            .build())
    }

    fn deployment(&self) -> DeploymentConfiguration {
        let breaker = DeploymentCircuitBreaker::builder()
            .enable(true)
            .rollback(true)
            .build();
        DeploymentConfiguration::builder()
            .deployment_circuit_breaker(breaker)
            .minimum_healthy_percent(100)
            .maximum_percent(200)
            .build()
    }
}

/// Creates the service on `task_definition`, or moves it there; answers
/// whether anything changed.
pub async fn roll_out(
    aws: &Aws,
    settings: &ServiceSettings,
    task_definition: &str,
) -> Result<bool, AwsError> {
    match current_service(aws, &settings.cluster, &settings.name).await? {
        Some(current) if current.task_definition == task_definition => Ok(false),
        Some(_) => {
            sdk!(
                "UpdateService",
                aws.ecs
                    .update_service()
                    .cluster(&settings.cluster)
                    .service(&settings.name)
                    .task_definition(task_definition)
                    .deployment_configuration(settings.deployment())
                    .network_configuration(settings.network()?)
                    .health_check_grace_period_seconds(GRACE_PERIOD_SECONDS)
                    .send()
            )?;
            Ok(true)
        }
        None => {
            let balancer = LoadBalancer::builder()
                .target_group_arn(&settings.target_group_arn)
                .container_name(&settings.container)
                .container_port(i32::from(settings.port))
                .build();
            sdk!(
                "CreateService",
                aws.ecs
                    .create_service()
                    .cluster(&settings.cluster)
                    .service_name(&settings.name)
                    .task_definition(task_definition)
                    .desired_count(settings.desired)
                    .launch_type(LaunchType::Fargate)
                    .network_configuration(settings.network()?)
                    .load_balancers(balancer)
                    .health_check_grace_period_seconds(GRACE_PERIOD_SECONDS)
                    .deployment_configuration(settings.deployment())
                    .propagate_tags(PropagateTags::Service)
                    .enable_ecs_managed_tags(true)
                    .tags(tag("techctl:stack", &settings.stack))
                    .send()
            )?;
            Ok(true)
        }
    }
}

/// Puts the service back on `task_definition` (a failed rollout's undo).
pub async fn roll_back(
    aws: &Aws,
    settings: &ServiceSettings,
    task_definition: &str,
) -> Result<(), AwsError> {
    sdk!(
        "UpdateService",
        aws.ecs
            .update_service()
            .cluster(&settings.cluster)
            .service(&settings.name)
            .task_definition(task_definition)
            .send()
    )?;
    Ok(())
}

/// The scalable target (the blueprint's min and max tasks) and a CPU
/// target-tracking policy.
pub async fn ensure_scaling(
    aws: &Aws,
    settings: &ServiceSettings,
    min: u32,
    max: u32,
) -> Result<(), AwsError> {
    let resource = format!("service/{}/{}", settings.cluster, settings.name);
    let as_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
    retry_passing(SCALING_SETTLE_DEADLINE, scaling_not_ready, || async {
        sdk!(
            "RegisterScalableTarget",
            aws.autoscaling
                .register_scalable_target()
                .service_namespace(ServiceNamespace::Ecs)
                .resource_id(&resource)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .min_capacity(as_i32(min))
                .max_capacity(as_i32(max))
                .send()
        )
    })
    .await?;
    let metric = PredefinedMetricSpecification::builder()
        .predefined_metric_type(MetricType::EcsServiceAverageCpuUtilization)
        .build()
        .map_err(|e| AwsError::new("PutScalingPolicy", e.to_string()))?;
    let tracking = TargetTrackingScalingPolicyConfiguration::builder()
        .target_value(CPU_TARGET_PERCENT)
        .predefined_metric_specification(metric)
        .scale_in_cooldown(300)
        .scale_out_cooldown(60)
        .build()
        .map_err(|e| AwsError::new("PutScalingPolicy", e.to_string()))?;
    retry_passing(SCALING_SETTLE_DEADLINE, scaling_not_ready, || async {
        sdk!(
            "PutScalingPolicy",
            aws.autoscaling
                .put_scaling_policy()
                .policy_name(scaling_policy_name(settings))
                .service_namespace(ServiceNamespace::Ecs)
                .resource_id(&resource)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .policy_type(PolicyType::TargetTrackingScaling)
                .target_tracking_scaling_policy_configuration(tracking.clone())
                .send()
        )
    })
    .await?;
    Ok(())
}

/// How long Application Auto Scaling may take to know a service ECS has
/// just created.
const SCALING_SETTLE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(120);

/// Application Auto Scaling's answers right after `CreateService`, or while
/// another change to the same target is under way: worth asking again.
fn scaling_not_ready(e: &AwsError) -> bool {
    match e.code.as_deref() {
        Some("ObjectNotFoundException" | "ConcurrentUpdateException") => true,
        Some("ValidationException") => {
            let m = e.message.to_ascii_lowercase();
            m.contains("does not exist") || m.contains("doesn't exist") || m.contains("not found")
        }
        _ => false,
    }
}

pub fn scaling_policy_name(settings: &ServiceSettings) -> String {
    format!("{}-{}-cpu", settings.stack, settings.name)
}

/// One look at the service for the rollout watcher.
pub async fn snapshot(aws: &Aws, cluster: &str, service: &str) -> Result<Snapshot, AwsError> {
    let Some(current) = describe(aws, cluster, service).await? else {
        return Ok(Snapshot::default());
    };
    let deployments = current
        .deployments()
        .iter()
        .map(|d| Deployment {
            id: d.id().unwrap_or_default().to_string(),
            status: d.status().unwrap_or_default().to_string(),
            task_definition: d.task_definition().unwrap_or_default().to_string(),
            desired: d.desired_count(),
            running: d.running_count(),
            pending: d.pending_count(),
            failed_tasks: d.failed_tasks(),
            rollout_state: d
                .rollout_state()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            rollout_reason: d.rollout_state_reason().unwrap_or_default().to_string(),
        })
        .collect();
    let events = current
        .events()
        .iter()
        .take(20)
        .map(|e| {
            (
                e.id().unwrap_or_default().to_string(),
                e.message().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let stopped_arns = sdk!(
        "ListTasks",
        aws.ecs
            .list_tasks()
            .cluster(cluster)
            .service_name(service)
            .desired_status(DesiredStatus::Stopped)
            .send()
    )?
    .task_arns()
    .to_vec();
    let mut stopped = Vec::new();
    if !stopped_arns.is_empty() {
        let tasks = sdk!(
            "DescribeTasks",
            aws.ecs
                .describe_tasks()
                .cluster(cluster)
                .set_tasks(Some(stopped_arns))
                .send()
        )?;
        for task in tasks.tasks() {
            let exits: BTreeMap<String, String> = task
                .containers()
                .iter()
                .filter_map(|c| {
                    let code = c.exit_code()?;
                    Some((
                        c.name().unwrap_or_default().to_string(),
                        format!(
                            "exit code {code}{}",
                            c.reason().map(|r| format!(": {r}")).unwrap_or_default()
                        ),
                    ))
                })
                .collect();
            let mut reason = task.stopped_reason().unwrap_or("stopped").to_string();
            if !exits.is_empty() {
                reason.push_str(&format!(
                    " ({})",
                    exits.values().cloned().collect::<Vec<_>>().join("; ")
                ));
            }
            stopped.push(StoppedTask {
                arn: task.task_arn().unwrap_or_default().to_string(),
                task_definition: task.task_definition_arn().unwrap_or_default().to_string(),
                reason,
            });
        }
    }
    Ok(Snapshot {
        deployments,
        events,
        stopped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(code: &str, message: &str) -> AwsError {
        AwsError {
            code: Some(code.to_string()),
            ..AwsError::new("RegisterScalableTarget", message)
        }
    }

    #[test]
    fn auto_scaling_s_passing_answers_are_asked_again_and_others_are_not() {
        for passing in [
            answered(
                "ValidationException",
                "ECS service doesn't exist: service/shop/order",
            ),
            answered("ValidationException", "The service does not exist"),
            answered("ObjectNotFoundException", "No scalable target registered"),
            answered("ConcurrentUpdateException", "another update is in progress"),
        ] {
            assert!(scaling_not_ready(&passing), "{passing:?}");
        }
        for real in [
            answered(
                "ValidationException",
                "Maximum capacity cannot be less than minimum capacity",
            ),
            answered(
                "AccessDeniedException",
                "not authorized to perform RegisterScalableTarget",
            ),
            answered("LimitExceededException", "too many scalable targets"),
        ] {
            assert!(!scaling_not_ready(&real), "{real:?}");
        }
    }
}
