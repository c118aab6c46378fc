use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// What every message carries around its payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Unique per event; consumers deduplicate on it.
    pub event_id: Uuid,
    /// `order.created`, `payment.approved`, …
    pub event_name: String,
    pub event_version: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// The service that produced it.
    pub source: String,
    /// The order the event belongs to (one id follows a whole saga), or
    /// the user for a user's event.
    pub correlation_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub meta: Meta,
    pub payload: serde_json::Value,
}

/// A payload type of the saga.
pub trait Event: Serialize + DeserializeOwned {
    const NAME: &'static str;
    const VERSION: u32;
    /// What the event is about, its `correlation_id`: the order for the
    /// saga's events, the user for a user's.
    fn correlation_id(&self) -> Uuid;
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("not an event envelope: {0}")]
    Envelope(String),
    #[error("expected a {expected} event, got {found}")]
    Name {
        expected: &'static str,
        found: String,
    },
    #[error(
        "{name} version {found} is not understood here (this consumer reads version {expected})"
    )]
    Version {
        name: String,
        expected: u32,
        found: u32,
    },
    #[error("the {name} payload does not match version {version}: {problem}")]
    Payload {
        name: String,
        version: u32,
        problem: String,
    },
}

impl Envelope {
    /// Wraps `event` as produced by `source` now.
    pub fn new<E: Event>(source: &str, event: &E) -> Envelope {
        Envelope {
            meta: Meta {
                event_id: Uuid::now_v7(),
                event_name: E::NAME.to_string(),
                event_version: E::VERSION,
                occurred_at: OffsetDateTime::now_utc(),
                source: source.to_string(),
                correlation_id: event.correlation_id().to_string(),
            },
            payload: serde_json::to_value(event).expect("event payloads serialise"),
        }
    }

    /// Reads a message body.
    pub fn parse(text: &str) -> Result<Envelope, DecodeError> {
        serde_json::from_str(text).map_err(|e| DecodeError::Envelope(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("envelopes serialise")
    }

    pub fn name(&self) -> &str {
        &self.meta.event_name
    }

    /// The payload as `E`, if this is an `E` of the version `E` is.
    pub fn decode<E: Event>(&self) -> Result<E, DecodeError> {
        if self.meta.event_name != E::NAME {
            return Err(DecodeError::Name {
                expected: E::NAME,
                found: self.meta.event_name.clone(),
            });
        }
        if self.meta.event_version != E::VERSION {
            return Err(DecodeError::Version {
                name: self.meta.event_name.clone(),
                expected: E::VERSION,
                found: self.meta.event_version,
            });
        }
        serde_json::from_value(self.payload.clone()).map_err(|e| DecodeError::Payload {
            name: self.meta.event_name.clone(),
            version: self.meta.event_version,
            problem: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::OrderCancelled;

    fn cancelled() -> OrderCancelled {
        OrderCancelled {
            order_id: Uuid::now_v7(),
            reason: "payment rejected".into(),
        }
    }

    #[test]
    fn an_envelope_round_trips_and_names_its_order() {
        let event = cancelled();
        let envelope = Envelope::new("order", &event);
        assert_eq!(envelope.meta.correlation_id, event.order_id.to_string());
        assert_eq!(envelope.meta.event_name, "order.cancelled");
        let read = Envelope::parse(&envelope.to_json()).unwrap();
        assert_eq!(read, envelope);
        assert_eq!(read.decode::<OrderCancelled>().unwrap(), event);
    }

    #[test]
    fn another_version_or_shape_is_refused_with_the_reason() {
        let mut envelope = Envelope::new("order", &cancelled());
        envelope.meta.event_version = 2;
        assert_eq!(
            envelope.decode::<OrderCancelled>().unwrap_err().to_string(),
            "order.cancelled version 2 is not understood here (this consumer reads version 1)"
        );
        envelope.meta.event_version = 1;
        envelope.payload = serde_json::json!({"order_id": "not-a-uuid"});
        let err = envelope.decode::<OrderCancelled>().unwrap_err().to_string();
        assert!(
            err.starts_with("the order.cancelled payload does not match version 1"),
            "{err}"
        );
        assert!(matches!(
            Envelope::parse("{\"hello\": 1}"),
            Err(DecodeError::Envelope(_))
        ));
    }
}
