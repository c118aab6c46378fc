use serde::{Deserialize, Serialize};

/// Where an order stands. The only ways forward:
/// AWAITING_PAYMENT → RECEIVED → IN_PREPARATION → READY → FINISHED, and
/// AWAITING_PAYMENT → CANCELLED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    AwaitingPayment,
    Received,
    InPreparation,
    Ready,
    Finished,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::AwaitingPayment,
        Status::Received,
        Status::InPreparation,
        Status::Ready,
        Status::Finished,
        Status::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::AwaitingPayment => "AWAITING_PAYMENT",
            Status::Received => "RECEIVED",
            Status::InPreparation => "IN_PREPARATION",
            Status::Ready => "READY",
            Status::Finished => "FINISHED",
            Status::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// What the customer's screen says.
    pub fn label(self) -> &'static str {
        match self {
            Status::AwaitingPayment => "Aguardando pagamento",
            Status::Received => "Recebido",
            Status::InPreparation => "Em preparação",
            Status::Ready => "Pronto",
            Status::Finished => "Finalizado",
            Status::Cancelled => "Cancelado",
        }
    }

    /// Whether an order in `self` may still come to be in `later`: only
    /// forward along AWAITING_PAYMENT → … → FINISHED, never out of
    /// CANCELLED.
    pub fn may_reach(self, later: Status) -> bool {
        let step = |s: Status| match s {
            Status::AwaitingPayment => Some(0),
            Status::Received => Some(1),
            Status::InPreparation => Some(2),
            Status::Ready => Some(3),
            Status::Finished => Some(4),
            Status::Cancelled => None,
        };
        match (step(self), step(later)) {
            (Some(now), Some(then)) => now < then,
            _ => false,
        }
    }

    /// The status an order must be in to move to `self`.
    pub fn comes_from(self) -> Option<Status> {
        match self {
            Status::AwaitingPayment => None,
            Status::Received | Status::Cancelled => Some(Status::AwaitingPayment),
            Status::InPreparation => Some(Status::Received),
            Status::Ready => Some(Status::InPreparation),
            Status::Finished => Some(Status::Ready),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_only_moves_forward() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::Finished.comes_from(), Some(Status::Ready));
        assert_eq!(
            Status::Cancelled.comes_from(),
            Some(Status::AwaitingPayment)
        );
        assert_eq!(Status::AwaitingPayment.comes_from(), None);
        assert_eq!(Status::parse("DELIVERED"), None);
    }

    #[test]
    fn an_order_reaches_only_what_lies_ahead_of_it() {
        assert!(Status::Received.may_reach(Status::Ready));
        assert!(Status::AwaitingPayment.may_reach(Status::Received));
        assert!(!Status::Ready.may_reach(Status::Ready));
        assert!(!Status::Finished.may_reach(Status::Ready));
        assert!(!Status::Cancelled.may_reach(Status::Received));
        assert!(!Status::AwaitingPayment.may_reach(Status::Cancelled));
    }
}
