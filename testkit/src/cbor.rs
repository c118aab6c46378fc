//! Smithy RPC v2 CBOR, turned into the AWS JSON 1.0 moto serves and back.
//!
//! The SDK speaks RPC v2 CBOR to CloudWatch (AWS's newest protocol for
//! it); moto reads CloudWatch's JSON protocol only. The proxy rewrites the
//! request into JSON before the strict layer and the fault policy see it,
//! and the answer back into CBOR, so both ends speak their own protocol.

use bytes::Bytes;
use hyper::HeaderMap;
use hyper::header::HeaderValue;
use minicbor::data::{IanaTag, Tag, Type};
use minicbor::{Decoder, Encoder};
use serde_json::{Map, Number, Value};

/// The header an RPC v2 CBOR request and its answer carry.
const PROTOCOL_HEADER: &str = "smithy-protocol";
const PROTOCOL: &str = "rpc-v2-cbor";

/// A request in RPC v2 CBOR, rewritten for moto.
pub(crate) struct Translated {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// `POST /service/SERVICE/operation/OPERATION` with a CBOR body becomes
/// `POST /` with `X-Amz-Target: SERVICE.OPERATION` and the body as JSON.
/// `None` for anything else.
pub(crate) fn request_to_json(path: &str, headers: &HeaderMap, body: &[u8]) -> Option<Translated> {
    if headers.get(PROTOCOL_HEADER)?.to_str().ok()? != PROTOCOL {
        return None;
    }
    let rest = path.strip_prefix("/service/")?;
    let (service, operation) = rest.split_once("/operation/")?;
    let json = if body.is_empty() {
        Value::Object(Map::new())
    } else {
        to_json(body)?
    };
    let mut headers = headers.clone();
    for name in [PROTOCOL_HEADER, "content-type", "content-length", "accept"] {
        headers.remove(name);
    }
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    headers.insert(
        "x-amz-target",
        HeaderValue::from_str(&format!("{service}.{operation}")).ok()?,
    );
    Some(Translated {
        path: "/".to_string(),
        headers,
        body: Bytes::from(json.to_string()),
    })
}

/// Moto's JSON answer (or the proxy's own JSON error) in CBOR, with the
/// headers RPC v2 CBOR answers carry.
pub(crate) fn response_to_cbor(headers: &mut HeaderMap, body: &[u8]) -> Bytes {
    let json = serde_json::from_slice(body).unwrap_or_else(|_| Value::Object(Map::new()));
    headers.remove("content-length");
    headers.insert("content-type", HeaderValue::from_static("application/cbor"));
    headers.insert(PROTOCOL_HEADER, HeaderValue::from_static(PROTOCOL));
    let mut encoder = Encoder::new(Vec::new());
    encode(&mut encoder, None, &json);
    Bytes::from(encoder.into_writer())
}

/// A CBOR document as JSON; `None` if it is not well formed.
pub(crate) fn to_json(body: &[u8]) -> Option<Value> {
    decode(&mut Decoder::new(body))
}

fn decode(d: &mut Decoder<'_>) -> Option<Value> {
    Some(match d.datatype().ok()? {
        Type::Bool => Value::Bool(d.bool().ok()?),
        Type::Null | Type::Undefined => {
            d.skip().ok()?;
            Value::Null
        }
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => Value::from(d.u64().ok()?),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 => Value::from(d.i64().ok()?),
        Type::F16 | Type::F32 | Type::F64 => Number::from_f64(d.f64().ok()?)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Type::String => Value::String(d.str().ok()?.to_string()),
        Type::StringIndef => Value::String(
            d.str_iter()
                .ok()?
                .collect::<Result<Vec<_>, _>>()
                .ok()?
                .concat(),
        ),
        Type::Array | Type::ArrayIndef => {
            let length = d.array().ok()?;
            let mut items = Vec::new();
            while more(d, length, items.len())? {
                items.push(decode(d)?);
            }
            Value::Array(items)
        }
        Type::Map | Type::MapIndef => {
            let length = d.map().ok()?;
            let mut map = Map::new();
            while more(d, length, map.len())? {
                let key = d.str().ok()?.to_string();
                map.insert(key, decode(d)?);
            }
            Value::Object(map)
        }
        // Timestamps (tag 1) are epoch seconds, as AWS JSON writes them.
        Type::Tag => {
            d.tag().ok()?;
            decode(d)?
        }
        _ => return None,
    })
}

/// Whether another item of an array or map follows; an indefinite one ends
/// at a break, which is consumed.
fn more(d: &mut Decoder<'_>, length: Option<u64>, read: usize) -> Option<bool> {
    match length {
        Some(n) => Some((read as u64) < n),
        None if d.datatype().ok()? == Type::Break => {
            d.set_position(d.position() + 1);
            Some(false)
        }
        None => Some(true),
    }
}

/// Whether a member of this name holds a timestamp: AWS JSON writes them
/// as numbers, RPC v2 CBOR as tag 1 around the number.
fn is_timestamp(key: Option<&str>) -> bool {
    key.is_some_and(|k| k.ends_with("Timestamp") || k == "Timestamps")
}

fn encode(e: &mut Encoder<Vec<u8>>, key: Option<&str>, value: &Value) {
    // Writing into a Vec cannot fail.
    let _ = match value {
        Value::Null => e.null(),
        Value::Bool(b) => e.bool(*b),
        Value::Number(n) if is_timestamp(key) => e
            .tag(Tag::from(IanaTag::Timestamp))
            .and_then(|e| e.f64(n.as_f64().unwrap_or(0.0))),
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => e.u64(u),
            (None, Some(i)) => e.i64(i),
            _ => e.f64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => e.str(s),
        Value::Array(items) => {
            let _ = e.array(items.len() as u64);
            for item in items {
                // A list of timestamps is one too.
                encode(e, key.filter(|k| *k == "Timestamps"), item);
            }
            Ok(e)
        }
        Value::Object(map) => {
            let _ = e.map(map.len() as u64);
            for (k, v) in map {
                let _ = e.str(k);
                encode(e, Some(k), v);
            }
            Ok(e)
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_survives_the_round_trip_and_timestamps_are_tagged() {
        let json = serde_json::json!({
            "MetricAlarms": [{
                "AlarmName": "shop-order-dead-letters",
                "Period": 60,
                "Threshold": 0.5,
                "StateUpdatedTimestamp": 1796051154.644,
                "Dimensions": [{"Name": "QueueName", "Value": "shop-order-dlq"}],
                "ActionsEnabled": true,
            }],
        });
        let mut headers = HeaderMap::new();
        let cbor = response_to_cbor(&mut headers, json.to_string().as_bytes());
        assert_eq!(headers["smithy-protocol"], "rpc-v2-cbor");
        assert_eq!(to_json(&cbor), Some(json));
        let tagged = [0xc1, 0xfb]; // tag 1, then a double
        assert!(cbor.windows(2).any(|w| w == tagged));
    }

    #[test]
    fn only_rpc_v2_cbor_requests_are_rewritten() {
        let mut headers = HeaderMap::new();
        headers.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
        headers.insert("content-type", HeaderValue::from_static("application/cbor"));
        let mut body = Encoder::new(Vec::new());
        body.begin_map()
            .and_then(|e| e.str("AlarmNames"))
            .and_then(|e| e.begin_array())
            .and_then(|e| e.str("a"))
            .and_then(|e| e.end())
            .and_then(|e| e.end())
            .expect("writes");
        let path = "/service/GraniteServiceVersion20100801/operation/DeleteAlarms";
        let translated = request_to_json(path, &headers, body.writer()).expect("translated");
        assert_eq!(translated.path, "/");
        assert_eq!(
            translated.headers["x-amz-target"],
            "GraniteServiceVersion20100801.DeleteAlarms"
        );
        assert_eq!(&translated.body[..], br#"{"AlarmNames":["a"]}"#);
        assert!(request_to_json(path, &HeaderMap::new(), b"").is_none());
    }
}
