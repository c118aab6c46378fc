//! The strict proxy against a real moto server: each test sends the raw
//! requests an AWS SDK sends (query, JSON and REST protocols) and checks
//! what a client would notice: refused as AWS refuses, then accepted once
//! AWS would have caught up or the dependant is gone.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use testkit::proxy::{Fault, Seen};
use testkit::{FaultProxy, Moto, Strictness};

/// Long enough that a request right after a create still falls inside it
/// while a dozen moto servers start on a busy machine; the tests wait it
/// out to see the request accepted.
const WINDOW: Duration = Duration::from_secs(5);

async fn moto() -> Moto {
    tokio::task::spawn_blocking(Moto::start)
        .await
        .expect("start moto")
}

async fn strict(strictness: Strictness) -> (Moto, FaultProxy, Aws) {
    let moto = moto().await;
    let proxy = FaultProxy::start_strict(&moto.url, strictness).await;
    let aws = Aws::new(&proxy.url);
    (moto, proxy, aws)
}

/// A new HTTP API's id.
async fn http_api(aws: &Aws, name: &str) -> String {
    aws.api_gateway(
        Method::POST,
        "/v2/apis",
        Some(json!({ "name": name, "protocolType": "HTTP" })),
    )
    .await
    .expect_ok("CreateApi")
    .json()["apiId"]
        .as_str()
        .expect("api id")
        .to_string()
}

/// Strictness with the EC2 propagation window off, for tests about
/// something else that build EC2 resources step by step.
fn settled() -> Strictness {
    Strictness {
        ec2_propagation: Duration::ZERO,
        ..Strictness::new().windows(WINDOW)
    }
}

/// An AWS client that speaks raw HTTP, signed with a fixed key: moto reads
/// the service and region from the Authorization header, not the signature.
struct Aws {
    client: Client<HttpConnector, Full<Bytes>>,
    url: String,
    /// The access key requests are signed with.
    key: String,
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The error code as the SDKs read it: SQS's query-compatible header,
    /// then `x-amzn-errortype`, then the XML `<Code>`, then JSON `__type`.
    fn code(&self) -> String {
        let header = |name: &str| self.headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(value) = header("x-amzn-query-error") {
            return value.split(';').next().unwrap_or_default().to_string();
        }
        if let Some(value) = header("x-amzn-errortype") {
            return value.split(':').next().unwrap_or_default().to_string();
        }
        if let Some(code) = self.xml("Code") {
            return code;
        }
        let kind = self.json()["__type"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        kind.rsplit('#').next().unwrap_or_default().to_string()
    }

    /// The text of the first `<tag>` of an XML answer.
    fn xml(&self, tag: &str) -> Option<String> {
        let start = self.body.find(&format!("<{tag}>"))? + tag.len() + 2;
        let end = start + self.body[start..].find(&format!("</{tag}>"))?;
        Some(self.body[start..end].to_string())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    #[track_caller]
    fn expect_ok(self, what: &str) -> Answer {
        assert!(
            self.ok(),
            "{what} should pass, got {}: {}",
            self.status,
            self.body
        );
        self
    }

    #[track_caller]
    fn expect_refused(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code().as_str()),
            (status, code),
            "expected {status} {code}, got: {}",
            self.body
        );
    }
}

impl Aws {
    fn new(url: &str) -> Aws {
        Aws::with_key(url, "AKIDTESTING")
    }

    /// A client signing with `key` (credentials STS handed out).
    fn with_key(url: &str, key: &str) -> Aws {
        Aws {
            client: Client::builder(TokioExecutor::new()).build_http(),
            url: url.to_string(),
            key: key.to_string(),
        }
    }

    async fn iam(&self, action: &str, params: &[(&str, &str)]) -> Answer {
        self.query("iam", "2010-05-08", action, params).await
    }

    async fn sts(&self, action: &str, params: &[(&str, &str)]) -> Answer {
        self.query("sts", "2011-06-15", action, params).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        service: &str,
        headers: &[(&str, &str)],
        body: String,
    ) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/20240101/us-east-1/{service}/aws4_request, \
                     SignedHeaders=host, Signature=0",
                    self.key
                ),
            );
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(Bytes::from(body))).expect("request");
        let answer = self.client.request(request).await.expect("send");
        let (parts, body) = answer.into_parts();
        let body = body.collect().await.expect("answer body").to_bytes();
        Answer {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    /// A query-protocol call (EC2, ELBv2, RDS, IAM, SNS).
    async fn query(
        &self,
        service: &str,
        version: &str,
        action: &str,
        params: &[(&str, &str)],
    ) -> Answer {
        let mut form = format!("Action={action}&Version={version}");
        for (key, value) in params {
            form.push_str(&format!("&{}={}", encode(key), encode(value)));
        }
        let content_type = (
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        );
        self.send(Method::POST, "/", service, &[content_type], form)
            .await
    }

    async fn ec2(&self, action: &str, params: &[(&str, &str)]) -> Answer {
        self.query("ec2", "2016-11-15", action, params).await
    }

    async fn elb(&self, action: &str, params: &[(&str, &str)]) -> Answer {
        self.query("elasticloadbalancing", "2015-12-01", action, params)
            .await
    }

    async fn rds(&self, action: &str, params: &[(&str, &str)]) -> Answer {
        self.query("rds", "2014-10-31", action, params).await
    }

    /// A JSON-protocol call: `target` is the X-Amz-Target header.
    async fn json(&self, service: &str, target: &str, body: Value) -> Answer {
        let content_type = if target.starts_with("AmazonSQS.") {
            "application/x-amz-json-1.0"
        } else {
            "application/x-amz-json-1.1"
        };
        let headers = [("x-amz-target", target), ("content-type", content_type)];
        self.send(Method::POST, "/", service, &headers, body.to_string())
            .await
    }

    async fn ecs(&self, operation: &str, body: Value) -> Answer {
        let target = format!("AmazonEC2ContainerServiceV20141113.{operation}");
        self.json("ecs", &target, body).await
    }

    async fn scaling(&self, operation: &str, body: Value) -> Answer {
        let target = format!("AnyScaleFrontendService.{operation}");
        self.json("application-autoscaling", &target, body).await
    }

    async fn sqs(&self, operation: &str, body: Value) -> Answer {
        self.json("sqs", &format!("AmazonSQS.{operation}"), body)
            .await
    }

    async fn secrets(&self, operation: &str, body: Value) -> Answer {
        self.json(
            "secretsmanager",
            &format!("secretsmanager.{operation}"),
            body,
        )
        .await
    }

    /// An API Gateway v2 (REST-JSON) call.
    async fn api_gateway(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers = [("content-type", "application/json")];
        self.send(method, path, "apigateway", &headers, body).await
    }

    /// A VPC with `subnets` subnets in different zones; returns the VPC id
    /// and the subnet ids.
    async fn network(&self, subnets: usize) -> (String, Vec<String>) {
        let vpc = self
            .ec2("CreateVpc", &[("CidrBlock", "10.0.0.0/16")])
            .await
            .expect_ok("CreateVpc")
            .xml("vpcId")
            .expect("vpc id");
        let mut ids = Vec::new();
        for (i, zone) in ["us-east-1a", "us-east-1b", "us-east-1c"]
            .iter()
            .take(subnets)
            .enumerate()
        {
            let cidr = format!("10.0.{i}.0/24");
            let subnet = self
                .ec2(
                    "CreateSubnet",
                    &[
                        ("VpcId", &vpc),
                        ("CidrBlock", &cidr),
                        ("AvailabilityZone", zone),
                    ],
                )
                .await
                .expect_ok("CreateSubnet")
                .xml("subnetId")
                .expect("subnet id");
            ids.push(subnet);
        }
        (vpc, ids)
    }

    /// A subnet a Fargate task can run in: moto names a task's interface
    /// only in a VPC with DNS host names.
    async fn task_subnet(&self) -> String {
        let (vpc, subnets) = self.network(1).await;
        self.ec2(
            "ModifyVpcAttribute",
            &[("VpcId", &vpc), ("EnableDnsHostnames.Value", "true")],
        )
        .await
        .expect_ok("ModifyVpcAttribute");
        subnets[0].clone()
    }

    /// A new queue's URL.
    async fn queue(&self, name: &str) -> String {
        self.sqs("CreateQueue", json!({ "QueueName": name }))
            .await
            .expect_ok("CreateQueue")
            .json()["QueueUrl"]
            .as_str()
            .expect("queue url")
            .to_string()
    }

    /// A cluster with one service of `desired` tasks, and its family.
    async fn ecs_service(&self, cluster: &str, service: &str, desired: u32) {
        self.ecs("CreateCluster", json!({ "clusterName": cluster }))
            .await
            .expect_ok("CreateCluster");
        let task = json!({
            "family": service,
            "containerDefinitions": [{ "name": "app", "image": "nginx", "memory": 128 }],
        });
        self.ecs("RegisterTaskDefinition", task)
            .await
            .expect_ok("RegisterTaskDefinition");
        let service = json!({
            "cluster": cluster,
            "serviceName": service,
            "taskDefinition": service,
            "desiredCount": desired,
        });
        self.ecs("CreateService", service)
            .await
            .expect_ok("CreateService");
    }

    async fn security_group(&self, vpc: &str, name: &str) -> String {
        self.ec2(
            "CreateSecurityGroup",
            &[
                ("VpcId", vpc),
                ("GroupName", name),
                ("GroupDescription", name),
            ],
        )
        .await
        .expect_ok("CreateSecurityGroup")
        .xml("groupId")
        .expect("group id")
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn new_ec2_ids_are_unknown_to_writes_until_they_propagate() {
    let (_moto, proxy, aws) = strict(Strictness::new().windows(WINDOW)).await;
    let vpc = aws
        .ec2("CreateVpc", &[("CidrBlock", "10.0.0.0/16")])
        .await
        .expect_ok("CreateVpc")
        .xml("vpcId")
        .expect("vpc id");

    let tag = [
        ("ResourceId.1", vpc.as_str()),
        ("Tag.1.Key", "Name"),
        ("Tag.1.Value", "web"),
    ];
    let tagged = aws.ec2("CreateTags", &tag).await;
    tagged.expect_refused(400, "InvalidVpcID.NotFound");
    assert!(tagged.xml("Message").unwrap_or_default().contains(&vpc));
    aws.ec2(
        "CreateSubnet",
        &[("VpcId", &vpc), ("CidrBlock", "10.0.1.0/24")],
    )
    .await
    .expect_refused(400, "InvalidVpcID.NotFound");
    let gateway = aws
        .ec2("CreateInternetGateway", &[])
        .await
        .expect_ok("CreateInternetGateway")
        .xml("internetGatewayId")
        .expect("gateway id");
    aws.ec2(
        "AttachInternetGateway",
        &[("InternetGatewayId", &gateway), ("VpcId", &vpc)],
    )
    .await
    .expect_refused(400, "InvalidInternetGatewayID.NotFound");

    // Reads see the new VPC; the refused writes never reached moto.
    let described = aws
        .ec2("DescribeVpcs", &[("VpcId.1", &vpc)])
        .await
        .expect_ok("DescribeVpcs");
    assert!(described.body.contains(&vpc));
    let tags = aws
        .ec2(
            "DescribeTags",
            &[("Filter.1.Name", "resource-id"), ("Filter.1.Value.1", &vpc)],
        )
        .await
        .expect_ok("DescribeTags");
    assert!(
        !tags.body.contains("web"),
        "a refused CreateTags tagged: {}",
        tags.body
    );

    tokio::time::sleep(WINDOW).await;
    aws.ec2("CreateTags", &tag)
        .await
        .expect_ok("CreateTags after the window");
    aws.ec2(
        "AttachInternetGateway",
        &[("InternetGatewayId", &gateway), ("VpcId", &vpc)],
    )
    .await
    .expect_ok("AttachInternetGateway after the window");

    // Each kind of id answers with its own code.
    let table = aws
        .ec2("CreateRouteTable", &[("VpcId", &vpc)])
        .await
        .expect_ok("CreateRouteTable")
        .xml("routeTableId")
        .expect("route table id");
    aws.ec2(
        "CreateRoute",
        &[
            ("RouteTableId", &table),
            ("DestinationCidrBlock", "0.0.0.0/0"),
            ("GatewayId", &gateway),
        ],
    )
    .await
    .expect_refused(400, "InvalidRouteTableID.NotFound");
    let group = aws.security_group(&vpc, "web").await;
    let rule = [
        ("GroupId", group.as_str()),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "443"),
        ("IpPermissions.1.ToPort", "443"),
        ("IpPermissions.1.IpRanges.1.CidrIp", "0.0.0.0/0"),
    ];
    let authorized = aws.ec2("AuthorizeSecurityGroupIngress", &rule).await;
    authorized.expect_refused(400, "InvalidGroup.NotFound");
    assert_eq!(
        authorized.xml("Message").as_deref(),
        Some(format!("The security group '{group}' does not exist").as_str())
    );
    let address = aws
        .ec2("AllocateAddress", &[("Domain", "vpc")])
        .await
        .expect_ok("AllocateAddress")
        .xml("allocationId")
        .expect("allocation id");
    aws.ec2("ReleaseAddress", &[("AllocationId", &address)])
        .await
        .expect_refused(400, "InvalidAllocationID.NotFound");

    let refused: Vec<(String, String)> = proxy
        .strict_refusals()
        .into_iter()
        .map(|r| (r.operation, r.code))
        .collect();
    let expected = [
        ("CreateTags", "InvalidVpcID.NotFound"),
        ("CreateSubnet", "InvalidVpcID.NotFound"),
        ("AttachInternetGateway", "InvalidInternetGatewayID.NotFound"),
        ("CreateRoute", "InvalidRouteTableID.NotFound"),
        ("AuthorizeSecurityGroupIngress", "InvalidGroup.NotFound"),
        ("ReleaseAddress", "InvalidAllocationID.NotFound"),
    ];
    assert_eq!(
        refused,
        expected.map(|(o, c)| (o.to_string(), c.to_string()))
    );
    // Refused requests are in the log like any other.
    let log = proxy.operations();
    assert_eq!(log.iter().filter(|op| *op == "CreateTags").count(), 2);
}

#[tokio::test]
async fn a_new_ecs_service_is_unknown_to_auto_scaling_for_a_while() {
    let (_moto, proxy, aws) = strict(Strictness {
        ecs_linked_role_refusals: 0,
        ..Strictness::new().windows(WINDOW)
    })
    .await;
    aws.ecs_service("shop", "orders", 1).await;

    let target = json!({
        "ServiceNamespace": "ecs",
        "ResourceId": "service/shop/orders",
        "ScalableDimension": "ecs:service:DesiredCount",
        "MinCapacity": 1,
        "MaxCapacity": 4,
    });
    let policy = json!({
        "PolicyName": "cpu",
        "ServiceNamespace": "ecs",
        "ResourceId": "service/shop/orders",
        "ScalableDimension": "ecs:service:DesiredCount",
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": 60.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ECSServiceAverageCPUUtilization"
            }
        },
    });
    let registered = aws.scaling("RegisterScalableTarget", target.clone()).await;
    registered.expect_refused(400, "ValidationException");
    assert_eq!(registered.json()["__type"], "ValidationException");
    assert_eq!(
        registered.json()["message"],
        "ECS service doesn't exist: service/shop/orders"
    );
    aws.scaling("PutScalingPolicy", policy.clone())
        .await
        .expect_refused(400, "ValidationException");

    tokio::time::sleep(WINDOW).await;
    aws.scaling("RegisterScalableTarget", target)
        .await
        .expect_ok("RegisterScalableTarget after the window");
    aws.scaling("PutScalingPolicy", policy)
        .await
        .expect_ok("PutScalingPolicy after the window");
    let operations: Vec<String> = proxy
        .strict_refusals()
        .into_iter()
        .map(|r| r.operation)
        .collect();
    assert_eq!(operations, ["RegisterScalableTarget", "PutScalingPolicy"]);
}

#[tokio::test]
async fn the_first_ecs_cluster_waits_for_the_service_linked_role() {
    let (moto, proxy, aws) = strict(Strictness::new()).await;
    let first = aws
        .ecs("CreateCluster", json!({ "clusterName": "shop" }))
        .await;
    first.expect_refused(400, "InvalidParameterException");
    assert_eq!(
        first.json()["message"],
        "Unable to assume the service linked role. Please verify that the ECS service linked role exists."
    );
    let clusters = aws
        .ecs("ListClusters", json!({}))
        .await
        .expect_ok("ListClusters");
    assert_eq!(clusters.json()["clusterArns"], json!([]));
    aws.ecs("CreateCluster", json!({ "clusterName": "shop" }))
        .await
        .expect_ok("the second CreateCluster");
    assert_eq!(proxy.strict_refusals().len(), 1);

    // The number of refusals is configurable.
    let twice = FaultProxy::start_strict(
        &moto.url,
        Strictness {
            ecs_linked_role_refusals: 2,
            ..Strictness::new()
        },
    )
    .await;
    let aws = Aws::new(&twice.url);
    for _ in 0..2 {
        aws.ecs("CreateCluster", json!({ "clusterName": "admin" }))
            .await
            .expect_refused(400, "InvalidParameterException");
    }
    aws.ecs("CreateCluster", json!({ "clusterName": "admin" }))
        .await
        .expect_ok("the third CreateCluster");
}

#[tokio::test]
async fn message_and_log_calls_outside_their_bounds_are_refused() {
    let (_moto, proxy, aws) = strict(Strictness::new()).await;
    let url = aws.queue("letters").await;
    for (body, code) in [
        (
            json!({"QueueUrl": url, "MaxNumberOfMessages": 11}),
            "InvalidParameterValue",
        ),
        (
            json!({"QueueUrl": url, "VisibilityTimeout": 43_201}),
            "InvalidParameterValue",
        ),
        (
            json!({"QueueUrl": url, "WaitTimeSeconds": 21}),
            "InvalidParameterValue",
        ),
    ] {
        aws.sqs("ReceiveMessage", body)
            .await
            .expect_refused(400, code);
    }
    let entries: Vec<Value> = (0..11)
        .map(|i| json!({"Id": i.to_string(), "ReceiptHandle": "h", "VisibilityTimeout": 0}))
        .collect();
    aws.sqs(
        "ChangeMessageVisibilityBatch",
        json!({"QueueUrl": url, "Entries": entries}),
    )
    .await
    .expect_refused(400, "AWS.SimpleQueueService.TooManyEntriesInBatchRequest");
    aws.sqs(
        "ReceiveMessage",
        json!({"QueueUrl": url, "MaxNumberOfMessages": 10, "VisibilityTimeout": 300, "WaitTimeSeconds": 1}),
    )
    .await
    .expect_ok("ReceiveMessage within bounds");
    assert_eq!(proxy.strict_refusals().len(), 4);

    // A log filter past CloudWatch Logs' 1024 characters.
    let long = format!("\"{}\"", "x".repeat(1024));
    aws.json(
        "logs",
        "Logs_20140328.FilterLogEvents",
        json!({"logGroupName": "/ecs/anything", "filterPattern": long}),
    )
    .await
    .expect_refused(400, "InvalidParameterException");
}

#[tokio::test]
async fn a_deleted_queue_name_is_held_for_a_while() {
    let (_moto, proxy, aws) = strict(Strictness::new().windows(WINDOW)).await;
    let url = aws.queue("orders").await;
    aws.sqs("DeleteQueue", json!({ "QueueUrl": url }))
        .await
        .expect_ok("DeleteQueue");

    let again = aws
        .sqs("CreateQueue", json!({ "QueueName": "orders" }))
        .await;
    again.expect_refused(400, "AWS.SimpleQueueService.QueueDeletedRecently");
    assert_eq!(
        again.headers["x-amzn-query-error"],
        "AWS.SimpleQueueService.QueueDeletedRecently;Sender"
    );
    assert_eq!(
        again.json()["__type"],
        "com.amazonaws.sqs#QueueDeletedRecently"
    );
    assert_eq!(again.headers["content-type"], "application/x-amz-json-1.0");
    aws.sqs("CreateQueue", json!({ "QueueName": "payments" }))
        .await
        .expect_ok("a queue of another name");

    tokio::time::sleep(WINDOW).await;
    aws.sqs("CreateQueue", json!({ "QueueName": "orders" }))
        .await
        .expect_ok("CreateQueue after the window");
    assert_eq!(proxy.strict_refusals().len(), 1);
}

#[tokio::test]
async fn a_force_deleted_secret_name_is_held_for_a_while() {
    let (_moto, proxy, aws) = strict(Strictness::new().windows(WINDOW)).await;
    let secret = json!({ "Name": "stack/keys", "SecretString": "{}" });
    aws.secrets("CreateSecret", secret.clone())
        .await
        .expect_ok("CreateSecret");
    aws.secrets(
        "DeleteSecret",
        json!({ "SecretId": "stack/keys", "ForceDeleteWithoutRecovery": true }),
    )
    .await
    .expect_ok("DeleteSecret");

    let again = aws.secrets("CreateSecret", secret.clone()).await;
    again.expect_refused(400, "InvalidRequestException");
    assert_eq!(
        again.json()["message"],
        "You can't create this secret because a secret with this name is already scheduled for deletion."
    );

    tokio::time::sleep(WINDOW).await;
    aws.secrets("CreateSecret", secret)
        .await
        .expect_ok("CreateSecret after the window");
    assert_eq!(proxy.strict_refusals().len(), 1);
}

#[tokio::test]
async fn subnets_and_security_groups_are_not_deleted_while_in_use() {
    let (_moto, proxy, aws) = strict(settled()).await;
    let (vpc, subnets) = aws.network(2).await;
    let (a, b) = (&subnets[0], &subnets[1]);
    let web = aws.security_group(&vpc, "web").await;
    let db = aws.security_group(&vpc, "db").await;

    // A rule of `db` names `web`.
    let rule = [
        ("GroupId", db.as_str()),
        ("IpPermissions.1.IpProtocol", "tcp"),
        ("IpPermissions.1.FromPort", "5432"),
        ("IpPermissions.1.ToPort", "5432"),
        ("IpPermissions.1.Groups.1.GroupId", web.as_str()),
    ];
    aws.ec2("AuthorizeSecurityGroupIngress", &rule)
        .await
        .expect_ok("AuthorizeSecurityGroupIngress");
    let deleted = aws.ec2("DeleteSecurityGroup", &[("GroupId", &web)]).await;
    deleted.expect_refused(400, "DependencyViolation");
    assert_eq!(
        deleted.xml("Message"),
        Some(format!("resource {web} has a dependent object"))
    );
    aws.ec2("RevokeSecurityGroupIngress", &rule)
        .await
        .expect_ok("RevokeSecurityGroupIngress");

    // A load balancer in both subnets, behind `web`.
    let balancer = aws
        .elb(
            "CreateLoadBalancer",
            &[
                ("Name", "web"),
                ("Subnets.member.1", a),
                ("Subnets.member.2", b),
                ("SecurityGroups.member.1", &web),
            ],
        )
        .await
        .expect_ok("CreateLoadBalancer")
        .xml("LoadBalancerArn")
        .expect("balancer arn");
    let deleted = aws.ec2("DeleteSubnet", &[("SubnetId", a)]).await;
    deleted.expect_refused(400, "DependencyViolation");
    assert_eq!(
        deleted.xml("Message"),
        Some(format!(
            "The subnet '{a}' has dependencies and cannot be deleted."
        ))
    );
    aws.ec2("DeleteSecurityGroup", &[("GroupId", &web)])
        .await
        .expect_refused(400, "DependencyViolation");
    aws.elb("DeleteLoadBalancer", &[("LoadBalancerArn", &balancer)])
        .await
        .expect_ok("DeleteLoadBalancer");

    // A network interface in `b`, in `db`.
    let interface = aws
        .ec2(
            "CreateNetworkInterface",
            &[("SubnetId", b), ("SecurityGroupId.1", &db)],
        )
        .await
        .expect_ok("CreateNetworkInterface")
        .xml("networkInterfaceId")
        .expect("interface id");
    aws.ec2("DeleteSubnet", &[("SubnetId", b)])
        .await
        .expect_refused(400, "DependencyViolation");
    aws.ec2("DeleteSecurityGroup", &[("GroupId", &db)])
        .await
        .expect_refused(400, "DependencyViolation");
    aws.ec2(
        "DeleteNetworkInterface",
        &[("NetworkInterfaceId", &interface)],
    )
    .await
    .expect_ok("DeleteNetworkInterface");

    for subnet in [a, b] {
        aws.ec2("DeleteSubnet", &[("SubnetId", subnet)])
            .await
            .expect_ok("DeleteSubnet once empty");
    }
    for group in [&web, &db] {
        aws.ec2("DeleteSecurityGroup", &[("GroupId", group)])
            .await
            .expect_ok("DeleteSecurityGroup once unused");
    }

    let reasons: Vec<String> = proxy
        .strict_refusals()
        .into_iter()
        .map(|r| r.reason)
        .collect();
    assert_eq!(reasons.len(), 5, "{reasons:#?}");
    assert!(reasons[0].contains(&format!("a rule of security group {db}")));
    assert!(reasons[1].contains("load balancer web"));
    assert!(reasons[3].contains(&interface));
    // The layer's own look-ups went straight to moto, not through the log.
    let log = proxy.operations();
    assert!(
        log.iter()
            .all(|op| !op.starts_with("Describe") && !op.starts_with("List")),
        "{log:?}"
    );
}

#[tokio::test]
async fn a_nat_gateway_holds_its_subnet_and_the_internet_gateway() {
    let (_moto, proxy, aws) = strict(settled()).await;
    let (vpc, subnets) = aws.network(1).await;
    let subnet = &subnets[0];
    let gateway = aws
        .ec2("CreateInternetGateway", &[])
        .await
        .expect_ok("CreateInternetGateway")
        .xml("internetGatewayId")
        .expect("gateway id");
    let detach = [("InternetGatewayId", gateway.as_str()), ("VpcId", &vpc)];
    aws.ec2("AttachInternetGateway", &detach)
        .await
        .expect_ok("AttachInternetGateway");
    let address = aws
        .ec2("AllocateAddress", &[("Domain", "vpc")])
        .await
        .expect_ok("AllocateAddress")
        .xml("allocationId")
        .expect("allocation id");
    let nat = aws
        .ec2(
            "CreateNatGateway",
            &[("SubnetId", subnet), ("AllocationId", &address)],
        )
        .await
        .expect_ok("CreateNatGateway")
        .xml("natGatewayId")
        .expect("nat id");

    aws.ec2("DeleteSubnet", &[("SubnetId", subnet)])
        .await
        .expect_refused(400, "DependencyViolation");
    let detached = aws.ec2("DetachInternetGateway", &detach).await;
    detached.expect_refused(400, "DependencyViolation");
    assert_eq!(
        detached.xml("Message"),
        Some(format!(
            "Network {vpc} has some mapped public address(es). Please unmap those public address(es) before detaching the gateway."
        ))
    );

    aws.ec2("DeleteNatGateway", &[("NatGatewayId", &nat)])
        .await
        .expect_ok("DeleteNatGateway");
    aws.ec2("DetachInternetGateway", &detach)
        .await
        .expect_ok("DetachInternetGateway once the NAT gateway is gone");
    aws.ec2("DeleteSubnet", &[("SubnetId", subnet)])
        .await
        .expect_ok("DeleteSubnet once the NAT gateway is gone");
    let reasons: Vec<String> = proxy
        .strict_refusals()
        .into_iter()
        .map(|r| r.reason)
        .collect();
    assert!(
        reasons[0].contains(&format!("NAT gateway {nat}")),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("Elastic IP"), "{reasons:?}");
}

#[tokio::test]
async fn a_vpc_is_not_deleted_while_gateways_or_groups_remain() {
    let (_moto, proxy, aws) = strict(settled()).await;
    let (vpc, subnets) = aws.network(1).await;
    let gateway = aws
        .ec2("CreateInternetGateway", &[])
        .await
        .expect_ok("CreateInternetGateway")
        .xml("internetGatewayId")
        .expect("gateway id");
    let attachment = [("InternetGatewayId", gateway.as_str()), ("VpcId", &vpc)];
    aws.ec2("AttachInternetGateway", &attachment)
        .await
        .expect_ok("AttachInternetGateway");
    let group = aws.security_group(&vpc, "web").await;

    // Moto itself refuses while a subnet remains: not the strict layer.
    aws.ec2("DeleteSubnet", &[("SubnetId", &subnets[0])])
        .await
        .expect_ok("DeleteSubnet");

    let deleted = aws.ec2("DeleteVpc", &[("VpcId", &vpc)]).await;
    deleted.expect_refused(400, "DependencyViolation");
    assert_eq!(
        deleted.xml("Message"),
        Some(format!(
            "The vpc '{vpc}' has dependencies and cannot be deleted."
        ))
    );
    aws.ec2("DetachInternetGateway", &attachment)
        .await
        .expect_ok("DetachInternetGateway");
    aws.ec2("DeleteInternetGateway", &[("InternetGatewayId", &gateway)])
        .await
        .expect_ok("DeleteInternetGateway");
    aws.ec2("DeleteVpc", &[("VpcId", &vpc)])
        .await
        .expect_refused(400, "DependencyViolation");
    aws.ec2("DeleteSecurityGroup", &[("GroupId", &group)])
        .await
        .expect_ok("DeleteSecurityGroup");
    aws.ec2("DeleteVpc", &[("VpcId", &vpc)])
        .await
        .expect_ok("DeleteVpc once empty");
    let reasons: Vec<String> = proxy
        .strict_refusals()
        .into_iter()
        .map(|r| r.reason)
        .collect();
    assert_eq!(reasons.len(), 2);
    assert!(reasons[0].contains(&gateway));
    assert!(reasons[1].contains(&group));
}

#[tokio::test]
async fn a_db_subnet_group_is_not_deleted_while_an_instance_uses_it() {
    let (_moto, _proxy, aws) = strict(settled()).await;
    let (_, subnets) = aws.network(2).await;
    aws.rds(
        "CreateDBSubnetGroup",
        &[
            ("DBSubnetGroupName", "orders"),
            ("DBSubnetGroupDescription", "orders"),
            ("SubnetIds.SubnetIdentifier.1", &subnets[0]),
            ("SubnetIds.SubnetIdentifier.2", &subnets[1]),
        ],
    )
    .await
    .expect_ok("CreateDBSubnetGroup");
    aws.rds(
        "CreateDBInstance",
        &[
            ("DBInstanceIdentifier", "orders-db"),
            ("DBInstanceClass", "db.t3.micro"),
            ("Engine", "postgres"),
            ("MasterUsername", "orders"),
            ("MasterUserPassword", "correct-horse-battery"),
            ("AllocatedStorage", "20"),
            ("DBSubnetGroupName", "orders"),
        ],
    )
    .await
    .expect_ok("CreateDBInstance");

    let deleted = aws
        .rds("DeleteDBSubnetGroup", &[("DBSubnetGroupName", "orders")])
        .await;
    deleted.expect_refused(400, "InvalidDBSubnetGroupStateFault");
    assert_eq!(
        deleted.xml("Message").as_deref(),
        Some(
            "Cannot delete the subnet group 'orders' because at least one database instance: orders-db is still using it."
        )
    );
    aws.rds(
        "DeleteDBInstance",
        &[
            ("DBInstanceIdentifier", "orders-db"),
            ("SkipFinalSnapshot", "true"),
        ],
    )
    .await
    .expect_ok("DeleteDBInstance");
    aws.rds("DeleteDBSubnetGroup", &[("DBSubnetGroupName", "orders")])
        .await
        .expect_ok("DeleteDBSubnetGroup once empty");
}

#[tokio::test]
async fn a_vpc_link_is_not_deleted_while_an_integration_uses_it() {
    let (_moto, proxy, aws) = strict(settled()).await;
    let (vpc, subnets) = aws.network(1).await;
    let group = aws.security_group(&vpc, "link").await;
    let link = aws
        .api_gateway(
            Method::POST,
            "/v2/vpclinks",
            Some(json!({ "name": "shop", "subnetIds": [subnets[0]], "securityGroupIds": [group] })),
        )
        .await
        .expect_ok("CreateVpcLink")
        .json()["vpcLinkId"]
        .as_str()
        .expect("link id")
        .to_string();
    let api = http_api(&aws, "shop").await;
    let integration = aws
        .api_gateway(
            Method::POST,
            &format!("/v2/apis/{api}/integrations"),
            Some(json!({
                "integrationType": "HTTP_PROXY",
                "integrationMethod": "ANY",
                "integrationUri": "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/web/1/2",
                "connectionType": "VPC_LINK",
                "connectionId": link,
                "payloadFormatVersion": "1.0",
            })),
        )
        .await
        .expect_ok("CreateIntegration")
        .json()["integrationId"]
        .as_str()
        .expect("integration id")
        .to_string();

    let path = format!("/v2/vpclinks/{link}");
    let deleted = aws.api_gateway(Method::DELETE, &path, None).await;
    deleted.expect_refused(400, "BadRequestException");
    assert_eq!(deleted.headers["x-amzn-errortype"], "BadRequestException");
    assert!(
        deleted.json()["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Cannot delete vpc link.") && m.contains(&integration)),
        "{}",
        deleted.body
    );
    aws.api_gateway(
        Method::DELETE,
        &format!("/v2/apis/{api}/integrations/{integration}"),
        None,
    )
    .await
    .expect_ok("DeleteIntegration");
    aws.api_gateway(Method::DELETE, &path, None)
        .await
        .expect_ok("DeleteVpcLink once unused");
    assert_eq!(proxy.strict_refusals()[0].operation, "DeleteVpcLink");
}

#[tokio::test]
async fn names_are_held_to_aws_rules() {
    let (_moto, proxy, aws) = strict(settled()).await;
    let (vpc, subnets) = aws.network(2).await;
    let long = |n: usize| "a".repeat(n);

    // ELBv2: load balancer and target group names.
    let subnet_params = |name: &str| {
        [
            ("Name", name.to_string()),
            ("Subnets.member.1", subnets[0].clone()),
            ("Subnets.member.2", subnets[1].clone()),
        ]
    };
    for name in [
        long(33),
        "internal-web".into(),
        "web-".into(),
        "web_1".into(),
    ] {
        let params = subnet_params(&name);
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        aws.elb("CreateLoadBalancer", &params)
            .await
            .expect_refused(400, "ValidationError");
    }
    let params = subnet_params(&long(32));
    let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    aws.elb("CreateLoadBalancer", &params)
        .await
        .expect_ok("a 32-character load balancer name");
    let group = |name: &str| {
        [
            ("Name", name.to_string()),
            ("Protocol", "HTTP".to_string()),
            ("Port", "80".to_string()),
            ("VpcId", vpc.clone()),
        ]
    };
    for (name, ok) in [("-web", false), ("internal-web", true)] {
        let params = group(name);
        let params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let answer = aws.elb("CreateTargetGroup", &params).await;
        if ok {
            answer.expect_ok("a target group may begin with internal-");
        } else {
            answer.expect_refused(400, "ValidationError");
        }
    }

    // RDS: instance identifier and subnet group name.
    for id in ["1db", "orders--db", "orders-", &long(64)] {
        aws.rds(
            "CreateDBInstance",
            &[
                ("DBInstanceIdentifier", id),
                ("DBInstanceClass", "db.t3.micro"),
                ("Engine", "postgres"),
                ("MasterUsername", "orders"),
                ("MasterUserPassword", "correct-horse-battery"),
                ("AllocatedStorage", "20"),
            ],
        )
        .await
        .expect_refused(400, "InvalidParameterValue");
    }
    for name in ["default", "1st", "a/b"] {
        aws.rds(
            "CreateDBSubnetGroup",
            &[
                ("DBSubnetGroupName", name),
                ("DBSubnetGroupDescription", "d"),
                ("SubnetIds.SubnetIdentifier.1", &subnets[0]),
                ("SubnetIds.SubnetIdentifier.2", &subnets[1]),
            ],
        )
        .await
        .expect_refused(400, "InvalidParameterValue");
    }

    // SQS: `.fifo` only on FIFO queues, 80 characters at most.
    for body in [
        json!({ "QueueName": "orders.fifo" }),
        json!({ "QueueName": "orders", "Attributes": { "FifoQueue": "true" } }),
        json!({ "QueueName": long(81) }),
        json!({ "QueueName": "orders events" }),
    ] {
        let answer = aws.sqs("CreateQueue", body).await;
        answer.expect_refused(400, "InvalidParameterValue");
        assert_eq!(
            answer.headers["x-amzn-query-error"],
            "InvalidParameterValue;Sender"
        );
    }
    aws.sqs(
        "CreateQueue",
        json!({ "QueueName": "orders.fifo", "Attributes": { "FifoQueue": "true" } }),
    )
    .await
    .expect_ok("a FIFO queue named .fifo");

    // SNS, IAM.
    for name in [long(257), "orders.events".into()] {
        aws.query("sns", "2010-03-31", "CreateTopic", &[("Name", &name)])
            .await
            .expect_refused(400, "InvalidParameter");
    }
    let trust = r#"{"Version":"2012-10-17","Statement":[]}"#;
    for params in [
        vec![("RoleName", long(65))],
        vec![("RoleName", "orders service".to_string())],
        vec![
            ("RoleName", "orders".to_string()),
            ("Path", "service".to_string()),
        ],
    ] {
        let mut params: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        params.push(("AssumeRolePolicyDocument", trust));
        aws.query("iam", "2010-05-08", "CreateRole", &params)
            .await
            .expect_refused(400, "ValidationError");
    }

    // Secrets Manager, CloudWatch Logs, ECR.
    for name in [long(513), "orders key".into()] {
        aws.secrets(
            "CreateSecret",
            json!({ "Name": name, "SecretString": "{}" }),
        )
        .await
        .expect_refused(400, "ValidationException");
    }
    for name in [long(513), "/ecs/orders api".into()] {
        aws.json(
            "logs",
            "Logs_20140328.CreateLogGroup",
            json!({ "logGroupName": name }),
        )
        .await
        .expect_refused(400, "InvalidParameterException");
    }
    for name in ["Orders", "o", "orders//api", "orders-"] {
        aws.json(
            "ecr",
            "AmazonEC2ContainerRegistry_V20150921.CreateRepository",
            json!({ "repositoryName": name }),
        )
        .await
        .expect_refused(400, "InvalidParameterException");
    }
    aws.json(
        "ecr",
        "AmazonEC2ContainerRegistry_V20150921.CreateRepository",
        json!({ "repositoryName": "shop/orders-api" }),
    )
    .await
    .expect_ok("a namespaced repository");

    // EC2 security groups, API Gateway v2.
    for name in ["sg-web".to_string(), long(256), "web|db".into()] {
        aws.ec2(
            "CreateSecurityGroup",
            &[
                ("VpcId", &vpc),
                ("GroupName", &name),
                ("GroupDescription", "d"),
            ],
        )
        .await
        .expect_refused(400, "InvalidParameterValue");
    }
    for path in ["/v2/apis", "/v2/vpclinks"] {
        let body = json!({ "name": long(129), "protocolType": "HTTP", "subnetIds": [subnets[0]] });
        aws.api_gateway(Method::POST, path, Some(body))
            .await
            .expect_refused(400, "BadRequestException");
    }

    // None of the refused creates reached moto.
    let groups = aws
        .ec2("DescribeSecurityGroups", &[])
        .await
        .expect_ok("DescribeSecurityGroups");
    assert!(!groups.body.contains("sg-web"));
    let balancers = aws
        .elb("DescribeLoadBalancers", &[])
        .await
        .expect_ok("DescribeLoadBalancers");
    assert!(!balancers.body.contains("internal-web"));
    let queues = aws
        .sqs("ListQueues", json!({}))
        .await
        .expect_ok("ListQueues");
    assert_eq!(queues.json()["QueueUrls"].as_array().map(Vec::len), Some(1));
    assert_eq!(proxy.strict_refusals().len(), 34);
}

#[tokio::test]
async fn a_plain_or_lenient_proxy_is_as_lax_as_moto() {
    let moto = moto().await;
    let plain = FaultProxy::start(&moto.url).await;
    let off = FaultProxy::start_strict(&moto.url, Strictness::off()).await;
    for (name, proxy) in [("plain", &plain), ("off", &off)] {
        let aws = Aws::new(&proxy.url);
        let vpc = aws
            .ec2("CreateVpc", &[("CidrBlock", "10.0.0.0/16")])
            .await
            .expect_ok("CreateVpc")
            .xml("vpcId")
            .expect("vpc id");
        aws.ec2(
            "CreateTags",
            &[
                ("ResourceId.1", &vpc),
                ("Tag.1.Key", "Name"),
                ("Tag.1.Value", name),
            ],
        )
        .await
        .expect_ok("CreateTags right away");
        aws.ec2(
            "CreateSecurityGroup",
            &[
                ("VpcId", &vpc),
                ("GroupName", "sg-web"),
                ("GroupDescription", "d"),
            ],
        )
        .await
        .expect_ok("a group name moto takes and AWS refuses");
        aws.ecs("CreateCluster", json!({ "clusterName": name }))
            .await
            .expect_ok("the first CreateCluster");
        assert!(proxy.strict_refusals().is_empty());
    }
}

#[tokio::test]
async fn the_fault_policy_sees_only_what_the_strict_layer_lets_through() {
    let (_moto, proxy, aws) = strict(Strictness::new().windows(WINDOW)).await;
    proxy.set_policy(|seen: &Seen| match seen.operation.as_str() {
        "CreateCluster" => Fault::Throttle,
        "CreateVpc" => Fault::ForwardThenFail,
        _ => Fault::Pass,
    });
    // The strict layer answers first; the policy only sees the retry.
    aws.ecs("CreateCluster", json!({ "clusterName": "shop" }))
        .await
        .expect_refused(400, "InvalidParameterException");
    aws.ecs("CreateCluster", json!({ "clusterName": "shop" }))
        .await
        .expect_refused(400, "ThrottlingException");
    assert_eq!(proxy.faults(), 1);
    assert_eq!(proxy.strict_refusals().len(), 1);
    assert_eq!(proxy.operations(), ["CreateCluster", "CreateCluster"]);

    // A VPC whose answer was lost was still created, and is still young.
    let lost = aws.ec2("CreateVpc", &[("CidrBlock", "10.9.0.0/16")]).await;
    assert_eq!(lost.status, 500);
    let vpc = aws
        .ec2(
            "DescribeVpcs",
            &[
                ("Filter.1.Name", "cidr"),
                ("Filter.1.Value.1", "10.9.0.0/16"),
            ],
        )
        .await
        .expect_ok("DescribeVpcs")
        .xml("vpcId")
        .expect("the VPC moto made");
    aws.ec2(
        "CreateTags",
        &[
            ("ResourceId.1", &vpc),
            ("Tag.1.Key", "Name"),
            ("Tag.1.Value", "lost"),
        ],
    )
    .await
    .expect_refused(400, "InvalidVpcID.NotFound");

    proxy.set_policy(|_: &Seen| Fault::Pass);
    aws.ecs("CreateCluster", json!({ "clusterName": "shop" }))
        .await
        .expect_ok("CreateCluster once the policy passes");
}

#[tokio::test]
async fn a_new_secret_is_missing_from_list_secrets_for_a_while() {
    let (_moto, _proxy, aws) = strict(Strictness::new().windows(WINDOW)).await;
    aws.secrets(
        "CreateSecret",
        json!({ "Name": "stack/one", "SecretString": "{}" }),
    )
    .await
    .expect_ok("CreateSecret");
    let listed = |answer: Answer| answer.json()["SecretList"].as_array().map_or(0, Vec::len);
    assert_eq!(listed(aws.secrets("ListSecrets", json!({})).await), 0);
    // DescribeSecret knows it at once.
    aws.secrets("DescribeSecret", json!({ "SecretId": "stack/one" }))
        .await
        .expect_ok("DescribeSecret");
    tokio::time::sleep(WINDOW).await;
    assert_eq!(listed(aws.secrets("ListSecrets", json!({})).await), 1);
}

#[tokio::test]
async fn a_stage_asking_for_more_than_the_account_s_throttling_quota_is_refused() {
    let (_moto, proxy, aws) = strict(Strictness::new()).await;
    let id = http_api(&aws, "stack").await;
    let stage = |burst: i64| {
        json!({"stageName": "$default", "defaultRouteSettings": {
            "throttlingRateLimit": 100.0, "throttlingBurstLimit": burst}})
    };
    aws.api_gateway(
        Method::POST,
        &format!("/v2/apis/{id}/stages"),
        Some(stage(6000)),
    )
    .await
    .expect_refused(400, "BadRequestException");
    aws.api_gateway(
        Method::POST,
        &format!("/v2/apis/{id}/stages"),
        Some(stage(200)),
    )
    .await
    .expect_ok("CreateStage within the quota");
    assert_eq!(proxy.strict_refusals().len(), 1);
}

#[tokio::test]
async fn a_one_off_task_runs_then_stops_and_may_fail_to_start() {
    let (_moto, _proxy, aws) = strict(Strictness {
        one_off_task_run: Duration::ZERO,
        one_off_init_failures: 1,
        ecs_linked_role_refusals: 0,
        ..settled()
    })
    .await;
    aws.ecs("CreateCluster", json!({"clusterName": "stack"}))
        .await
        .expect_ok("CreateCluster");
    aws.ecs(
        "RegisterTaskDefinition",
        json!({"family": "stack-db-init", "networkMode": "awsvpc",
               "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
               "containerDefinitions": [{"name": "db-init", "image": "x", "memory": 512}]}),
    )
    .await
    .expect_ok("RegisterTaskDefinition");
    // Fargate without its network: refused, as AWS does.
    aws.ecs(
        "RunTask",
        json!({"cluster": "stack", "taskDefinition": "stack-db-init", "launchType": "FARGATE"}),
    )
    .await
    .expect_refused(400, "InvalidParameterException");
    let subnet = aws.task_subnet().await;
    let run = || {
        aws.ecs(
            "RunTask",
            json!({"cluster": "stack", "taskDefinition": "stack-db-init", "launchType": "FARGATE",
                   "networkConfiguration": {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": []}}}),
        )
    };
    let stopped = |arn: String| {
        let aws = &aws;
        async move {
            aws.ecs("DescribeTasks", json!({"cluster": "stack", "tasks": [arn]}))
                .await
                .json()["tasks"][0]
                .clone()
        }
    };
    let first = run().await.expect_ok("RunTask").json()["tasks"][0]["taskArn"]
        .as_str()
        .unwrap()
        .to_string();
    let first = stopped(first).await;
    assert_eq!(first["lastStatus"], "STOPPED");
    assert!(
        first["stoppedReason"]
            .as_str()
            .unwrap()
            .starts_with("ResourceInitializationError"),
        "{first}"
    );
    assert!(first["containers"][0].get("exitCode").is_none());
    let second = run().await.expect_ok("RunTask").json()["tasks"][0]["taskArn"]
        .as_str()
        .unwrap()
        .to_string();
    let second = stopped(second).await;
    assert_eq!(second["lastStatus"], "STOPPED");
    assert_eq!(second["containers"][0]["exitCode"], 0);
}

#[tokio::test]
async fn a_load_balancer_in_a_subnet_smaller_than_a_27_is_refused() {
    let (_moto, proxy, aws) = strict(settled()).await;
    let (vpc, subnets) = aws.network(1).await;
    let small = aws
        .ec2(
            "CreateSubnet",
            &[
                ("VpcId", &vpc),
                ("CidrBlock", "10.0.9.0/28"),
                ("AvailabilityZone", "us-east-1b"),
            ],
        )
        .await
        .expect_ok("CreateSubnet")
        .xml("subnetId")
        .expect("subnet id");
    let group = aws.security_group(&vpc, "web").await;
    let create = |subnet: String| {
        let (aws, group, first) = (&aws, group.clone(), subnets[0].clone());
        async move {
            aws.elb(
                "CreateLoadBalancer",
                &[
                    ("Name", "web"),
                    ("Subnets.member.1", &first),
                    ("Subnets.member.2", &subnet),
                    ("SecurityGroups.member.1", &group),
                ],
            )
            .await
        }
    };
    let refused = create(small.clone()).await;
    refused.expect_refused(400, "InvalidSubnet");
    assert!(
        refused
            .xml("Message")
            .is_some_and(|m| m.contains(&small) && m.contains("8 free IP addresses")),
        "{}",
        refused.body
    );
    let reasons: Vec<String> = proxy
        .strict_refusals()
        .into_iter()
        .map(|r| r.reason)
        .collect();
    assert!(reasons[0].contains("10.0.9.0/28"), "{reasons:?}");

    // A /24 beside the first: accepted.
    let more = aws
        .ec2(
            "CreateSubnet",
            &[
                ("VpcId", &vpc),
                ("CidrBlock", "10.0.10.0/24"),
                ("AvailabilityZone", "us-east-1b"),
            ],
        )
        .await
        .expect_ok("CreateSubnet")
        .xml("subnetId")
        .expect("subnet id");
    create(more).await.expect_ok("CreateLoadBalancer");
}

#[tokio::test]
async fn a_cluster_with_an_active_service_is_not_deleted() {
    let (_moto, proxy, aws) = strict(Strictness {
        ecs_linked_role_refusals: 0,
        ..settled()
    })
    .await;
    aws.ecs_service("shop", "orders", 0).await;

    let deleted = aws.ecs("DeleteCluster", json!({ "cluster": "shop" })).await;
    deleted.expect_refused(400, "ClusterContainsServicesException");
    let reasons: Vec<String> = proxy
        .strict_refusals()
        .into_iter()
        .map(|r| r.reason)
        .collect();
    assert_eq!(reasons, ["service orders is still ACTIVE in cluster shop"]);

    aws.ecs(
        "DeleteService",
        json!({ "cluster": "shop", "service": "orders" }),
    )
    .await
    .expect_ok("DeleteService");
    aws.ecs("DeleteCluster", json!({ "cluster": "shop" }))
        .await
        .expect_ok("DeleteCluster once its service is gone");
}

#[tokio::test]
async fn ecs_names_are_held_to_aws_rules() {
    let (_moto, _proxy, aws) = strict(Strictness {
        ecs_linked_role_refusals: 0,
        ..settled()
    })
    .await;
    aws.ecs("CreateCluster", json!({ "clusterName": "shop.main" }))
        .await
        .expect_refused(400, "ClientException");
    aws.ecs("CreateCluster", json!({ "clusterName": "shop-main_1" }))
        .await
        .expect_ok("CreateCluster");
    let family = aws
        .ecs(
            "RegisterTaskDefinition",
            json!({
                "family": "orders/v2",
                "containerDefinitions": [{ "name": "app", "image": "nginx", "memory": 128 }],
            }),
        )
        .await;
    family.expect_refused(400, "ClientException");
    assert_eq!(
        family.json()["message"],
        "Family contains invalid characters."
    );
    aws.ecs(
        "RegisterTaskDefinition",
        json!({
            "family": "orders",
            "containerDefinitions": [{ "name": "the app", "image": "nginx", "memory": 128 }],
        }),
    )
    .await
    .expect_refused(400, "ClientException");
    let long = "s".repeat(256);
    aws.ecs(
        "CreateService",
        json!({ "cluster": "shop-main_1", "serviceName": long, "desiredCount": 0 }),
    )
    .await
    .expect_refused(400, "ClientException");
}

#[tokio::test]
async fn a_batch_read_of_secrets_outside_its_bounds_is_refused() {
    let (_moto, _proxy, aws) = strict(settled()).await;
    for name in ["shop/a", "shop/b"] {
        aws.secrets(
            "CreateSecret",
            json!({ "Name": name, "SecretString": "{}" }),
        )
        .await
        .expect_ok("CreateSecret");
    }
    let many: Vec<String> = (0..21).map(|i| format!("shop/{i}")).collect();
    aws.secrets("BatchGetSecretValue", json!({ "SecretIdList": many }))
        .await
        .expect_refused(400, "ValidationException");
    aws.secrets(
        "BatchGetSecretValue",
        json!({
            "SecretIdList": ["shop/a"],
            "Filters": [{ "Key": "name", "Values": ["shop/"] }],
        }),
    )
    .await
    .expect_refused(400, "InvalidParameterException");
    let both = aws
        .secrets(
            "BatchGetSecretValue",
            json!({ "SecretIdList": ["shop/a", "shop/b"] }),
        )
        .await
        .expect_ok("BatchGetSecretValue of two");
    assert_eq!(both.json()["SecretValues"].as_array().unwrap().len(), 2);
}

/// IAM refuses a trust policy naming an OIDC provider the account lacks;
/// moto would take it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_may_trust_only_an_oidc_provider_that_exists() {
    let (_moto, proxy, aws) = strict(settled()).await;
    let provider = "arn:aws:iam::123456789012:oidc-provider/token.actions.githubusercontent.com";
    let trust = json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Federated": provider },
            "Action": "sts:AssumeRoleWithWebIdentity",
        }],
    })
    .to_string();
    let create = [
        ("RoleName", "deploy"),
        ("AssumeRolePolicyDocument", trust.as_str()),
    ];
    aws.query("iam", "2010-05-08", "CreateRole", &create)
        .await
        .expect_refused(400, "MalformedPolicyDocument");
    assert_eq!(proxy.strict_refusals()[0].operation, "CreateRole");
    aws.query(
        "iam",
        "2010-05-08",
        "CreateOpenIDConnectProvider",
        &[
            ("Url", "https://token.actions.githubusercontent.com"),
            ("ClientIDList.member.1", "sts.amazonaws.com"),
        ],
    )
    .await
    .expect_ok("CreateOpenIDConnectProvider");
    aws.query("iam", "2010-05-08", "CreateRole", &create)
        .await
        .expect_ok("a role trusting a provider that exists");
}

#[tokio::test]
async fn route_keys_and_path_patterns_aws_refuses_are_refused() {
    let (_moto, proxy, aws) = strict(Strictness::new()).await;
    let id = http_api(&aws, "stack").await;
    for key in ["GET pets", "FETCH /pets", "ANY /{proxy+}/more", "$defaults"] {
        aws.api_gateway(
            Method::POST,
            &format!("/v2/apis/{id}/routes"),
            Some(json!({ "routeKey": key })),
        )
        .await
        .expect_refused(400, "BadRequestException");
    }
    for key in ["$default", "ANY /{proxy+}", "GET /pets/{id}"] {
        aws.api_gateway(
            Method::POST,
            &format!("/v2/apis/{id}/routes"),
            Some(json!({ "routeKey": key })),
        )
        .await
        .expect_ok("CreateRoute with a valid key");
    }

    // Five condition values a rule at most; each pattern of the ALB's
    // characters. (Refused before the listener is even looked up.)
    let listener = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/lb/1/2";
    let rule = |patterns: &[&str]| {
        let mut params = vec![
            ("ListenerArn".to_string(), listener.to_string()),
            ("Priority".to_string(), "10".to_string()),
            (
                "Actions.member.1.Type".to_string(),
                "fixed-response".to_string(),
            ),
            (
                "Conditions.member.1.Field".to_string(),
                "path-pattern".to_string(),
            ),
        ];
        for (n, p) in patterns.iter().enumerate() {
            params.push((
                format!(
                    "Conditions.member.1.PathPatternConfig.Values.member.{}",
                    n + 1
                ),
                p.to_string(),
            ));
        }
        params
    };
    for patterns in [
        &["/a", "/a/*", "/b", "/b/*", "/c", "/c/*"][..],
        &["/with space"][..],
        &[""][..],
    ] {
        let params = rule(patterns);
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        aws.elb("CreateRule", &params)
            .await
            .expect_refused(400, "ValidationError");
    }
    assert_eq!(proxy.strict_refusals().len(), 7);
}

/// A role on the stack's path: trusted by ECS's tasks of this account, its
/// inline policy `policy`, bounded by `boundary` when given.
async fn task_role(aws: &Aws, name: &str, policy: Value, boundary: Option<&str>) -> String {
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Service": "ecs-tasks.amazonaws.com"},
        "Action": "sts:AssumeRole",
        "Condition": {
            "StringEquals": {"aws:SourceAccount": "123456789012"},
            "ArnLike": {"aws:SourceArn": "arn:aws:ecs:us-east-1:123456789012:*"}
        }
    }]})
    .to_string();
    let mut params = vec![
        ("RoleName", name),
        ("Path", "/techctl/shop/"),
        ("AssumeRolePolicyDocument", trust.as_str()),
    ];
    if let Some(boundary) = boundary {
        params.push(("PermissionsBoundary", boundary));
    }
    let arn = aws
        .iam("CreateRole", &params)
        .await
        .expect_ok("CreateRole")
        .xml("Arn")
        .expect("role arn");
    let document = policy.to_string();
    aws.iam(
        "PutRolePolicy",
        &[
            ("RoleName", name),
            ("PolicyName", "techctl"),
            ("PolicyDocument", &document),
        ],
    )
    .await
    .expect_ok("PutRolePolicy");
    arn
}

/// Credentials for a role, handed out as ECS hands a task its role; the
/// answer as STS gives it.
async fn as_task(aws: &Aws, role_arn: &str, service: &str) -> Answer {
    let form = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=task",
        encode(role_arn)
    );
    aws.send(
        Method::POST,
        "/",
        "sts",
        &[
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            (testkit::strict::ASSUMED_BY, service),
        ],
        form,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_s_credentials_do_what_its_policies_and_boundary_allow_and_nothing_else() {
    let (_moto, proxy, console) = strict(settled()).await;
    let order = console.queue("shop-order").await;
    let payment = console.queue("shop-payment").await;
    let queue_arn = |name: &str| format!("arn:aws:sqs:us-east-1:123456789012:{name}");
    let boundary = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sqs:*", "Resource": "arn:aws:sqs:*:*:shop-*"}
    ]})
    .to_string();
    let boundary_arn = console
        .iam(
            "CreatePolicy",
            &[
                ("PolicyName", "shop-boundary"),
                ("Path", "/techctl/shop/"),
                ("PolicyDocument", &boundary),
            ],
        )
        .await
        .expect_ok("CreatePolicy")
        .xml("Arn")
        .expect("policy arn");
    let role = task_role(
        &console,
        "shop-order-task",
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": ["sqs:SendMessage", "sqs:ReceiveMessage"], "Resource": queue_arn("shop-order")},
            {"Effect": "Allow", "Action": "sns:Publish", "Resource": "*"}
        ]}),
        Some(&boundary_arn),
    )
    .await;

    // Nobody but ECS's tasks may take the role: not the console, not
    // another service.
    console
        .sts(
            "AssumeRole",
            &[("RoleArn", &role), ("RoleSessionName", "me")],
        )
        .await
        .expect_refused(403, "AccessDenied");
    as_task(&console, &role, "lambda.amazonaws.com")
        .await
        .expect_refused(403, "AccessDenied");
    let taken = as_task(&console, &role, "ecs-tasks.amazonaws.com")
        .await
        .expect_ok("AssumeRole by ECS's tasks");
    let task = Aws::with_key(&proxy.url, &taken.xml("AccessKeyId").expect("a key"));

    // Its own queue, as its policy says.
    task.sqs(
        "SendMessage",
        json!({"QueueUrl": order, "MessageBody": "hello"}),
    )
    .await
    .expect_ok("SendMessage to its own queue");
    // Another service's queue: AccessDenied, naming the action, the
    // resource and why, as AWS does.
    let other = task
        .sqs(
            "SendMessage",
            json!({"QueueUrl": payment, "MessageBody": "hello"}),
        )
        .await;
    other.expect_refused(403, "AccessDenied");
    assert!(
        other.body.contains(&format!(
            "is not authorized to perform: sqs:SendMessage on resource: {} because no identity-based policy allows the sqs:SendMessage action",
            queue_arn("shop-payment")
        )),
        "{}",
        other.body
    );
    // A listing is authorized against `*`, which the role is not granted.
    task.sqs("ListQueues", json!({}))
        .await
        .expect_refused(403, "AccessDenied");
    // Its policy allows sns:Publish; its boundary does not.
    let publish = task
        .query(
            "sns",
            "2010-03-31",
            "Publish",
            &[
                (
                    "TopicArn",
                    "arn:aws:sns:us-east-1:123456789012:shop-order-events",
                ),
                ("Message", "hi"),
            ],
        )
        .await;
    publish.expect_refused(403, "AuthorizationError");
    assert!(
        publish
            .body
            .contains("because no permissions boundary allows the sns:Publish action"),
        "{}",
        publish.body
    );
    // A Deny put in later wins at once over the Allow.
    let deny = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Deny", "Action": "sqs:ReceiveMessage", "Resource": "*"}
    ]})
    .to_string();
    console
        .iam(
            "PutRolePolicy",
            &[
                ("RoleName", "shop-order-task"),
                ("PolicyName", "guard"),
                ("PolicyDocument", &deny),
            ],
        )
        .await
        .expect_ok("PutRolePolicy");
    let receive = task.sqs("ReceiveMessage", json!({"QueueUrl": order})).await;
    receive.expect_refused(403, "AccessDenied");
    assert!(
        receive
            .body
            .contains("with an explicit deny in an identity-based policy"),
        "{}",
        receive.body
    );
    let refused: Vec<String> = proxy
        .strict_refusals()
        .iter()
        .map(|r| r.operation.clone())
        .collect();
    assert_eq!(
        refused,
        [
            "AssumeRole",
            "AssumeRole",
            "SendMessage",
            "ListQueues",
            "Publish",
            "ReceiveMessage"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_identity_takes_a_role_only_with_a_token_its_trust_policy_takes() {
    let (_moto, _proxy, console) = strict(settled()).await;
    let provider = console
        .iam(
            "CreateOpenIDConnectProvider",
            &[
                ("Url", "https://token.actions.githubusercontent.com"),
                ("ClientIDList.member.1", "sts.amazonaws.com"),
            ],
        )
        .await
        .expect_ok("CreateOpenIDConnectProvider")
        .xml("OpenIDConnectProviderArn")
        .expect("provider arn");
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": provider},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            "token.actions.githubusercontent.com:aud": "sts.amazonaws.com",
            "token.actions.githubusercontent.com:sub": "repo:lanchonete/techchallenge:environment:staging"
        }}
    }]})
    .to_string();
    let role = console
        .iam(
            "CreateRole",
            &[
                ("RoleName", "shop-deploy"),
                ("Path", "/techctl-deploy/shop/"),
                ("AssumeRolePolicyDocument", &trust),
            ],
        )
        .await
        .expect_ok("CreateRole")
        .xml("Arn")
        .expect("role arn");
    let assume = |token: String| {
        let role = role.clone();
        let console = &console;
        async move {
            console
                .sts(
                    "AssumeRoleWithWebIdentity",
                    &[
                        ("RoleArn", &role),
                        ("RoleSessionName", "ci"),
                        ("WebIdentityToken", &token),
                    ],
                )
                .await
        }
    };
    let ok = assume(testkit::github::token(
        "lanchonete/techchallenge",
        "environment:staging",
    ))
    .await
    .expect_ok("the staging environment's token");
    assert!(ok.xml("AccessKeyId").is_some());
    for (repository, tail) in [
        ("someone/techchallenge", "environment:staging"),
        ("lanchonete/techchallenge", "ref:refs/heads/main"),
        ("lanchonete/techchallenge", "environment:prod"),
        ("lanchonete/techchallenge", "pull_request"),
    ] {
        assume(testkit::github::token(repository, tail))
            .await
            .expect_refused(403, "AccessDenied");
    }
    let mut other_audience =
        testkit::github::claims("lanchonete/techchallenge", "environment:staging");
    other_audience.insert("aud".into(), json!("https://github.com/lanchonete"));
    assume(testkit::github::sign(other_audience))
        .await
        .expect_refused(400, "InvalidIdentityToken");
    let forged = testkit::jwt::TestSigner::new("github-actions-test").sign(
        testkit::github::claims("lanchonete/techchallenge", "environment:staging"),
    );
    assume(forged)
        .await
        .expect_refused(400, "InvalidIdentityToken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_whose_execution_role_may_not_read_its_secret_fails_to_start() {
    let (_moto, proxy, aws) = strict(Strictness {
        one_off_task_run: Duration::ZERO,
        ecs_linked_role_refusals: 0,
        ..settled()
    })
    .await;
    let secret = |name: &'static str| {
        let aws = &aws;
        async move {
            aws.secrets("CreateSecret", json!({"Name": name, "SecretString": "{}"}))
                .await
                .expect_ok("CreateSecret")
                .json()["ARN"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let (secret, other) = (secret("shop/payment").await, secret("shop/order").await);
    let execution = task_role(
        &aws,
        "shop-task-execution",
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": other}
        ]}),
        None,
    )
    .await;
    aws.ecs("CreateCluster", json!({"clusterName": "shop"}))
        .await
        .expect_ok("CreateCluster");
    aws.ecs(
        "RegisterTaskDefinition",
        json!({"family": "shop-payment", "networkMode": "awsvpc", "executionRoleArn": execution,
               "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512",
               "containerDefinitions": [{"name": "payment", "image": "x", "memory": 512,
                   "secrets": [{"name": "MERCADOPAGO_ACCESS_TOKEN",
                                "valueFrom": format!("{secret}:mercadopago_access_token::")}]}]}),
    )
    .await
    .expect_ok("RegisterTaskDefinition");
    let subnets = [aws.task_subnet().await];
    let run = || {
        aws.ecs(
            "RunTask",
            json!({"cluster": "shop", "taskDefinition": "shop-payment", "launchType": "FARGATE",
                   "networkConfiguration": {"awsvpcConfiguration": {"subnets": [subnets[0]], "securityGroups": []}}}),
        )
    };
    let stopped = |answer: Answer| {
        let aws = &aws;
        let arn = answer.json()["tasks"][0]["taskArn"]
            .as_str()
            .unwrap()
            .to_string();
        async move {
            aws.ecs("DescribeTasks", json!({"cluster": "shop", "tasks": [arn]}))
                .await
                .json()["tasks"][0]
                .clone()
        }
    };
    // ECS takes the task, then cannot hand it its secret: it stops before
    // its container starts, saying why.
    let first = stopped(run().await.expect_ok("RunTask")).await;
    assert_eq!(first["stopCode"], "TaskFailedToStart", "{first}");
    let reason = first["stoppedReason"].as_str().unwrap();
    assert!(
        reason.starts_with("ResourceInitializationError")
            && reason.contains("assumed-role/shop-task-execution/")
            && reason.contains(&format!(
                "secretsmanager:GetSecretValue on resource: {secret}"
            )),
        "{reason}"
    );
    let failures = proxy.task_start_failures();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert!(
        failures[0].starts_with("RunTask of shop-payment"),
        "{failures:?}"
    );
    // A service of it never gets a task running: the circuit breaker
    // fails the deployment, and the service's events say why.
    aws.ecs(
        "CreateService",
        json!({"cluster": "shop", "serviceName": "payment", "taskDefinition": "shop-payment",
               "desiredCount": 1, "launchType": "FARGATE",
               "networkConfiguration": {"awsvpcConfiguration": {"subnets": [subnets[0]], "securityGroups": []}}}),
    )
    .await
    .expect_ok("CreateService");
    let service = || async {
        aws.ecs(
            "DescribeServices",
            json!({"cluster": "shop", "services": ["payment"]}),
        )
        .await
        .json()["services"][0]
            .clone()
    };
    let failed = service().await;
    assert_eq!(
        failed["deployments"][0]["rolloutState"], "FAILED",
        "{failed}"
    );
    assert_eq!(failed["runningCount"], 0);
    assert!(
        failed["events"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ResourceInitializationError")
                && m.contains("secretsmanager:GetSecretValue")),
        "{failed}"
    );
    assert_eq!(proxy.task_start_failures().len(), 2);

    // Given the secret, the role starts the next one.
    let both = json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": [other, secret]}
    ]})
    .to_string();
    aws.iam(
        "PutRolePolicy",
        &[
            ("RoleName", "shop-task-execution"),
            ("PolicyName", "techctl"),
            ("PolicyDocument", &both),
        ],
    )
    .await
    .expect_ok("PutRolePolicy");
    let second = stopped(run().await.expect_ok("RunTask")).await;
    assert_eq!(second["stopCode"], "EssentialContainerExited", "{second}");
    aws.ecs(
        "UpdateService",
        json!({"cluster": "shop", "service": "payment", "taskDefinition": "shop-payment",
               "forceNewDeployment": true}),
    )
    .await
    .expect_ok("UpdateService");
    let running = service().await;
    assert_ne!(
        running["deployments"][0]["rolloutState"], "FAILED",
        "{running}"
    );
    assert_eq!(proxy.task_start_failures().len(), 2);
}
