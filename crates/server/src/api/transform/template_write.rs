//! POST `{tenant}/transform/template/{key}`: create or replace a regex template. Refused when
//! its capture groups can match fewer characters than a domain of 10⁶ values needs (NIST SP
//! 800-38G Rev. 1), or when it captures nothing.

use tresor_wire::api::transform::{self, TemplateRequest};

use super::mount::{self, refusal};
use crate::api::endpoint::{Call, Endpoint, blocking};
use crate::api::params;
use crate::api::reply::{ApiError, Reply};
use crate::transform::TemplateRecord;

pub(crate) const ENDPOINT: Endpoint =
    Endpoint::new(transform::WRITE_TEMPLATE, mount::WRITE, handle).mutating();

fn handle(call: &Call<'_>) -> Result<Reply, ApiError> {
    let body: TemplateRequest = params::body(call.body)?;
    let record = TemplateRecord {
        kind: body.kind.as_deref().unwrap_or("regex").to_owned(),
        pattern: body
            .pattern
            .as_deref()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| ApiError::bad_request("missing pattern"))?
            .to_owned(),
        alphabet: body
            .alphabet
            .as_deref()
            .filter(|a| !a.is_empty())
            .ok_or_else(|| ApiError::bad_request("missing alphabet"))?
            .to_owned(),
    };
    let transforms = mount::transforms(call)?;
    blocking(|| transforms.put_template(call.tenant(), call.key(), &record))
        .map_err(|e| refusal(e, false))?;
    Ok(Reply::no_content())
}
