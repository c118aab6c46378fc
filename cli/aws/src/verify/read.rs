//! Reads the [`Snapshot`] `techctl verify` evaluates, from AWS alone.
//!
//! The stack outputs (in the stack secret) name the VPC, the ALB, the API,
//! the database and, per service, its roles, target group, repository, log
//! group, topic and queues. A service that runs on ECS is read from its
//! ECS service and task definition instead — what its tasks really run
//! with. One that is not deployed yet gets what `techctl deploy` will give
//! it, which is what the outputs name (the services security group, the
//! private subnets, the target group's port): so verify answers right
//! after `up`, before any deploy, and again after.
//!
//! Everything else — rules, routes, NAT gateways, endpoints, listener
//! rules, policies — is read as AWS holds it, including what techctl did
//! not make (a rule or a policy added by hand).

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_ec2::types::{Filter, IpPermission, NatGatewayState, RouteState, Tag, VpcEndpointType};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::{Map, Value};

use crate::verify::snapshot::*;
use crate::{Aws, AwsError, TAG_ID, TAG_STACK, all_pages};
use engine::plan::expand::{role_path, secret_name};
use engine::plan::outputs::{self as out, Outputs, Own};

/// AWS's name for the current version of a secret.
const CURRENT: &str = "AWSCURRENT";

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|t| t.key() == Some(key))
        .and_then(|t| t.value())
}

/// A missing resource reads as absent; anything else is an error.
fn absent<T>(result: Result<T, AwsError>) -> Result<Option<T>, AwsError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Everything verify evaluates, read from AWS.
pub async fn snapshot(aws: &Aws, stack: &str) -> Result<Snapshot, AwsError> {
    let mut snap = Snapshot {
        stack: stack.to_string(),
        region: aws.region.clone(),
        ..Snapshot::default()
    };
    let (secret_arn, outputs) = read_outputs(aws, stack).await?;
    snap.secret_arn = secret_arn;
    snap.signing_keys_arn = outputs.text(out::SIGNING_KEYS_SECRET_ARN);
    snap.public_keys_arn = outputs.text(out::PUBLIC_KEYS_SECRET_ARN);
    snap.db_init_role_arn = outputs.text(out::DB_INIT_ROLE_ARN);

    snap.vpc_id = match outputs.text(out::VPC_ID) {
        Some(vpc) => Some(vpc),
        None => tagged_vpc(aws, stack).await?,
    };
    let vpc = snap.vpc_id.clone().unwrap_or_default();
    let alb = outputs.text(out::ALB_ARN);
    let api = outputs.text(out::API_ID);
    let db = outputs.text(out::DB_INSTANCE_ID);
    let cluster = outputs
        .text(out::CLUSTER_NAME)
        .unwrap_or_else(|| stack.to_string());
    // Boxed: the SDK's futures are large, and side by side they would
    // overflow a worker thread's stack.
    let (network, balancer, gateway, target_groups, database, ecs) = tokio::try_join!(
        Box::pin(read_network(aws, &vpc)),
        Box::pin(read_load_balancer(aws, alb.as_deref())),
        Box::pin(read_gateway(
            aws,
            api.as_deref(),
            outputs.text(out::VPC_LINK_ID)
        )),
        Box::pin(read_target_groups(aws, &vpc)),
        Box::pin(read_database(aws, db.as_deref())),
        Box::pin(read_ecs_services(aws, &cluster)),
    )?;
    if !vpc.is_empty() {
        let (subnets, tables, igws, nats, endpoints, groups) = network;
        snap.subnets = subnets;
        snap.route_tables = tables;
        snap.internet_gateways = igws;
        snap.nat_gateways = nats;
        snap.vpc_endpoints = endpoints;
        snap.security_groups = groups;
    }
    snap.load_balancer = balancer;
    (snap.api, snap.vpc_links) = gateway;
    snap.target_groups = target_groups;
    snap.database = database;

    for key in outputs.services() {
        let deployed = ecs
            .iter()
            .find(|(name, _, _)| name.replace('-', "_") == key);
        let service = match deployed {
            Some((name, service, definition)) => {
                from_ecs(aws, &outputs, &key, name, service, definition).await?
            }
            None => from_outputs(aws, &outputs, &key, &snap.target_groups).await?,
        };
        snap.services.push(service);
    }

    let referenced: BTreeSet<String> = snap
        .services
        .iter()
        .flat_map(|s| [s.task_role_arn.clone(), s.execution_role_arn.clone()])
        .chain([snap.db_init_role_arn.clone()])
        .flatten()
        .collect();
    snap.roles = read_roles(aws, stack, &referenced).await?;
    snap.deploy_role = read_role(aws, &blueprint::names::deploy_role(stack)).await?;
    Ok(snap)
}

async fn read_outputs(aws: &Aws, stack: &str) -> Result<(Option<String>, Outputs), AwsError> {
    let answer = sdk!(
        "GetSecretValue",
        aws.secrets
            .get_secret_value()
            .secret_id(secret_name(stack))
            .version_stage(CURRENT)
            .send()
    );
    let answer = match answer {
        Ok(a) => a,
        // Gone, or scheduled for deletion: no outputs to go by.
        Err(e) if e.is_not_found() || e.code.as_deref() == Some("InvalidRequestException") => {
            return Ok((None, Outputs(Map::new())));
        }
        Err(e) => return Err(e),
    };
    let map = match answer
        .secret_string()
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
    {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    Ok((answer.arn().map(str::to_string), Outputs(map)))
}

async fn tagged_vpc(aws: &Aws, stack: &str) -> Result<Option<String>, AwsError> {
    let answer = sdk!(
        "DescribeVpcs",
        aws.ec2
            .describe_vpcs()
            .filters(filter(&format!("tag:{TAG_STACK}"), stack))
            .send()
    )?;
    Ok(answer
        .vpcs()
        .first()
        .and_then(|v| v.vpc_id())
        .map(str::to_string))
}

type Network = (
    Vec<Subnet>,
    Vec<RouteTable>,
    Vec<String>,
    Vec<NatGateway>,
    Vec<VpcEndpoint>,
    Vec<SecurityGroup>,
);

async fn read_network(aws: &Aws, vpc: &str) -> Result<Network, AwsError> {
    if vpc.is_empty() {
        return Ok(Default::default());
    }
    let ec2 = &aws.ec2;
    let in_vpc = || filter("vpc-id", vpc);
    let (subnets, tables, igws, nats, endpoints, groups) = tokio::try_join!(
        async {
            sdk!(
                "DescribeSubnets",
                ec2.describe_subnets().filters(in_vpc()).send()
            )
        },
        async {
            sdk!(
                "DescribeRouteTables",
                ec2.describe_route_tables().filters(in_vpc()).send()
            )
        },
        async {
            sdk!(
                "DescribeInternetGateways",
                ec2.describe_internet_gateways()
                    .filters(filter("attachment.vpc-id", vpc))
                    .send()
            )
        },
        all_pages(|token| async move {
            let page = sdk!(
                "DescribeNatGateways",
                ec2.describe_nat_gateways()
                    .filter(filter("vpc-id", vpc))
                    .set_next_token(token)
                    .send()
            )?;
            Ok((
                page.nat_gateways().to_vec(),
                page.next_token().map(str::to_string),
            ))
        }),
        all_pages(|token| async move {
            let page = sdk!(
                "DescribeVpcEndpoints",
                ec2.describe_vpc_endpoints()
                    .filters(filter("vpc-id", vpc))
                    .set_next_token(token)
                    .send()
            )?;
            Ok((
                page.vpc_endpoints().to_vec(),
                page.next_token().map(str::to_string),
            ))
        }),
        async {
            sdk!(
                "DescribeSecurityGroups",
                ec2.describe_security_groups().filters(in_vpc()).send()
            )
        },
    )?;

    let subnets = subnets
        .subnets()
        .iter()
        .filter_map(|s| {
            Some(Subnet {
                id: s.subnet_id()?.to_string(),
                cidr: s.cidr_block().unwrap_or_default().to_string(),
            })
        })
        .collect();
    let tables = tables
        .route_tables()
        .iter()
        .filter_map(|t| {
            let id = t.route_table_id()?.to_string();
            Some(RouteTable {
                name: tag(t.tags(), TAG_ID)
                    .map(|n| n.trim_start_matches("network/route-table/").to_string())
                    .unwrap_or_else(|| id.clone()),
                id,
                main: t.associations().iter().any(|a| a.main() == Some(true)),
                subnets: t
                    .associations()
                    .iter()
                    .filter_map(|a| a.subnet_id())
                    .map(str::to_string)
                    .collect(),
                routes: t.routes().iter().filter_map(route).collect(),
            })
        })
        .collect();
    let igws = igws
        .internet_gateways()
        .iter()
        .filter_map(|g| g.internet_gateway_id())
        .map(str::to_string)
        .collect();
    let nats = nats
        .iter()
        .filter(|n| n.vpc_id().is_none_or(|v| v == vpc))
        .filter(|n| n.state() != Some(&NatGatewayState::Deleted))
        .filter_map(|n| {
            Some(NatGateway {
                id: n.nat_gateway_id()?.to_string(),
                subnet: n.subnet_id().unwrap_or_default().to_string(),
                state: n
                    .state()
                    .map(|s| s.as_str().to_ascii_lowercase())
                    .unwrap_or_default(),
            })
        })
        .collect();
    let endpoints = endpoints
        .iter()
        .filter(|e| e.vpc_id().is_none_or(|v| v == vpc))
        .filter_map(|e| {
            Some(VpcEndpoint {
                id: e.vpc_endpoint_id()?.to_string(),
                service_name: e.service_name().unwrap_or_default().to_string(),
                kind: match e.vpc_endpoint_type() {
                    Some(VpcEndpointType::Interface) => EndpointKind::Interface,
                    Some(VpcEndpointType::Gateway) => EndpointKind::Gateway,
                    other => EndpointKind::Other(
                        other.map(|k| k.as_str().to_string()).unwrap_or_default(),
                    ),
                },
                state: e
                    .state()
                    .map(|s| s.as_str().to_ascii_lowercase())
                    .unwrap_or_default(),
                private_dns: e.private_dns_enabled().unwrap_or(false),
                subnets: e.subnet_ids().to_vec(),
                route_tables: e.route_table_ids().to_vec(),
                security_groups: e
                    .groups()
                    .iter()
                    .filter_map(|g| g.group_id())
                    .map(str::to_string)
                    .collect(),
            })
        })
        .collect();
    let groups = groups
        .security_groups()
        .iter()
        .filter_map(|g| {
            Some(SecurityGroup {
                id: g.group_id()?.to_string(),
                name: g.group_name().unwrap_or_default().to_string(),
                role: tag(g.tags(), TAG_ID)
                    .and_then(|t| t.strip_prefix("network/security-group/"))
                    .map(str::to_string),
                in_stack: tag(g.tags(), TAG_STACK).is_some(),
                ingress: rules(g.ip_permissions()),
                egress: rules(g.ip_permissions_egress()),
            })
        })
        .collect();
    Ok((subnets, tables, igws, nats, endpoints, groups))
}

fn route(r: &aws_sdk_ec2::types::Route) -> Option<Route> {
    let destination = if let Some(c) = r.destination_cidr_block() {
        Destination::Cidr(c.to_string())
    } else if let Some(c) = r.destination_ipv6_cidr_block() {
        Destination::Cidr(c.to_string())
    } else {
        Destination::PrefixList(r.destination_prefix_list_id()?.to_string())
    };
    let target = match (r.nat_gateway_id(), r.gateway_id()) {
        (Some(nat), _) => RouteTarget::NatGateway(nat.to_string()),
        (None, Some("local")) => RouteTarget::Local,
        (None, Some(g)) if g.starts_with("igw-") => RouteTarget::InternetGateway(g.to_string()),
        (None, Some(g)) if g.starts_with("vpce-") => RouteTarget::VpcEndpoint(g.to_string()),
        (None, Some(g)) => RouteTarget::Other(g.to_string()),
        (None, None) => RouteTarget::Other(
            r.network_interface_id()
                .or(r.transit_gateway_id())
                .or(r.vpc_peering_connection_id())
                .or(r.instance_id())
                .unwrap_or("unknown")
                .to_string(),
        ),
    };
    Some(Route {
        destination,
        target,
        active: r.state() != Some(&RouteState::Blackhole),
    })
}

/// AWS's permissions (one per protocol and range, several peers each) as
/// one rule per peer.
fn rules(permissions: &[IpPermission]) -> Vec<SgRule> {
    let mut out = Vec::new();
    for p in permissions {
        let protocol = p.ip_protocol().unwrap_or("-1").to_ascii_lowercase();
        let (from_port, to_port) = if protocol == "-1" {
            (-1, -1)
        } else {
            (p.from_port().unwrap_or(-1), p.to_port().unwrap_or(-1))
        };
        let mut push = |peer: Peer| {
            out.push(SgRule {
                protocol: protocol.clone(),
                from_port,
                to_port,
                peer,
            })
        };
        for pair in p.user_id_group_pairs() {
            if let Some(g) = pair.group_id() {
                push(Peer::Group(g.to_string()));
            }
        }
        for range in p.ip_ranges() {
            if let Some(c) = range.cidr_ip() {
                push(Peer::Cidr(c.to_string()));
            }
        }
        for range in p.ipv6_ranges() {
            if let Some(c) = range.cidr_ipv6() {
                push(Peer::Cidr(c.to_string()));
            }
        }
        for list in p.prefix_list_ids() {
            if let Some(id) = list.prefix_list_id() {
                push(Peer::PrefixList(id.to_string()));
            }
        }
    }
    out
}

async fn read_load_balancer(
    aws: &Aws,
    arn: Option<&str>,
) -> Result<Option<LoadBalancer>, AwsError> {
    let Some(arn) = arn else { return Ok(None) };
    let elb = &aws.elb;
    let Some(found) = absent(sdk!(
        "DescribeLoadBalancers",
        elb.describe_load_balancers().load_balancer_arns(arn).send()
    ))?
    else {
        return Ok(None);
    };
    let Some(b) = found.load_balancers().first() else {
        return Ok(None);
    };
    let listeners = sdk!(
        "DescribeListeners",
        elb.describe_listeners().load_balancer_arn(arn).send()
    )?;
    let mut out = LoadBalancer {
        arn: arn.to_string(),
        name: b.load_balancer_name().unwrap_or_default().to_string(),
        internal: b
            .scheme()
            .is_some_and(|s| s.as_str().eq_ignore_ascii_case("internal")),
        security_groups: b.security_groups().to_vec(),
        subnets: b
            .availability_zones()
            .iter()
            .filter_map(|z| z.subnet_id())
            .map(str::to_string)
            .collect(),
        listeners: Vec::new(),
    };
    for l in listeners.listeners() {
        let Some(listener_arn) = l.listener_arn() else {
            continue;
        };
        let rules = all_pages(|marker| async move {
            let page = sdk!(
                "DescribeRules",
                elb.describe_rules()
                    .listener_arn(listener_arn)
                    .set_marker(marker)
                    .send()
            )?;
            Ok((
                page.rules().to_vec(),
                page.next_marker().map(str::to_string),
            ))
        })
        .await?;
        out.listeners.push(Listener {
            arn: listener_arn.to_string(),
            port: l.port().and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
            rules: rules
                .iter()
                .map(|r| {
                    let mut paths = Vec::new();
                    let mut other_conditions = 0;
                    for c in r.conditions() {
                        if c.field() == Some("path-pattern") {
                            match c.path_pattern_config() {
                                Some(config) if !config.values().is_empty() => {
                                    paths.extend(config.values().iter().cloned())
                                }
                                _ => paths.extend(c.values().iter().cloned()),
                            }
                        } else {
                            other_conditions += 1;
                        }
                    }
                    let forward_to = r
                        .actions()
                        .iter()
                        .filter(|a| a.r#type().is_some_and(|t| t.as_str() == "forward"))
                        .flat_map(|a| {
                            let mut arns: Vec<String> = a
                                .target_group_arn()
                                .into_iter()
                                .map(str::to_string)
                                .collect();
                            if let Some(config) = a.forward_config() {
                                arns.extend(
                                    config
                                        .target_groups()
                                        .iter()
                                        .filter_map(|t| t.target_group_arn())
                                        .map(str::to_string),
                                );
                            }
                            arns
                        })
                        .collect::<BTreeSet<_>>()
                        .into_iter()
                        .collect();
                    ListenerRule {
                        arn: r.rule_arn().unwrap_or_default().to_string(),
                        priority: if r.is_default() == Some(true) {
                            None
                        } else {
                            r.priority().and_then(|p| p.parse().ok())
                        },
                        path_patterns: paths,
                        other_conditions,
                        forward_to,
                    }
                })
                .collect(),
        });
    }
    Ok(Some(out))
}

async fn read_target_groups(aws: &Aws, vpc: &str) -> Result<Vec<TargetGroup>, AwsError> {
    let elb = &aws.elb;
    let groups = all_pages(|marker| async move {
        let page = sdk!(
            "DescribeTargetGroups",
            elb.describe_target_groups().set_marker(marker).send()
        )?;
        Ok((
            page.target_groups().to_vec(),
            page.next_marker().map(str::to_string),
        ))
    })
    .await?;
    Ok(groups
        .iter()
        .filter(|g| g.vpc_id() == Some(vpc))
        .filter_map(|g| {
            Some(TargetGroup {
                arn: g.target_group_arn()?.to_string(),
                name: g.target_group_name().unwrap_or_default().to_string(),
                port: g.port().and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
                vpc_id: vpc.to_string(),
            })
        })
        .collect())
}

async fn read_gateway(
    aws: &Aws,
    api_id: Option<&str>,
    link_output: Option<String>,
) -> Result<(Option<HttpApi>, Vec<VpcLink>), AwsError> {
    let gw = &aws.apigw;
    let mut api = None;
    if let Some(api_id) = api_id {
        let routes = absent(
            all_pages(|token| async move {
                let page = sdk!(
                    "GetRoutes",
                    gw.get_routes().api_id(api_id).set_next_token(token).send()
                )?;
                Ok((page.items().to_vec(), page.next_token().map(str::to_string)))
            })
            .await,
        )?;
        let integrations = absent(
            all_pages(|token| async move {
                let page = sdk!(
                    "GetIntegrations",
                    gw.get_integrations()
                        .api_id(api_id)
                        .set_next_token(token)
                        .send()
                )?;
                Ok((page.items().to_vec(), page.next_token().map(str::to_string)))
            })
            .await,
        )?;
        if let (Some(routes), Some(integrations)) = (routes, integrations) {
            api = Some(HttpApi {
                id: api_id.to_string(),
                routes: routes
                    .iter()
                    .map(|r| ApiRoute {
                        id: r.route_id().unwrap_or_default().to_string(),
                        key: r.route_key().unwrap_or_default().to_string(),
                        target: r.target().map(str::to_string),
                    })
                    .collect(),
                integrations: integrations
                    .iter()
                    .map(|i| Integration {
                        id: i.integration_id().unwrap_or_default().to_string(),
                        integration_type: i
                            .integration_type()
                            .map(|t| t.as_str().to_string())
                            .unwrap_or_default(),
                        connection_type: i
                            .connection_type()
                            .map(|t| t.as_str().to_string())
                            .unwrap_or_else(|| "INTERNET".to_string()),
                        connection_id: i.connection_id().map(str::to_string),
                        uri: i.integration_uri().map(str::to_string),
                    })
                    .collect(),
            });
        }
    }
    let mut wanted: BTreeSet<String> = link_output.into_iter().collect();
    if let Some(api) = &api {
        wanted.extend(
            api.integrations
                .iter()
                .filter_map(|i| i.connection_id.clone()),
        );
    }
    if wanted.is_empty() {
        return Ok((api, Vec::new()));
    }
    let links = all_pages(|token| async move {
        let page = sdk!(
            "GetVpcLinks",
            gw.get_vpc_links().set_next_token(token).send()
        )?;
        Ok((page.items().to_vec(), page.next_token().map(str::to_string)))
    })
    .await?;
    let links = links
        .iter()
        .filter(|l| l.vpc_link_id().is_some_and(|id| wanted.contains(id)))
        .map(|l| VpcLink {
            id: l.vpc_link_id().unwrap_or_default().to_string(),
            status: l
                .vpc_link_status()
                .map(|s| s.as_str().to_string())
                .unwrap_or_default(),
            security_groups: l.security_group_ids().to_vec(),
            subnets: l.subnet_ids().to_vec(),
        })
        .collect();
    Ok((api, links))
}

async fn read_database(aws: &Aws, id: Option<&str>) -> Result<Option<Database>, AwsError> {
    let Some(id) = id else { return Ok(None) };
    let Some(found) = absent(sdk!(
        "DescribeDBInstances",
        aws.rds
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
    ))?
    else {
        return Ok(None);
    };
    Ok(found.db_instances().first().map(|db| Database {
        id: id.to_string(),
        port: db
            .endpoint()
            .and_then(|e| e.port())
            .or(db.db_instance_port().filter(|p| *p != 0))
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or(0),
        security_groups: db
            .vpc_security_groups()
            .iter()
            .filter_map(|g| g.vpc_security_group_id())
            .map(str::to_string)
            .collect(),
        subnets: db
            .db_subnet_group()
            .map(|g| {
                g.subnets()
                    .iter()
                    .filter_map(|s| s.subnet_identifier())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        publicly_accessible: db.publicly_accessible().unwrap_or(false),
    }))
}

type Deployed = (
    String,
    aws_sdk_ecs::types::Service,
    aws_sdk_ecs::types::TaskDefinition,
);

/// The cluster's active services with their current task definitions.
async fn read_ecs_services(aws: &Aws, cluster: &str) -> Result<Vec<Deployed>, AwsError> {
    let ecs = &aws.ecs;
    let listed = absent(
        all_pages(|token| async move {
            let page = sdk!(
                "ListServices",
                ecs.list_services()
                    .cluster(cluster)
                    .set_next_token(token)
                    .send()
            )?;
            Ok((
                page.service_arns().to_vec(),
                page.next_token().map(str::to_string),
            ))
        })
        .await,
    )?
    .unwrap_or_default();
    let mut out = Vec::new();
    // DescribeServices takes at most 10 services at a time.
    for chunk in listed.chunks(10) {
        let answer = sdk!(
            "DescribeServices",
            ecs.describe_services()
                .cluster(cluster)
                .set_services(Some(chunk.to_vec()))
                .send()
        )?;
        for service in answer.services() {
            if service.status() != Some("ACTIVE") {
                continue;
            }
            let (Some(name), Some(definition)) =
                (service.service_name(), service.task_definition())
            else {
                continue;
            };
            let described = sdk!(
                "DescribeTaskDefinition",
                ecs.describe_task_definition()
                    .task_definition(definition)
                    .send()
            )?;
            if let Some(definition) = described.task_definition() {
                out.push((name.to_string(), service.clone(), definition.clone()));
            }
        }
    }
    Ok(out)
}

/// A service as ECS runs it.
async fn from_ecs(
    aws: &Aws,
    outputs: &Outputs,
    key: &str,
    name: &str,
    service: &aws_sdk_ecs::types::Service,
    definition: &aws_sdk_ecs::types::TaskDefinition,
) -> Result<Service, AwsError> {
    let balancer = service.load_balancers().first();
    let container = definition
        .container_definitions()
        .iter()
        .find(|c| {
            balancer
                .and_then(|b| b.container_name())
                .is_none_or(|n| c.name() == Some(n))
        })
        .or(definition.container_definitions().first());
    let env: BTreeMap<&str, &str> = container
        .map(|c| {
            c.environment()
                .iter()
                .filter_map(|kv| Some((kv.name()?, kv.value()?)))
                .collect()
        })
        .unwrap_or_default();
    let network = service
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration());
    let port = balancer
        .and_then(|b| b.container_port())
        .or_else(|| {
            container
                .and_then(|c| c.port_mappings().first())
                .and_then(|p| p.container_port())
        })
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(0);
    let log_group = container
        .and_then(|c| c.log_configuration())
        .and_then(|l| l.options())
        .and_then(|o| o.get("awslogs-group"))
        .cloned();
    let image = container.and_then(|c| c.image()).map(str::to_string);
    let topic = env.get("EVENTS_TOPIC_ARN").map(|s| s.to_string());
    let queue_url = env.get("EVENTS_QUEUE_URL").map(|s| s.to_string());
    let dlq_url = env.get("EVENTS_DLQ_URL").map(|s| s.to_string());
    Ok(Service {
        name: name.to_string(),
        source: ServiceSource::EcsService,
        port,
        task_role_arn: definition.task_role_arn().map(str::to_string),
        execution_role_arn: definition.execution_role_arn().map(str::to_string),
        security_groups: network
            .map(|n| n.security_groups().to_vec())
            .unwrap_or_default(),
        subnets: network.map(|n| n.subnets().to_vec()).unwrap_or_default(),
        assign_public_ip: network
            .and_then(|n| n.assign_public_ip())
            .is_some_and(|a| a.as_str() == "ENABLED"),
        target_group_arn: balancer
            .and_then(|b| b.target_group_arn())
            .map(str::to_string),
        repository_arn: match image {
            Some(image) => repository_arn(aws, &image).await?,
            None => None,
        },
        log_group_arn: match log_group {
            Some(group) => log_group_arn(aws, &group).await?,
            None => None,
        },
        topic_arn: topic.or_else(|| outputs.text(&format!("{key}_topic_arn"))),
        queue_arn: queue_arn(aws, queue_url.or_else(|| outputs.own(key, Own::QueueUrl))).await?,
        dead_letter_queue_arn: queue_arn(
            aws,
            dlq_url.or_else(|| outputs.own(key, Own::DeadLetterQueueUrl)),
        )
        .await?,
        secret_arn: outputs.own(key, Own::SecretArn),
    })
}

/// A service not deployed yet, as `techctl deploy` will run it.
async fn from_outputs(
    aws: &Aws,
    outputs: &Outputs,
    key: &str,
    target_groups: &[TargetGroup],
) -> Result<Service, AwsError> {
    let text = |what: Own| outputs.own(key, what);
    let target_group_arn = text(Own::TargetGroupArn);
    let port = target_groups
        .iter()
        .find(|g| Some(&g.arn) == target_group_arn.as_ref())
        .map_or(0, |g| g.port);
    Ok(Service {
        name: key.to_string(),
        source: ServiceSource::StackOutputs,
        port,
        task_role_arn: text(Own::TaskRoleArn),
        execution_role_arn: outputs.text(out::TASK_EXECUTION_ROLE_ARN),
        security_groups: outputs
            .text(&out::security_group_id("services"))
            .into_iter()
            .collect(),
        subnets: outputs.list(out::PRIVATE_SUBNET_IDS),
        assign_public_ip: false,
        target_group_arn,
        repository_arn: match text(Own::RepositoryUri) {
            Some(uri) => repository_arn(aws, &uri).await?,
            None => None,
        },
        log_group_arn: match text(Own::LogGroup) {
            Some(group) => log_group_arn(aws, &group).await?,
            None => None,
        },
        topic_arn: text(Own::TopicArn),
        queue_arn: queue_arn(aws, text(Own::QueueUrl)).await?,
        dead_letter_queue_arn: queue_arn(aws, text(Own::DeadLetterQueueUrl)).await?,
        secret_arn: text(Own::SecretArn),
    })
}

/// The repository an image or repository URI names
/// (`HOST/NAME`, `HOST/NAME:TAG`, `HOST/NAME@sha256:…`).
fn repository_name(image: &str) -> Option<&str> {
    let (_, path) = image.split_once('/')?;
    let path = path.split_once('@').map_or(path, |(p, _)| p);
    Some(match path.rsplit_once(':') {
        Some((p, tag)) if !tag.contains('/') => p,
        _ => path,
    })
}

async fn repository_arn(aws: &Aws, image: &str) -> Result<Option<String>, AwsError> {
    let Some(name) = repository_name(image) else {
        return Ok(None);
    };
    let found = absent(sdk!(
        "DescribeRepositories",
        aws.ecr
            .describe_repositories()
            .repository_names(name)
            .send()
    ))?;
    Ok(found.and_then(|f| {
        f.repositories()
            .first()
            .and_then(|r| r.repository_arn())
            .map(str::to_string)
    }))
}

async fn log_group_arn(aws: &Aws, name: &str) -> Result<Option<String>, AwsError> {
    let found = sdk!(
        "DescribeLogGroups",
        aws.logs
            .describe_log_groups()
            .log_group_name_prefix(name)
            .send()
    )?;
    Ok(found
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(name))
        .and_then(|g| g.arn())
        .map(str::to_string))
}

/// A queue's ARN from its URL: asked of SQS, or (for a queue that is
/// gone) spelled from the URL, so its permissions are still checked.
async fn queue_arn(aws: &Aws, url: Option<String>) -> Result<Option<String>, AwsError> {
    let Some(url) = url else { return Ok(None) };
    let answer = absent(sdk!(
        "GetQueueAttributes",
        aws.sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
    ))?;
    let asked = answer.and_then(|a| {
        a.attributes()
            .and_then(|m| m.get(&QueueAttributeName::QueueArn))
            .cloned()
    });
    Ok(asked.or_else(|| {
        let mut parts = url.trim_end_matches('/').rsplit('/');
        let name = parts.next()?;
        let account = parts.next()?;
        Some(format!("arn:aws:sqs:{}:{account}:{name}", aws.region))
    }))
}

/// IAM hands policy documents back URL-encoded.
fn decode(text: &str) -> Value {
    iam::document_json(text)
}

/// The stack's roles (by their IAM path) and any other role a service runs
/// with, each with its trust policy and every inline and attached policy.
async fn read_roles(
    aws: &Aws,
    stack: &str,
    referenced: &BTreeSet<String>,
) -> Result<Vec<Role>, AwsError> {
    let iam = &aws.iam;
    let prefix = role_path(stack);
    let mut names: BTreeSet<String> = all_pages(|marker| {
        let prefix = prefix.clone();
        async move {
            let page = sdk!(
                "ListRoles",
                iam.list_roles()
                    .path_prefix(prefix)
                    .set_marker(marker)
                    .send()
            )?;
            Ok((
                page.roles()
                    .iter()
                    .map(|r| r.role_name().to_string())
                    .collect(),
                page.marker()
                    .filter(|_| page.is_truncated())
                    .map(str::to_string),
            ))
        }
    })
    .await?
    .into_iter()
    .collect();
    names.extend(
        referenced
            .iter()
            .filter_map(|arn| arn.rsplit('/').next())
            .map(str::to_string),
    );
    let mut roles = Vec::new();
    for name in names {
        roles.extend(read_role(aws, &name).await?);
    }
    Ok(roles)
}

/// One role with its trust policy and every inline and attached policy;
/// `None` if it does not exist.
pub async fn read_role(aws: &Aws, name: &str) -> Result<Option<Role>, AwsError> {
    let iam = &aws.iam;
    let name = name.to_string();
    {
        let Some(answer) = absent(sdk!("GetRole", iam.get_role().role_name(&name).send()))? else {
            return Ok(None);
        };
        let Some(role) = answer.role() else {
            return Ok(None);
        };
        let mut policies = Vec::new();
        let inline = all_pages(|marker| {
            let name = name.clone();
            async move {
                let page = sdk!(
                    "ListRolePolicies",
                    iam.list_role_policies()
                        .role_name(name)
                        .set_marker(marker)
                        .send()
                )?;
                Ok((
                    page.policy_names().to_vec(),
                    page.marker()
                        .filter(|_| page.is_truncated())
                        .map(str::to_string),
                ))
            }
        })
        .await?;
        for policy in inline {
            let document = sdk!(
                "GetRolePolicy",
                iam.get_role_policy()
                    .role_name(&name)
                    .policy_name(&policy)
                    .send()
            )?;
            policies.push(Policy {
                name: format!("inline {policy}"),
                document: decode(document.policy_document()),
            });
        }
        let attached = all_pages(|marker| {
            let name = name.clone();
            async move {
                let page = sdk!(
                    "ListAttachedRolePolicies",
                    iam.list_attached_role_policies()
                        .role_name(name)
                        .set_marker(marker)
                        .send()
                )?;
                Ok((
                    page.attached_policies().to_vec(),
                    page.marker()
                        .filter(|_| page.is_truncated())
                        .map(str::to_string),
                ))
            }
        })
        .await?;
        for policy in attached {
            let Some(arn) = policy.policy_arn() else {
                continue;
            };
            if let Some(read) = managed_policy(aws, arn, "managed").await? {
                policies.push(read);
            }
        }
        let boundary_arn = role
            .permissions_boundary()
            .and_then(|b| b.permissions_boundary_arn())
            .map(str::to_string);
        let boundary = match &boundary_arn {
            Some(arn) => managed_policy(aws, arn, "boundary").await?,
            None => None,
        };
        Ok(Some(Role {
            name: role.role_name().to_string(),
            arn: role.arn().to_string(),
            path: role.path().to_string(),
            trust_policy: role
                .assume_role_policy_document()
                .map(decode)
                .unwrap_or(Value::Null),
            policies,
            boundary,
            boundary_arn,
        }))
    }
}

/// A managed policy's default version, named `<how> <arn>`; `None` when
/// it is gone.
async fn managed_policy(aws: &Aws, arn: &str, how: &str) -> Result<Option<Policy>, AwsError> {
    let iam = &aws.iam;
    let Some(described) = absent(sdk!("GetPolicy", iam.get_policy().policy_arn(arn).send()))?
    else {
        return Ok(None);
    };
    let Some(version) = described.policy().and_then(|p| p.default_version_id()) else {
        return Ok(None);
    };
    let version = sdk!(
        "GetPolicyVersion",
        iam.get_policy_version()
            .policy_arn(arn)
            .version_id(version)
            .send()
    )?;
    Ok(Some(Policy {
        name: format!("{how} {arn}"),
        document: version
            .policy_version()
            .and_then(|v| v.document())
            .map(decode)
            .unwrap_or(Value::Null),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_named_by_image_or_uri() {
        let host = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
        assert_eq!(
            repository_name(&format!("{host}/shop/order")),
            Some("shop/order")
        );
        assert_eq!(
            repository_name(&format!("{host}/shop/order:latest")),
            Some("shop/order")
        );
        assert_eq!(
            repository_name(&format!("{host}/shop/order@sha256:abc")),
            Some("shop/order")
        );
        assert_eq!(
            repository_name("localhost:5000/shop/order:v1"),
            Some("shop/order")
        );
    }

    #[test]
    fn policy_documents_are_read_encoded_or_not() {
        let plain = r#"{"Statement":{"Effect":"Allow","Action":"sns:Publish","Resource":"*"}}"#;
        let encoded = "%7B%22Statement%22%3A%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%22sns%3APublish%22%2C%22Resource%22%3A%22%2A%22%7D%7D";
        assert_eq!(decode(plain), decode(encoded));
        assert_eq!(decode(plain)["Statement"]["Action"], "sns:Publish");
    }
}
