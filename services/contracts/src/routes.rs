/// Which events each consuming service receives on its queue. The producer
/// of an event is the service its name starts with.
pub const CONSUMERS: &[(&str, &[&str])] = &[
    (
        "order",
        &[
            "payment.created",
            "payment.approved",
            "payment.rejected",
            "payment.expired",
            "payment.failed",
            "production.started",
            "production.ready",
            "production.delivered",
            "user.anonymized",
        ],
    ),
    (
        "payment",
        &["order.created", "order.cancelled", "order.anonymized"],
    ),
    ("production", &["order.paid", "order.anonymized"]),
];

/// The services whose queues receive `event_name`.
pub fn consumers_of(event_name: &str) -> Vec<&'static str> {
    CONSUMERS
        .iter()
        .filter(|(_, events)| events.contains(&event_name))
        .map(|(service, _)| *service)
        .collect()
}

/// The service that publishes `event_name`.
pub fn producer_of(event_name: &str) -> &str {
    event_name.split('.').next().unwrap_or(event_name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_has_its_consumers() {
        assert_eq!(consumers_of("order.created"), ["payment"]);
        assert_eq!(consumers_of("payment.approved"), ["order"]);
        assert_eq!(consumers_of("order.paid"), ["production"]);
        assert!(consumers_of("order.shipped").is_empty());
        assert_eq!(producer_of("production.ready"), "production");
    }
}
