//! STS `GetCallerIdentity` (AWS Query protocol, XML answers) for `pipeline-publisher check`:
//! says whose the signing key is, after checking the SigV4 signature like the job API does.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::Sandbox;
use super::ids;
use super::sigv4;
use super::state::CredentialScope;

/// True for requests signed for the `sts` service (used by the combined router).
pub(crate) fn is_sts_request(request: &Request) -> bool {
    sigv4::parse(request.headers()).is_ok_and(|authorization| authorization.service == "sts")
}

fn xml(status: StatusCode, body: String) -> Response {
    let mut response = (status, Body::from(body)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    xml(
        status,
        format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>\
             <Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
             <RequestId>{}</RequestId></ErrorResponse>",
            ids::uuid()
        ),
    )
}

/// The axum handler for STS requests.
pub(crate) async fn handle(State(sandbox): State<Sandbox>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, 64 * 1024).await else {
        return error(
            StatusCode::BAD_REQUEST,
            "MalformedInput",
            "request body too large",
        );
    };
    if let Some(response) = super::assume_role::handle(&sandbox, &parts, &body) {
        return response;
    }
    if !String::from_utf8_lossy(&body).contains("Action=GetCallerIdentity") {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            "The sandbox implements only GetCallerIdentity",
        );
    }
    let Ok(authorization) = sigv4::parse(&parts.headers) else {
        return error(
            StatusCode::FORBIDDEN,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        );
    };
    let credential = sandbox
        .inner
        .state()
        .credentials
        .get(&authorization.access_key_id)
        .cloned()
        .filter(|credential| !credential.revoked);
    let Some(credential) = credential else {
        return error(
            StatusCode::FORBIDDEN,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        );
    };
    let payload_hash = sigv4::sha256_hex(&body);
    if !sigv4::signature_matches(
        &authorization,
        &credential.secret,
        &parts.method,
        &parts.uri,
        &parts.headers,
        &payload_hash,
    ) {
        return error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        );
    }
    let account = &super::assume_role::identity_account(&sandbox, &credential.scope);
    let arn = match credential.scope {
        CredentialScope::Worker => format!("arn:aws:iam::{account}:user/pipeline-publisher-worker"),
        CredentialScope::Job(job_id) => {
            format!("arn:aws:sts::{account}:assumed-role/CodePipelineArtifactAccess/{job_id}")
        }
        CredentialScope::Assumed(session) => session.arn(),
    };
    xml(
        StatusCode::OK,
        format!(
            "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
             <GetCallerIdentityResult><Arn>{arn}</Arn><UserId>{}</UserId>\
             <Account>{account}</Account></GetCallerIdentityResult>\
             <ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata>\
             </GetCallerIdentityResponse>",
            authorization.access_key_id,
            ids::uuid()
        ),
    )
}
