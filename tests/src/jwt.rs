//! Signed JWTs for tests of what Envoy's JWT filter verifies: an ES256 key
//! made at test time, its JWKS for the filter's `local_jwks`, and tokens
//! with the claims a test chooses.

use crate::error::KitError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

const KID: &str = "e2e-key";

pub struct JwtIssuer {
    pub issuer: String,
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

fn crypto_error(what: &str) -> impl FnOnce(ring::error::Unspecified) -> KitError + '_ {
    move |_| KitError::Protocol(format!("{what} failed"))
}

impl JwtIssuer {
    pub fn new(issuer: &str) -> Result<Self, KitError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(crypto_error("generating a key"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|e| KitError::Protocol(format!("reading the key: {e}")))?;
        Ok(Self { issuer: issuer.to_string(), key, rng })
    }

    /// The public key as a JWKS document.
    pub fn jwks(&self) -> String {
        // An uncompressed P-256 point: 0x04, then x and y, 32 bytes each.
        let point = self.key.public_key().as_ref();
        let x = point.get(1..33).unwrap_or_default();
        let y = point.get(33..65).unwrap_or_default();
        json!({ "keys": [{ "kty": "EC", "crv": "P-256", "alg": "ES256", "kid": KID,
            "x": URL_SAFE_NO_PAD.encode(x), "y": URL_SAFE_NO_PAD.encode(y) }] })
        .to_string()
    }

    /// A token with `iss` set to this issuer, a far expiry, and `claims`.
    pub fn token(&self, claims: &Value) -> Result<String, KitError> {
        let mut payload = json!({ "iss": self.issuer, "exp": 4_000_000_000u64 });
        if let (Some(p), Some(c)) = (payload.as_object_mut(), claims.as_object()) {
            p.extend(c.clone());
        }
        let header = json!({ "alg": "ES256", "typ": "JWT", "kid": KID });
        let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(payload.to_string()));
        let signature = self.key.sign(&self.rng, input.as_bytes()).map_err(crypto_error("signing"))?;
        Ok(format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
    }

    /// Envoy's JWT filter with this issuer as its one provider, Istio-style:
    /// a valid token is verified and its payload put in the dynamic metadata
    /// under the issuer's name; a missing token passes; a bad one gets 401.
    pub fn envoy_filter(&self) -> Value {
        json!({
            "name": "envoy.filters.http.jwt_authn",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                "providers": { "issuer": {
                    "issuer": self.issuer,
                    "local_jwks": { "inline_string": self.jwks() },
                    "payload_in_metadata": self.issuer,
                    "forward": true,
                } },
                "rules": [{ "match": { "prefix": "/" }, "requires": { "requires_any": { "requirements": [
                    { "provider_name": "issuer" }, { "allow_missing": {} }
                ] } } }],
            },
        })
    }
}
