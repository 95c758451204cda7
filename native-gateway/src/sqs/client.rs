//! The SQS calls: AWS JSON 1.0 (`X-Amz-Target: AmazonSQS.<Operation>`, what botocore and
//! the AWS SDKs speak), each request signed with SigV4 by `aws-sigv4` (signing is pure: the
//! request is built and signed without IO) and sent by hyper's pooled client over rustls.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value as Json;

/// What went wrong with one SQS call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SqsError {
    /// The endpoint could not be reached, or the connection broke (the call may be retried).
    #[error("SQS endpoint {endpoint} unreachable: {reason}")]
    Unreachable {
        /// The endpoint's URL.
        endpoint: String,
        /// What failed (connection refused, timeout...).
        reason: String,
    },
    /// SQS answered with an error: its code (`QueueDoesNotExist`, `InvalidClientTokenId`,
    /// `SignatureDoesNotMatch`, ...) and message.
    #[error("SQS {operation} failed: {code}: {message} (HTTP {status})")]
    Service {
        /// The call (`SendMessage`...).
        operation: String,
        /// SQS's error code.
        code: String,
        /// SQS's message.
        message: String,
        /// The HTTP status.
        status: u16,
    },
    /// The answer was not what the protocol says.
    #[error("SQS {operation}: unexpected answer: {reason}")]
    Protocol {
        /// The call.
        operation: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// The request could not be signed (bad region or credentials text).
    #[error("SQS request could not be signed: {0}")]
    Signing(String),
}

impl SqsError {
    /// SQS's error code, for service errors.
    pub fn code(&self) -> Option<&str> {
        match self {
            SqsError::Service { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl From<SqsError> for kombu::Error {
    fn from(e: SqsError) -> Self {
        match &e {
            SqsError::Unreachable { .. } => kombu::Error::RecoverableConnection(e.to_string()),
            SqsError::Service { code, .. } if code == "QueueDoesNotExist" || code.ends_with("NonExistentQueue") => {
                kombu::Error::channel(kombu::ReplyCode::NotFound, e.to_string())
            }
            SqsError::Service { status, .. } if *status == 403 || *status == 401 => {
                kombu::Error::channel(kombu::ReplyCode::AccessRefused, e.to_string())
            }
            SqsError::Service { status, .. } if *status >= 500 => kombu::Error::RecoverableConnection(e.to_string()),
            SqsError::Service { .. } => kombu::Error::channel(kombu::ReplyCode::PreconditionFailed, e.to_string()),
            _ => kombu::Error::Operational(e.to_string()),
        }
    }
}

/// Where calls go and who signs them.
#[derive(Clone)]
pub struct Endpoint {
    /// `http(s)://host[:port]`, no trailing slash.
    pub url: String,
    /// The signing region.
    pub region: String,
    /// The signing credentials.
    pub credentials: Credentials,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint").field("url", &self.url).field("region", &self.region).finish_non_exhaustive()
    }
}

/// A pooled HTTP(S) client for SQS calls.
#[derive(Clone)]
pub struct SqsClient {
    http: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl std::fmt::Debug for SqsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqsClient").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl SqsClient {
    /// A client whose calls give up after `timeout` (on top of a long poll's own wait). TLS
    /// (`is_secure`): webpki roots plus `ssl_ca_certs` when given, as the other transports.
    pub fn new(info: &kombu::transport::ConnectInfo, timeout: Duration, connect_timeout: Duration) -> kombu::Result<SqsClient> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(connect_timeout));
        http.set_nodelay(true);
        let tls = (*crate::tls::client_config(info)?).clone();
        let https = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(http);
        let http = Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(30)).build(https);
        Ok(SqsClient { http, timeout })
    }

    /// Call `operation` with the JSON `input`; its JSON output. `extra_wait` is added to the
    /// timeout (a long poll's WaitTimeSeconds).
    pub async fn call(&self, at: &Endpoint, operation: &str, input: &Json, extra_wait: Duration) -> Result<Json, SqsError> {
        let request = signed_request(at, operation, input, SystemTime::now())?;
        let unreachable = |reason: String| SqsError::Unreachable { endpoint: at.url.clone(), reason };
        let send = async {
            let resp = self.http.request(request).await.map_err(|e| unreachable(error_chain(&e)))?;
            let status = resp.status().as_u16();
            let query_error = resp.headers().get("x-amzn-query-error").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = resp.into_body().collect().await.map_err(|e| unreachable(error_chain(&e)))?.to_bytes();
            Ok::<_, SqsError>((status, query_error, body))
        };
        let (status, query_error, body) = tokio::time::timeout(self.timeout + extra_wait, send)
            .await
            .map_err(|_| unreachable(format!("no answer to {operation} within {:?}", self.timeout + extra_wait)))??;
        parse_response(operation, status, query_error.as_deref(), &body)
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// The signed HTTP request for one call (no IO).
pub fn signed_request(at: &Endpoint, operation: &str, input: &Json, now: SystemTime) -> Result<http::Request<Full<Bytes>>, SqsError> {
    let body = serde_json::to_vec(input).expect("JSON values serialize");
    let uri = format!("{}/", at.url);
    let mut req = http::Request::builder()
        .method("POST")
        .uri(&uri)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amz-target", format!("AmazonSQS.{operation}"))
        .header("x-amzn-query-mode", "true")
        .body(Full::new(Bytes::new()))
        .map_err(|e| SqsError::Signing(format!("{uri}: {e}")))?;
    let host = req.uri().authority().map(|a| a.as_str().to_owned()).ok_or_else(|| SqsError::Signing(format!("{uri} has no host")))?;
    req.headers_mut().insert("host", http::HeaderValue::from_str(&host).map_err(|e| SqsError::Signing(e.to_string()))?);
    let identity = at.credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&at.region)
        .name("sqs")
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SqsError::Signing(e.to_string()))?
        .into();
    let headers: Vec<(&str, &str)> = req.headers().iter().filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?))).collect();
    let signable = SignableRequest::new("POST", &uri, headers.into_iter(), SignableBody::Bytes(&body)).map_err(|e| SqsError::Signing(e.to_string()))?;
    let (instructions, _) = sign(signable, &params).map_err(|e| SqsError::Signing(e.to_string()))?.into_parts();
    let mut req = req.map(|_| Full::new(Bytes::from(body)));
    instructions.apply_to_request_http1x(&mut req);
    Ok(req)
}

/// An answer: its JSON, or the error SQS named (`__type` `com.amazonaws.sqs#Code`, the
/// Query protocol's code in `x-amzn-query-error`, or an XML `<ErrorResponse>`'s `<Code>`).
pub fn parse_response(operation: &str, status: u16, query_error: Option<&str>, body: &[u8]) -> Result<Json, SqsError> {
    let json: Option<Json> = if body.is_empty() { Some(Json::Object(Default::default())) } else { serde_json::from_slice(body).ok() };
    if (200..300).contains(&status) {
        return json.ok_or_else(|| SqsError::Protocol { operation: operation.into(), reason: format!("HTTP {status} with a body that is not JSON: {}", String::from_utf8_lossy(&body[..body.len().min(200)])) });
    }
    let j = json.unwrap_or(Json::Null);
    let text = String::from_utf8_lossy(body);
    let type_code = j.get("__type").and_then(Json::as_str).map(|t| t.rsplit('#').next().unwrap_or(t).to_owned());
    let query_code = query_error.and_then(|q| q.split(';').next()).map(|c| c.trim_start_matches("AWS.SimpleQueueService.").to_owned());
    let xml_code = xml_element(&text, "Code").map(str::to_owned);
    let code = type_code.or(query_code).or(xml_code).unwrap_or_else(|| format!("HTTP{status}"));
    let message = j
        .get("message")
        .or_else(|| j.get("Message"))
        .and_then(Json::as_str)
        .or_else(|| xml_element(&text, "Message"))
        .map(str::to_owned)
        .unwrap_or_else(|| text.chars().take(300).collect());
    Err(SqsError::Service { operation: operation.into(), code, message, status })
}

/// The text of the first `<name>` element: moto answers credential errors to JSON calls
/// with a Query-protocol `<ErrorResponse>`.
fn xml_element<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    let start = body.find(&format!("<{name}>"))? + name.len() + 2;
    let len = body[start..].find(&format!("</{name}>"))?;
    Some(&body[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> Endpoint {
        Endpoint { url: "http://127.0.0.1:4566".into(), region: "us-east-1".into(), credentials: Credentials::new("AKID", "secret", None, None, "test") }
    }

    #[test]
    fn requests_are_aws_json_1_0_signed_with_sigv4() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let req = signed_request(&at(), "ListQueues", &serde_json::json!({"QueueNamePrefix": "a"}), t).unwrap();
        let h = req.headers();
        assert_eq!(h["x-amz-target"], "AmazonSQS.ListQueues");
        assert_eq!(h["content-type"], "application/x-amz-json-1.0");
        assert_eq!(h["x-amz-date"], "20231114T221320Z");
        let auth = h["authorization"].to_str().unwrap();
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKID/20231114/us-east-1/sqs/aws4_request, SignedHeaders="), "{auth}");
        assert!(auth.contains("x-amz-target"), "{auth}");
    }

    #[test]
    fn errors_name_sqs_error_code() {
        let e = parse_response("GetQueueUrl", 400, None, br#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}"#).unwrap_err();
        assert_eq!(e.code(), Some("QueueDoesNotExist"));
        assert!(e.to_string().contains("GetQueueUrl failed: QueueDoesNotExist"), "{e}");
        let e = parse_response("ListQueues", 403, Some("AWS.SimpleQueueService.InvalidClientTokenId;Sender"), b"<xml/>").unwrap_err();
        assert_eq!(e.code(), Some("InvalidClientTokenId"));
        let xml = br#"<?xml version="1.0" encoding="utf-8"?><ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match.</Message><Type>Sender</Type></Error></Errors></ErrorResponse>"#;
        let e = parse_response("ListQueues", 403, None, xml).unwrap_err();
        assert_eq!(e.code(), Some("SignatureDoesNotMatch"));
        assert!(e.to_string().ends_with("SignatureDoesNotMatch: The request signature we calculated does not match. (HTTP 403)"), "{e}");
        assert!(parse_response("ListQueues", 200, None, b"").unwrap().is_object());
        assert!(matches!(parse_response("ListQueues", 200, None, b"<html>"), Err(SqsError::Protocol { .. })));
    }
}
