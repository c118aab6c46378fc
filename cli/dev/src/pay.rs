//! `techctl dev pay ORDER_ID --approve|--reject`: what the customer does
//! with the order's QR code, through the running system's sandbox, which
//! then sends the payment service Mercado Pago's signed webhook.

use std::path::Path;

use hyper::Method;

use crate::DevError;
use crate::http::Local;

pub async fn exec(dir: &Path, order_id: &str, approve: bool) -> Result<(), DevError> {
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
    let webhook = &answer["webhook"];
    match status {
        200 => {
            println!(
                "order {order_id}: payment {} {}; the payment service took Mercado Pago's signed webhook ({}).",
                answer["payment_id"],
                answer["status"].as_str().unwrap_or(decision),
                webhook["answered"]
            );
            Ok(())
        }
        202 => {
            println!(
                "order {order_id}: payment {} {}; the payment service did not take the webhook yet (answered {}); the sandbox keeps sending it, as Mercado Pago does.",
                answer["payment_id"],
                answer["status"].as_str().unwrap_or(decision),
                webhook["answered"]
            );
            Ok(())
        }
        _ => Err(DevError::new(answer["message"].as_str().map_or_else(
            || format!("the sandbox answered {status}: {answer}"),
            str::to_string,
        ))),
    }
}
