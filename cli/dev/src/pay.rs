//! `techctl dev pay ORDER_ID --approve|--reject`: what the customer does
//! with the order's QR code, through the running system's sandbox, which
//! then sends the payment service Mercado Pago's signed webhook.

use std::path::Path;

use hyper::Method;

use crate::DevError;
use crate::http::Local;

/// What became of a payment made through the sandbox.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Paid {
    pub order_id: String,
    pub payment_id: serde_json::Value,
    pub status: String,
    /// The payment service took Mercado Pago's signed webhook; when it did
    /// not yet, the sandbox keeps sending it, as Mercado Pago does.
    pub webhook_taken: bool,
    /// The payment service's answer to the webhook.
    pub webhook_answered: serde_json::Value,
}

impl Paid {
    /// The outcome in a sentence for people.
    pub fn sentence(&self) -> String {
        let Paid {
            order_id,
            payment_id,
            status,
            webhook_answered,
            ..
        } = self;
        if self.webhook_taken {
            format!(
                "order {order_id}: payment {payment_id} {status}; the payment service took Mercado Pago's signed webhook ({webhook_answered})."
            )
        } else {
            format!(
                "order {order_id}: payment {payment_id} {status}; the payment service did not take the webhook yet (answered {webhook_answered}); the sandbox keeps sending it, as Mercado Pago does."
            )
        }
    }
}

pub async fn exec(dir: &Path, order_id: &str, approve: bool) -> Result<Paid, DevError> {
    let state = crate::running_in(dir)?;
    let decision = if approve { "approve" } else { "reject" };
    let url = format!(
        "{}/sandbox/orders/{}/{decision}",
        state.sandbox_url,
        order_id.trim()
    );
    let (status, answer) = Local::new()
        .call(Method::POST, &url, None, None)
        .await
        .map_err(|e| DevError::new(format!("the sandbox did not answer: {e}")))?;
    let paid = |webhook_taken: bool| Paid {
        order_id: order_id.to_string(),
        payment_id: answer["payment_id"].clone(),
        status: answer["status"].as_str().unwrap_or(decision).to_string(),
        webhook_taken,
        webhook_answered: answer["webhook"]["answered"].clone(),
    };
    match status {
        200 => Ok(paid(true)),
        202 => Ok(paid(false)),
        _ => Err(DevError::new(answer["message"].as_str().map_or_else(
            || format!("the sandbox answered {status}: {answer}"),
            str::to_string,
        ))),
    }
}
