//! Reading AWS policy documents (IAM role policies, SQS queue policies),
//! where `Statement`, `Action`, `Resource` and condition values may each be
//! one item or a list.

use serde_json::Value;

/// The statements of a policy document, whether it holds one or a list.
pub fn statements(document: &Value) -> Vec<&Value> {
    match document.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(single) => vec![single],
        None => vec![],
    }
}

/// A field that holds a string or a list of strings.
pub fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => vec![],
    }
}
