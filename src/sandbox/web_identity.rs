//! The sandbox's outbound identity federation: the signing keys (RSA 2048 for `RS256`, P-384
//! for `ES384`, generated when the sandbox starts), JWTs signed with them for
//! `GetWebIdentityToken`, and the issuer documents a verifier fetches
//! (`{issuer}/.well-known/openid-configuration` and its JWKS), served unsigned.
//!
//! JWTs are assembled here by hand over `aws-lc-rs` signatures; the mock registry verifies them
//! with the `jsonwebtoken` crate, so the two sides share no code.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _, RSA_PKCS1_SHA256,
};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::Sandbox;
use super::ids;

/// The path under the sandbox's endpoint where the account's issuer lives (`/_oidc/{account}`).
/// No S3 bucket name can start with `_`, so the path never shadows a bucket.
pub(crate) const ISSUER_PATH_PREFIX: &str = "/_oidc/";

/// A JWT signing algorithm `GetWebIdentityToken` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SigningAlgorithm {
    Rs256,
    Es384,
}

impl SigningAlgorithm {
    /// `RS256` / `ES384`, as the request and the JWT header spell them.
    pub(crate) fn parse(value: &str) -> Option<Self> {
        match value {
            "RS256" => Some(Self::Rs256),
            "ES384" => Some(Self::Es384),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Rs256 => "RS256",
            Self::Es384 => "ES384",
        }
    }
}

/// The two signing keys and their key ids.
pub(crate) struct SigningKeys {
    rsa: RsaKeyPair,
    rsa_kid: String,
    ec: EcdsaKeyPair,
    ec_kid: String,
    rng: SystemRandom,
}

/// Key generation or signing failed inside the crypto library (never expected).
#[derive(Debug, thiserror::Error)]
#[error("the sandbox could not {0} a web identity token key")]
pub(crate) struct KeyError(&'static str);

impl SigningKeys {
    /// Fresh keys, each with a random key id.
    pub(crate) fn generate() -> Result<Self, KeyError> {
        Ok(Self {
            rsa: RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError("generate"))?,
            rsa_kid: ids::uuid(),
            ec: EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING)
                .map_err(|_| KeyError("generate"))?,
            ec_kid: ids::uuid(),
            rng: SystemRandom::new(),
        })
    }

    /// `header.claims.signature`, signed with the algorithm's key.
    pub(crate) fn sign(
        &self,
        algorithm: SigningAlgorithm,
        claims: &Value,
    ) -> Result<String, KeyError> {
        let kid = match algorithm {
            SigningAlgorithm::Rs256 => &self.rsa_kid,
            SigningAlgorithm::Es384 => &self.ec_kid,
        };
        let header = json!({ "alg": algorithm.name(), "typ": "JWT", "kid": kid });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match algorithm {
            SigningAlgorithm::Rs256 => {
                let mut signature = vec![0; self.rsa.public_modulus_len()];
                self.rsa
                    .sign(
                        &RSA_PKCS1_SHA256,
                        &self.rng,
                        signing_input.as_bytes(),
                        &mut signature,
                    )
                    .map_err(|_| KeyError("sign with"))?;
                signature
            }
            SigningAlgorithm::Es384 => self
                .ec
                .sign(&self.rng, signing_input.as_bytes())
                .map_err(|_| KeyError("sign with"))?
                .as_ref()
                .to_vec(),
        };
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }

    /// The public keys as a JWK set (RFC 7517).
    pub(crate) fn jwks(&self) -> Value {
        let rsa_public = self.rsa.public_key();
        // Uncompressed SEC1 point: 0x04 || x (48 bytes) || y (48 bytes).
        let point = self.ec.public_key().as_ref();
        let coordinates = point.get(1..).unwrap_or_default();
        let (x, y) = coordinates.split_at(coordinates.len() / 2);
        json!({
            "keys": [
                {
                    "kty": "RSA",
                    "use": "sig",
                    "alg": "RS256",
                    "kid": self.rsa_kid,
                    "n": URL_SAFE_NO_PAD.encode(rsa_public.modulus().big_endian_without_leading_zero()),
                    "e": URL_SAFE_NO_PAD.encode(rsa_public.exponent().big_endian_without_leading_zero()),
                },
                {
                    "kty": "EC",
                    "use": "sig",
                    "alg": "ES384",
                    "crv": "P-384",
                    "kid": self.ec_kid,
                    "x": URL_SAFE_NO_PAD.encode(x),
                    "y": URL_SAFE_NO_PAD.encode(y),
                }
            ]
        })
    }
}

/// True for the unsigned `GET`s of the issuer documents.
pub(crate) fn is_issuer_request(request: &Request) -> bool {
    request.method() == Method::GET
        && request.uri().path().starts_with(ISSUER_PATH_PREFIX)
        && !request.headers().contains_key(header::AUTHORIZATION)
}

/// Serves `{issuer}/.well-known/openid-configuration` and `{issuer}/.well-known/jwks.json`.
pub(crate) async fn handle_issuer(State(sandbox): State<Sandbox>, request: Request) -> Response {
    let issuer = sandbox.oidc_issuer_url();
    let issuer_path = format!("{ISSUER_PATH_PREFIX}{}", sandbox.inner.config.account_id);
    let Some(rest) = request.uri().path().strip_prefix(&issuer_path) else {
        return json_response(StatusCode::NOT_FOUND, json!({ "message": "Not Found" }));
    };
    match rest {
        "/.well-known/openid-configuration" => json_response(
            StatusCode::OK,
            json!({
                "issuer": issuer,
                "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
                "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256", "ES384"],
                "claims_supported": ["aud", "exp", "iat", "iss", "jti", "sub", "https://sts.amazonaws.com/"],
            }),
        ),
        "/.well-known/jwks.json" => match sandbox.inner.identity.keys() {
            Some(keys) => json_response(StatusCode::OK, keys.jwks()),
            None => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "message": "no signing keys" }),
            ),
        },
        _ => json_response(StatusCode::NOT_FOUND, json!({ "message": "Not Found" })),
    }
}

fn json_response(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Body::from(body.to_string())).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
