//! The HTTP API in front of the system: the API with its CORS answer, the
//! VPC link into the private subnets, the integration that proxies every
//! request over the link to the ALB listener, the route `$default` (every
//! path, the root included) and the auto-deployed `$default` stage.
//!
//! Integrations and routes carry no tags; they are known by the API they
//! live in. Their physical ids are `API_ID/ID`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use apigw::types::{ConnectionType, Cors as AwsCors, IntegrationType, ProtocolType, VpcLinkStatus};
use aws_sdk_apigatewayv2 as apigw;

use super::{Aws, AwsError, all_pages, in_stack, observed};
use crate::{Ctx, RetryInUse, Step};
use engine::clock::AwsClock;
use engine::plan::expand::{API_ROUTE_KEY, LEGACY_API_ROUTE_KEY, ids};
use engine::plan::resource::{Cors, Throttle};
use engine::plan::{Kind, LogicalId, Observed, Resource, Spec};

const AVAILABLE_DEADLINE: Duration = Duration::from_secs(20 * 60);
const GONE_DEADLINE: Duration = Duration::from_secs(20 * 60);
const IN_USE_DEADLINE: Duration = Duration::from_secs(5 * 60);
const DEFAULT_STAGE: &str = "$default";

fn tag_map(tags: Option<&HashMap<String, String>>) -> BTreeMap<String, String> {
    super::tag_map(
        tags.into_iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
}

/// `API_ID/ID` → (`API_ID`, `ID`).
fn split(physical: &str) -> (&str, &str) {
    physical.split_once('/').unwrap_or((physical, ""))
}

fn aws_cors(cors: &Cors) -> AwsCors {
    AwsCors::builder()
        .set_allow_origins(Some(cors.allow_origins.iter().cloned().collect()))
        .set_allow_methods(Some(cors.allow_methods.iter().cloned().collect()))
        .set_allow_headers(Some(cors.allow_headers.iter().cloned().collect()))
        .max_age(cors.max_age_seconds)
        .build()
}

pub async fn observe(aws: &Aws, stack: &str) -> Result<Vec<Observed>, AwsError> {
    let gw = &aws.apigw;
    let apis = all_pages(|token| async move {
        let page = sdk!("GetApis", gw.get_apis().set_next_token(token).send())?;
        Ok((page.items().to_vec(), page.next_token().map(str::to_string)))
    })
    .await?;
    let links = all_pages(|token| async move {
        let page = sdk!(
            "GetVpcLinks",
            gw.get_vpc_links().set_next_token(token).send()
        )?;
        Ok((page.items().to_vec(), page.next_token().map(str::to_string)))
    })
    .await?;

    let mut out = Vec::new();
    for link in &links {
        let tags = tag_map(link.tags());
        let Some(id) = link.vpc_link_id().filter(|_| in_stack(&tags, stack)) else {
            continue;
        };
        let spec = Spec::VpcLink {
            name: link.name().unwrap_or_default().to_string(),
            subnets: link
                .subnet_ids()
                .iter()
                .map(|s| LogicalId::foreign(s))
                .collect(),
            security_groups: link
                .security_group_ids()
                .iter()
                .map(|s| LogicalId::foreign(s))
                .collect(),
        };
        let state = link
            .vpc_link_status()
            .map(|s| s.as_str().to_ascii_lowercase());
        out.push(observed(id, tags, spec, state));
    }
    for api in &apis {
        let tags = tag_map(api.tags());
        let Some(api_id) = api.api_id().filter(|_| in_stack(&tags, stack)) else {
            continue;
        };
        let cors = api.cors_configuration();
        let spec = Spec::HttpApi {
            name: api.name().unwrap_or_default().to_string(),
            cors: Cors {
                allow_origins: cors
                    .map(|c| c.allow_origins().iter().cloned().collect())
                    .unwrap_or_default(),
                allow_methods: cors
                    .map(|c| c.allow_methods().iter().cloned().collect())
                    .unwrap_or_default(),
                allow_headers: cors
                    .map(|c| c.allow_headers().iter().cloned().collect())
                    .unwrap_or_default(),
                max_age_seconds: cors.and_then(|c| c.max_age()).unwrap_or(0),
            },
        };
        out.push(
            observed(api_id, tags, spec, None)
                .with_attribute("endpoint", api.api_endpoint().unwrap_or_default()),
        );
        out.extend(observe_inside(aws, api_id).await?);
    }
    Ok(out)
}

/// The integrations, routes and stages of one of the stack's APIs.
async fn observe_inside(aws: &Aws, api_id: &str) -> Result<Vec<Observed>, AwsError> {
    let gw = &aws.apigw;
    let (integrations, routes, stages) = tokio::try_join!(
        async {
            sdk!(
                "GetIntegrations",
                gw.get_integrations().api_id(api_id).send()
            )
        },
        async { sdk!("GetRoutes", gw.get_routes().api_id(api_id).send()) },
        async { sdk!("GetStages", gw.get_stages().api_id(api_id).send()) },
    )?;
    let api = LogicalId::foreign(api_id);
    let untracked = |what: &str, id: &str| {
        LogicalId::new(&[
            "untracked",
            &format!("{api_id}-{what}-{id}").to_ascii_lowercase(),
        ])
    };
    let mut out = Vec::new();
    for i in integrations.items() {
        let Some(id) = i.integration_id() else {
            continue;
        };
        let logical = if i.connection_type() == Some(&ConnectionType::VpcLink) {
            ids::integration()
        } else {
            untracked("integration", id)
        };
        out.push(Observed {
            id: logical,
            physical_id: format!("{api_id}/{id}"),
            spec: Spec::Integration {
                api: api.clone(),
                vpc_link: LogicalId::foreign(i.connection_id().unwrap_or_default()),
                listener: LogicalId::foreign(i.integration_uri().unwrap_or_default()),
            },
            tags: BTreeMap::new(),
            state: None,
            attributes: BTreeMap::new(),
        });
    }
    for r in routes.items() {
        let Some(id) = r.route_id() else { continue };
        let key = r.route_key().unwrap_or_default();
        let logical = if key == API_ROUTE_KEY || key == LEGACY_API_ROUTE_KEY {
            ids::api_route()
        } else {
            untracked("route", id)
        };
        let target = r
            .target()
            .and_then(|t| t.strip_prefix("integrations/"))
            .map(|t| format!("{api_id}/{t}"))
            .unwrap_or_default();
        out.push(Observed {
            id: logical,
            physical_id: format!("{api_id}/{id}"),
            spec: Spec::ApiRoute {
                api: api.clone(),
                route_key: key.to_string(),
                integration: LogicalId::foreign(&target),
            },
            tags: BTreeMap::new(),
            state: None,
            attributes: BTreeMap::new(),
        });
    }
    for s in stages.items() {
        let name = s.stage_name().unwrap_or_default();
        let tags = tag_map(s.tags());
        let mut stage = observed(
            &format!("{api_id}/{name}"),
            tags,
            Spec::ApiStage {
                api: api.clone(),
                name: name.to_string(),
                auto_deploy: s.auto_deploy().unwrap_or(false),
                throttle: {
                    let settings = s.default_route_settings();
                    Throttle {
                        rate_per_second: settings
                            .and_then(|r| r.throttling_rate_limit())
                            .map_or(0, |r| r.round() as u32),
                        burst: settings
                            .and_then(|r| r.throttling_burst_limit())
                            .map_or(0, |b| b.max(0) as u32),
                    }
                },
            },
            None,
        );
        if name == DEFAULT_STAGE {
            stage.id = ids::api_stage();
        }
        out.push(stage);
    }
    Ok(out)
}

fn no_id(call: &'static str) -> AwsError {
    AwsError::new(call, "no id in the answer")
}

pub async fn create(ctx: &Ctx<'_>, step: &Step, resource: &Resource) -> Result<String, AwsError> {
    let gw = &ctx.aws.apigw;
    let tags: HashMap<String, String> = ctx.tags(&resource.id).into_iter().collect();
    let lookup = || super::find(observe(ctx.aws, &ctx.stack), &resource.id);
    match &resource.spec {
        Spec::VpcLink {
            name,
            subnets,
            security_groups,
        } => {
            let subnets = ctx.resolve_all(subnets)?;
            let groups = ctx.resolve_all(security_groups)?;
            let id = ctx
                .aws
                .create_once(
                    || async {
                        sdk!(
                            "CreateVpcLink",
                            gw.create_vpc_link()
                                .name(name)
                                .set_subnet_ids(Some(subnets.clone()))
                                .set_security_group_ids(Some(groups.clone()))
                                .set_tags(Some(tags.clone()))
                                .customize()
                                .config_override(no_retry!(apigw))
                                .send()
                        )?
                        .vpc_link_id()
                        .map(str::to_string)
                        .ok_or_else(|| no_id("CreateVpcLink"))
                    },
                    lookup,
                )
                .await?;
            wait_link_available(ctx, step, &id).await?;
            Ok(id)
        }
        Spec::HttpApi { name, cors } => {
            let id = ctx
                .aws
                .create_once(
                    || async {
                        let answer = sdk!(
                            "CreateApi",
                            gw.create_api()
                                .name(name)
                                .protocol_type(ProtocolType::Http)
                                .cors_configuration(aws_cors(cors))
                                .set_tags(Some(tags.clone()))
                                .customize()
                                .config_override(no_retry!(apigw))
                                .send()
                        )?;
                        let id = answer.api_id().ok_or_else(|| no_id("CreateApi"))?;
                        ctx.remember_attribute(
                            &resource.id,
                            "endpoint",
                            answer.api_endpoint().unwrap_or_default(),
                        );
                        Ok(id.to_string())
                    },
                    lookup,
                )
                .await?;
            if ctx.attribute(&resource.id, "endpoint").is_err() {
                let api = sdk!("GetApi", gw.get_api().api_id(&id).send())?;
                ctx.remember_attribute(
                    &resource.id,
                    "endpoint",
                    api.api_endpoint().unwrap_or_default(),
                );
            }
            Ok(id)
        }
        Spec::Integration {
            api,
            vpc_link,
            listener,
        } => {
            let api_id = ctx.resolve(api)?;
            let link = ctx.resolve(vpc_link)?;
            let listener = ctx.resolve(listener)?;
            ctx.aws
                .create_once(
                    || async {
                        sdk!(
                            "CreateIntegration",
                            gw.create_integration()
                                .api_id(&api_id)
                                .integration_type(IntegrationType::HttpProxy)
                                .connection_type(ConnectionType::VpcLink)
                                .connection_id(&link)
                                .integration_method("ANY")
                                .integration_uri(&listener)
                                .payload_format_version("1.0")
                                .customize()
                                .config_override(no_retry!(apigw))
                                .send()
                        )?
                        .integration_id()
                        .map(|id| format!("{api_id}/{id}"))
                        .ok_or_else(|| no_id("CreateIntegration"))
                    },
                    lookup,
                )
                .await
        }
        Spec::ApiRoute {
            api,
            route_key,
            integration,
        } => {
            let api_id = ctx.resolve(api)?;
            let target = format!("integrations/{}", split(&ctx.resolve(integration)?).1);
            ctx.aws
                .create_once(
                    || async {
                        sdk!(
                            "CreateRoute",
                            gw.create_route()
                                .api_id(&api_id)
                                .route_key(route_key)
                                .target(&target)
                                .customize()
                                .config_override(no_retry!(apigw))
                                .send()
                        )?
                        .route_id()
                        .map(|id| format!("{api_id}/{id}"))
                        .ok_or_else(|| no_id("CreateRoute"))
                    },
                    lookup,
                )
                .await
        }
        Spec::ApiStage {
            api,
            name,
            auto_deploy,
            throttle,
        } => {
            let api_id = ctx.resolve(api)?;
            let created = sdk!(
                "CreateStage",
                gw.create_stage()
                    .api_id(&api_id)
                    .stage_name(name)
                    .auto_deploy(*auto_deploy)
                    .default_route_settings(route_settings(throttle))
                    .set_tags(Some(tags.clone()))
                    .send()
            );
            match created {
                Ok(_) => Ok(format!("{api_id}/{name}")),
                // A stage is known by its name: one left by an interrupted
                // run is this one.
                Err(e) if e.code.as_deref() == Some("ConflictException") => {
                    let physical = format!("{api_id}/{name}");
                    update(ctx, step, resource, &physical).await?;
                    Ok(physical)
                }
                Err(e) => Err(e),
            }
        }
        _ => Err(AwsError::new("create", "not an API Gateway resource")),
    }
}

/// The ARN API Gateway tags a resource by.
fn tag_arn(region: &str, path: &str) -> String {
    format!("arn:aws:apigateway:{region}::{path}")
}

pub async fn update(
    ctx: &Ctx<'_>,
    step: &Step,
    resource: &Resource,
    physical: &str,
) -> Result<(), AwsError> {
    let gw = &ctx.aws.apigw;
    let region = &ctx.aws.region;
    let tagged = match &resource.spec {
        Spec::VpcLink { .. } => {
            // Still pending (an interrupted `up`): available before the
            // integration that goes through it.
            wait_link_available(ctx, step, physical).await?;
            Some(tag_arn(region, &format!("/vpclinks/{physical}")))
        }
        Spec::HttpApi { name, cors } => {
            sdk!(
                "UpdateApi",
                gw.update_api()
                    .api_id(physical)
                    .name(name)
                    .cors_configuration(aws_cors(cors))
                    .send()
            )?;
            Some(tag_arn(region, &format!("/apis/{physical}")))
        }
        Spec::Integration {
            vpc_link, listener, ..
        } => {
            let (api_id, id) = split(physical);
            sdk!(
                "UpdateIntegration",
                gw.update_integration()
                    .api_id(api_id)
                    .integration_id(id)
                    .connection_id(ctx.resolve(vpc_link)?)
                    .integration_uri(ctx.resolve(listener)?)
                    .send()
            )?;
            None
        }
        Spec::ApiRoute {
            integration,
            route_key,
            ..
        } => {
            // The key is changed in place (a stack made with
            // `ANY /{proxy+}` gets `$default`): a replacement would leave
            // the API without a route between the delete and the create.
            let (api_id, id) = split(physical);
            let target = format!("integrations/{}", split(&ctx.resolve(integration)?).1);
            sdk!(
                "UpdateRoute",
                gw.update_route()
                    .api_id(api_id)
                    .route_id(id)
                    .route_key(route_key)
                    .target(target)
                    .send()
            )?;
            None
        }
        Spec::ApiStage {
            auto_deploy,
            throttle,
            ..
        } => {
            let (api_id, name) = split(physical);
            sdk!(
                "UpdateStage",
                gw.update_stage()
                    .api_id(api_id)
                    .stage_name(name)
                    .auto_deploy(*auto_deploy)
                    .default_route_settings(route_settings(throttle))
                    .send()
            )?;
            Some(tag_arn(region, &format!("/apis/{api_id}/stages/{name}")))
        }
        _ => return Err(AwsError::new("update", "not an API Gateway resource")),
    };
    if let Some(arn) = tagged {
        let tags: HashMap<String, String> = ctx.tags(&resource.id).into_iter().collect();
        sdk!(
            "TagResource",
            gw.tag_resource()
                .resource_arn(arn)
                .set_tags(Some(tags))
                .send()
        )?;
    }
    Ok(())
}

pub async fn delete(ctx: &Ctx<'_>, step: &Step, observed: &Observed) -> Result<(), AwsError> {
    let gw = &ctx.aws.apigw;
    let physical = observed.physical_id.as_str();
    let (api_id, id) = split(physical);
    match &observed.spec {
        Spec::ApiRoute { .. } => super::gone(
            sdk!(
                "DeleteRoute",
                gw.delete_route().api_id(api_id).route_id(id).send()
            )
            .map(|_| ()),
        ),
        Spec::ApiStage { .. } => super::gone(
            sdk!(
                "DeleteStage",
                gw.delete_stage().api_id(api_id).stage_name(id).send()
            )
            .map(|_| ()),
        ),
        Spec::Integration { .. } => {
            step.retry_dependency(
                "the routes to let go of the integration",
                IN_USE_DEADLINE,
                || async {
                    sdk!(
                        "DeleteIntegration",
                        gw.delete_integration()
                            .api_id(api_id)
                            .integration_id(id)
                            .send()
                    )
                    .map(|_| ())
                },
            )
            .await
        }
        Spec::HttpApi { .. } => {
            super::gone(sdk!("DeleteApi", gw.delete_api().api_id(physical).send()).map(|_| ()))
        }
        Spec::VpcLink { .. } => {
            step.retry_dependency(
                "the integrations to let go of the VPC link",
                IN_USE_DEADLINE,
                || async {
                    sdk!(
                        "DeleteVpcLink",
                        gw.delete_vpc_link().vpc_link_id(physical).send()
                    )
                    .map(|_| ())
                },
            )
            .await?;
            // Until it is gone it holds network interfaces in the private
            // subnets and its security group.
            step.wait_for_state(
                "the VPC link to be deleted",
                ctx.pace(AwsClock::typical().delete(Kind::VpcLink), GONE_DEADLINE),
                || async {
                    match sdk!("GetVpcLink", gw.get_vpc_link().vpc_link_id(physical).send()) {
                        Ok(link) => Ok(Err(link
                            .vpc_link_status()
                            .map(|s| s.as_str().to_ascii_lowercase()))),
                        Err(e) if e.is_not_found() => Ok(Ok(())),
                        Err(e) => Err(e),
                    }
                },
            )
            .await
        }
        _ => Err(AwsError::new("delete", "not an API Gateway resource")),
    }
}

async fn wait_link_available(ctx: &Ctx<'_>, step: &Step, id: &str) -> Result<(), AwsError> {
    step.wait_for_state(
        "the VPC link to become available",
        ctx.pace(
            AwsClock::typical().create(Kind::VpcLink),
            AVAILABLE_DEADLINE,
        ),
        || async {
            let link = sdk!(
                "GetVpcLink",
                ctx.aws.apigw.get_vpc_link().vpc_link_id(id).send()
            )?;
            match link.vpc_link_status() {
                Some(VpcLinkStatus::Available) => Ok(Ok(())),
                Some(VpcLinkStatus::Failed) => Err(AwsError::new(
                    "CreateVpcLink",
                    format!(
                        "VPC link {id} failed: {}",
                        link.vpc_link_status_message().unwrap_or("no reason given")
                    ),
                )),
                other => Ok(Err(other.map(|s| s.as_str().to_ascii_lowercase()))),
            }
        },
    )
    .await
}

/// Every route's throttling, as the stage's default route settings.
fn route_settings(throttle: &Throttle) -> aws_sdk_apigatewayv2::types::RouteSettings {
    aws_sdk_apigatewayv2::types::RouteSettings::builder()
        .throttling_rate_limit(f64::from(throttle.rate_per_second))
        .throttling_burst_limit(i32::try_from(throttle.burst).unwrap_or(i32::MAX))
        .build()
}
