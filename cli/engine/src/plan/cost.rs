//! What the stack costs a month while it runs, from the price table kept in
//! `cli/prices/`: NAT gateways, the load balancer, the database instance and
//! its storage, Fargate vCPU and memory at the blueprint's desired counts,
//! and the stack secret. Prices billed by use (requests, data, logs) are
//! listed beside the estimate, not guessed into it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use blueprint::{Blueprint, NatMode};

const PRICES: &str = include_str!("../../prices/us-east-1.toml");

#[derive(Debug, Deserialize)]
struct Prices {
    region: String,
    as_of: String,
    source: String,
    hours_per_month: f64,
    network: NetworkPrices,
    load_balancer: LoadBalancerPrices,
    fargate: FargatePrices,
    rds: RdsPrices,
    secrets_manager: SecretsPrices,
    cloudwatch: CloudWatchPrices,
    usage: BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize)]
struct NetworkPrices {
    nat_gateway_hour: f64,
    public_ipv4_hour: f64,
}

#[derive(Debug, Deserialize)]
struct LoadBalancerPrices {
    alb_hour: f64,
    lcu_hour: f64,
}

#[derive(Debug, Deserialize)]
struct FargatePrices {
    vcpu_hour: f64,
    gb_hour: f64,
}

#[derive(Debug, Deserialize)]
struct RdsPrices {
    gp3_gb_month: f64,
    instance_hour: BTreeMap<String, f64>,
}

#[derive(Debug, Deserialize)]
struct SecretsPrices {
    secret_month: f64,
}

#[derive(Debug, Deserialize)]
struct CloudWatchPrices {
    alarm_month: f64,
}

/// One line of the estimate.
#[derive(Clone, Debug, Serialize)]
pub struct Line {
    pub item: String,
    pub detail: String,
    /// `None` when the table has no price for it.
    pub monthly_usd: Option<f64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Estimate {
    /// The region the prices are for, which may not be the stack's.
    pub prices_region: String,
    pub prices_as_of: String,
    pub source: String,
    pub lines: Vec<Line>,
    pub monthly_usd: f64,
    /// Prices billed by use, by what they are for.
    pub usage_prices: BTreeMap<String, f64>,
}

pub fn estimate(bp: &Blueprint) -> Estimate {
    // The table is part of the binary and checked by a test.
    let prices: Prices = toml::from_str(PRICES).unwrap_or_else(|e| panic!("bad price table: {e}"));
    let hours = prices.hours_per_month;
    let mut lines = Vec::new();

    let nat_count = match *bp.network.nat.get_ref() {
        NatMode::Single => 1,
        NatMode::PerAz => bp.availability_zones().len(),
        NatMode::Disabled => 0,
    };
    if nat_count > 0 {
        let per_hour = prices.network.nat_gateway_hour + prices.network.public_ipv4_hour;
        lines.push(Line {
            item: "NAT gateways".into(),
            detail: format!("{nat_count} × (${per_hour:.3}/h with its public IPv4 address)"),
            monthly_usd: Some(nat_count as f64 * per_hour * hours),
        });
    }

    let alb = prices.load_balancer.alb_hour + prices.load_balancer.lcu_hour;
    lines.push(Line {
        item: "Application Load Balancer".into(),
        detail: format!("1 × ${alb:.4}/h (1 LCU assumed)"),
        monthly_usd: Some(alb * hours),
    });

    let class = bp.database.instance_class.get_ref();
    let instance = prices.rds.instance_hour.get(class.as_str()).copied();
    lines.push(Line {
        item: "RDS PostgreSQL instance".into(),
        detail: match instance {
            Some(p) => format!("{class}, single-AZ, ${p:.3}/h"),
            None => format!("{class}: not in the price table, left out of the total"),
        },
        monthly_usd: instance.map(|p| p * hours),
    });
    let storage = *bp.database.allocated_storage_gb.get_ref() as f64;
    lines.push(Line {
        item: "RDS storage".into(),
        detail: format!(
            "{storage} GB gp3 × ${:.3}/GB-month",
            prices.rds.gp3_gb_month
        ),
        monthly_usd: Some(storage * prices.rds.gp3_gb_month),
    });

    let (mut vcpu, mut memory_gb, mut tasks) = (0.0, 0.0, 0);
    for (_, service) in bp.services() {
        let count = *service.desired.get_ref() as f64;
        tasks += *service.desired.get_ref();
        vcpu += count * *service.cpu.get_ref() as f64 / 1024.0;
        memory_gb += count * *service.memory.get_ref() as f64 / 1024.0;
    }
    lines.push(Line {
        item: "Fargate tasks".into(),
        detail: format!(
            "{tasks} task(s): {vcpu} vCPU × ${:.5}/h + {memory_gb} GB × ${:.6}/h",
            prices.fargate.vcpu_hour, prices.fargate.gb_hour
        ),
        monthly_usd: Some(
            (vcpu * prices.fargate.vcpu_hour + memory_gb * prices.fargate.gb_hour) * hours,
        ),
    });
    // The stack secret, the signing and public keys, one per service.
    let secrets = 3 + bp.services().count();
    lines.push(Line {
        item: "Secrets Manager".into(),
        detail: format!(
            "{secrets} secrets × ${:.2}/month",
            prices.secrets_manager.secret_month
        ),
        monthly_usd: Some(secrets as f64 * prices.secrets_manager.secret_month),
    });

    // One alarm on each consuming service's dead-letter queue.
    let alarms = bp
        .services()
        .filter(|(_, s)| !s.consumes.is_empty())
        .count();
    if alarms > 0 {
        lines.push(Line {
            item: "CloudWatch alarms".into(),
            detail: format!(
                "{alarms} dead-letter alarm(s) × ${:.2}/month",
                prices.cloudwatch.alarm_month
            ),
            monthly_usd: Some(alarms as f64 * prices.cloudwatch.alarm_month),
        });
    }

    let monthly_usd = lines.iter().filter_map(|l| l.monthly_usd).sum();
    Estimate {
        prices_region: prices.region,
        prices_as_of: prices.as_of,
        source: prices.source,
        lines,
        monthly_usd,
        usage_prices: prices.usage,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blueprint() -> Blueprint {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../blueprints/techchallenge.toml"
        );
        blueprint::load(std::path::Path::new(path)).expect("the shipped blueprint loads")
    }

    #[test]
    fn the_shipped_blueprint_costs_what_its_parts_add_up_to() {
        let estimate = estimate(&blueprint());
        assert_eq!(estimate.prices_region, "us-east-1");
        let item = |name: &str| {
            estimate
                .lines
                .iter()
                .find(|l| l.item == name)
                .and_then(|l| l.monthly_usd)
                .unwrap()
        };
        // One NAT gateway with its address: (0.045 + 0.005) × 730.
        assert!((item("NAT gateways") - 36.5).abs() < 0.01);
        // db.t4g.micro: 0.016 × 730.
        assert!((item("RDS PostgreSQL instance") - 11.68).abs() < 0.01);
        assert!((item("RDS storage") - 2.30).abs() < 0.01);
        // 7 tasks of 0.25 vCPU and 0.5 GB.
        let fargate = (1.75 * 0.04048 + 3.5 * 0.004445) * 730.0;
        assert!((item("Fargate tasks") - fargate).abs() < 0.01);
        // Order, payment and production consume events.
        assert!((item("CloudWatch alarms") - 0.30).abs() < 1e-9);
        let sum: f64 = estimate.lines.iter().filter_map(|l| l.monthly_usd).sum();
        assert!((estimate.monthly_usd - sum).abs() < 1e-9);
    }
}
