//! Just enough of STS for a client to take on a role as Atlas does: AssumeRole and
//! GetCallerIdentity, in STS's query protocol with XML answers.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::identity::Protocol;
use super::{request_id, Endpoint, Request, Response, WireError};
use crate::kms::Caller;

const XML_CONTENT_TYPE: &str = "text/xml";

impl Endpoint {
    pub(super) fn sts(&self, request: &Request<'_>) -> Response {
        let result = (|| {
            let form = parse_form(request.body)?;
            let field = |name: &str| form.get(name).map(String::as_str);
            let now = self.kms.clock().now();
            let caller = self.identities.caller(request, Protocol::Sts, now)?;
            match field("Action") {
                Some("AssumeRole") => {
                    let role = field("RoleArn").ok_or_else(|| sts_validation("RoleArn"))?;
                    let session = field("RoleSessionName")
                        .ok_or_else(|| sts_validation("RoleSessionName"))?;
                    let role_caller = Caller::new(role, caller.region())?;
                    let Some(role_name) = role.split_once(":role/").map(|(_, n)| n) else {
                        return Err(WireError::new(
                            400,
                            "ValidationError",
                            format!("{role} is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"),
                        ));
                    };
                    let issued =
                        self.identities
                            .assume_role(&caller, role, field("ExternalId"), now)?;
                    let assumed = format!(
                        "arn:aws:sts::{}:assumed-role/{role_name}/{session}",
                        role_caller.account()
                    );
                    Ok(format!(
                        "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>\
                         <AssumedRoleUser><AssumedRoleId>AROA{role_id}:{session_x}</AssumedRoleId><Arn>{assumed}</Arn></AssumedRoleUser>\
                         <Credentials><AccessKeyId>{key}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey>\
                         <SessionToken>{token}</SessionToken><Expiration>{expires}</Expiration></Credentials>\
                         </AssumeRoleResult><ResponseMetadata><RequestId>{id}</RequestId></ResponseMetadata></AssumeRoleResponse>",
                        role_id = crate::kms::hex::encode(role_name.as_bytes()),
                        session_x = xml_escape(session),
                        assumed = xml_escape(&assumed),
                        key = issued.access_key_id,
                        secret = issued.secret.as_str(),
                        token = issued.token.as_str(),
                        expires = issued.expires,
                        id = request_id(),
                    ))
                }
                Some("GetCallerIdentity") => Ok(format!(
                    "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
                     <Arn>{arn}</Arn><UserId>{arn}</UserId><Account>{account}</Account></GetCallerIdentityResult>\
                     <ResponseMetadata><RequestId>{id}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
                    arn = xml_escape(caller.principal()),
                    account = caller.account(),
                    id = request_id(),
                )),
                other => Err(WireError::new(
                    400,
                    "InvalidAction",
                    format!(
                        "STS action {:?} is not served: only AssumeRole and GetCallerIdentity",
                        other.unwrap_or("")
                    ),
                )),
            }
        })();
        match result {
            Ok(xml) => Response {
                status: 200,
                content_type: XML_CONTENT_TYPE,
                headers: vec![("x-amzn-RequestId", request_id())],
                body: Zeroizing::new(xml.into_bytes()),
            },
            Err(e) => Response {
                status: e.status,
                content_type: XML_CONTENT_TYPE,
                body: Zeroizing::new(
                    format!(
                        "<ErrorResponse><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
                        xml_escape(&e.name),
                        xml_escape(&e.message),
                        request_id()
                    )
                    .into_bytes(),
                ),
                headers: vec![
                    ("x-amzn-RequestId", request_id()),
                    ("x-amzn-ErrorType", e.name),
                ],
            },
        }
    }
}

fn sts_validation(field: &str) -> WireError {
    WireError::new(
        400,
        "ValidationError",
        format!("1 validation error detected: Value null at '{field}' failed to satisfy constraint: Member must not be null"),
    )
}

/// `application/x-www-form-urlencoded`, as STS's query protocol sends it.
fn parse_form(body: &[u8]) -> Result<BTreeMap<String, String>, WireError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| WireError::new(400, "MalformedInput", "the form body is not UTF-8"))?;
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

fn percent_decode(s: &str) -> Result<String, WireError> {
    let bad = || {
        WireError::new(
            400,
            "MalformedInput",
            format!("bad percent-encoding in {s:?}"),
        )
    };
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
                out.extend(
                    crate::kms::hex::decode(std::str::from_utf8(hex).map_err(|_| bad())?)
                        .ok_or_else(bad)?,
                );
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| bad())
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}
