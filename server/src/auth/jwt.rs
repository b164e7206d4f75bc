//! JWT verification (jsonwebtoken): HS256/384/512 with `--jwt-secret-file`, RS*/PS*, ES256/384
//! and EdDSA with `--jwt-public-keys` (PEM blocks or a JWKS document).
//!
//! Refused: `alg: none` (not an algorithm jsonwebtoken knows), an `alg` outside the family of
//! the key that checks it (no HMAC with a public key as the secret), a missing `exp`, an `exp`
//! or `nbf` outside the leeway, another `aud`/`iss` when those are configured, and a datasets
//! claim that is missing or not a list of valid patterns.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::{DatasetGlobs, Principal, PrincipalKind};

/// Shortest HMAC secret accepted: RFC 7518 section 3.2 asks for a key as long as the hash.
const MIN_SECRET_BYTES: usize = 32;

/// What is checked besides the signature.
#[derive(Clone, Debug)]
pub struct Rules {
    pub audience: Option<String>,
    pub issuer: Option<String>,
    pub datasets_claim: String,
    pub leeway: Duration,
}

struct Key {
    kid: Option<String>,
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("family", &self.key.family())
            .field("algorithms", &self.validation.algorithms)
            .finish()
    }
}

/// The keys of one version of the secret and public-key files.
#[derive(Debug)]
pub struct JwtKeys {
    keys: Vec<Key>,
    datasets_claim: String,
}

/// A verified token: who, what it may read, and until when (`exp`, Unix seconds).
#[derive(Debug)]
pub struct Verified {
    pub principal: Arc<Principal>,
    pub exp: u64,
}

impl JwtKeys {
    pub fn load(
        secret_file: Option<&Path>,
        public_keys: Option<&Path>,
        rules: &Rules,
    ) -> anyhow::Result<JwtKeys> {
        let mut keys = Vec::new();
        if let Some(path) = secret_file {
            let bytes = std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("cannot read --jwt-secret-file {}: {e}", path.display())
            })?;
            let end = bytes
                .iter()
                .rposition(|b| !matches!(b, b'\n' | b'\r'))
                .map_or(0, |i| i + 1);
            let secret = &bytes[..end];
            if secret.len() < MIN_SECRET_BYTES {
                anyhow::bail!(
                    "--jwt-secret-file {}: the secret is {} bytes; at least {MIN_SECRET_BYTES} are required (RFC 7518 3.2)",
                    path.display(),
                    secret.len()
                );
            }
            keys.push(Key {
                kid: None,
                key: DecodingKey::from_secret(secret),
                validation: validation(
                    &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
                    rules,
                ),
            });
        }
        if let Some(path) = public_keys {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read --jwt-public-keys {}: {e}", path.display())
            })?;
            let found = if text.trim_start().starts_with('{') {
                jwks(&text, rules)
            } else {
                pem_blocks(&text, rules)
            }
            .map_err(|e| anyhow::anyhow!("--jwt-public-keys {}: {e}", path.display()))?;
            keys.extend(found);
        }
        Ok(JwtKeys {
            keys,
            datasets_claim: rules.datasets_claim.clone(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Verifies the token; the error is the client-facing reason.
    pub fn verify(&self, token: &[u8]) -> Result<Verified, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| describe(&e))?;
        let mut candidates = self.keys.iter().filter(|k| {
            k.validation.algorithms.contains(&header.alg)
                && match (&header.kid, &k.kid) {
                    (Some(want), Some(have)) => want == have,
                    _ => true,
                }
        });
        let mut last_error = None;
        let claims = loop {
            let Some(k) = candidates.next() else {
                return Err(last_error.unwrap_or_else(|| {
                    format!(
                        "no configured key accepts algorithm {:?}{}",
                        header.alg,
                        header
                            .kid
                            .as_deref()
                            .map(|kid| format!(" with kid {kid:?}"))
                            .unwrap_or_default()
                    )
                }));
            };
            match jsonwebtoken::decode::<Map<String, Value>>(token, &k.key, &k.validation) {
                Ok(data) => break data.claims,
                // Another key of the family may have signed it (rotation): try the next one.
                Err(e) if matches!(e.kind(), ErrorKind::InvalidSignature) => {
                    last_error = Some(describe(&e));
                }
                Err(e) => return Err(describe(&e)),
            }
        };
        self.principal(&claims)
    }

    fn principal(&self, claims: &Map<String, Value>) -> Result<Verified, String> {
        let claim = &self.datasets_claim;
        let patterns: Vec<&str> = match claims.get(claim) {
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().ok_or_else(|| {
                        format!(
                            "claim {claim:?} must be a list of dataset names or globs (strings)"
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(format!(
                    "claim {claim:?} must be a list of dataset names or globs"
                ))
            }
            None => return Err(format!("token has no {claim:?} claim")),
        };
        for p in &patterns {
            DatasetGlobs::check(p).map_err(|why| format!("claim {claim:?}: {why}"))?;
        }
        let datasets =
            DatasetGlobs::new(&patterns).map_err(|why| format!("claim {claim:?}: {why}"))?;
        // jsonwebtoken required and checked exp; a float or string exp never gets here.
        let exp = claims.get("exp").and_then(Value::as_u64).unwrap_or(0);
        let sub = match claims.get("sub") {
            // Logged: no control characters (a newline could forge a log line), bounded.
            Some(Value::String(s)) => s.chars().filter(|c| !c.is_control()).take(256).collect(),
            _ => String::new(),
        };
        Ok(Verified {
            principal: Arc::new(Principal {
                name: sub,
                kind: PrincipalKind::Jwt,
                datasets,
            }),
            exp,
        })
    }
}

fn validation(algorithms: &[Algorithm], rules: &Rules) -> Validation {
    let mut v = Validation::new(algorithms[0]);
    v.algorithms = algorithms.to_vec();
    v.validate_exp = true;
    v.validate_nbf = true;
    v.leeway = rules.leeway.as_secs();
    // jsonwebtoken checks aud/iss only when present: a configured one is also required.
    let mut required = vec!["exp"];
    match &rules.audience {
        Some(aud) => {
            v.set_audience(&[aud]);
            required.push("aud");
        }
        None => v.validate_aud = false,
    }
    if let Some(iss) = &rules.issuer {
        v.set_issuer(&[iss]);
        required.push("iss");
    }
    v.set_required_spec_claims(&required);
    v
}

fn family_algorithms(key: &DecodingKey) -> &'static [Algorithm] {
    use jsonwebtoken::AlgorithmFamily as F;
    match key.family() {
        F::Hmac => &[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512],
        F::Rsa => &[
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ],
        F::Ec => &[Algorithm::ES256, Algorithm::ES384],
        F::Ed => &[Algorithm::EdDSA],
    }
}

/// Every `-----BEGIN ...-----` block: an RSA, EC or Ed25519 public key (or certificate-less
/// SPKI); a private key or anything else is refused with the block's number.
fn pem_blocks(text: &str, rules: &Rules) -> Result<Vec<Key>, String> {
    let mut keys = Vec::new();
    let mut rest = text;
    let mut n = 0;
    while let Some(start) = rest.find("-----BEGIN ") {
        n += 1;
        let block_and_after = &rest[start..];
        let end_marker = block_and_after
            .find("-----END ")
            .ok_or_else(|| format!("PEM block {n} has no END line"))?;
        let after_end = &block_and_after[end_marker + 9..];
        let close = after_end
            .find("-----")
            .ok_or_else(|| format!("PEM block {n} has an unterminated END line"))?;
        let block_len = end_marker + 9 + close + 5;
        let block = &block_and_after[..block_len];
        rest = &block_and_after[block_len..];
        if block.contains("PRIVATE KEY") {
            return Err(format!(
                "PEM block {n} is a private key; give the public key only"
            ));
        }
        let b = block.as_bytes();
        let key = DecodingKey::from_rsa_pem(b)
            .or_else(|_| DecodingKey::from_ec_pem(b))
            .or_else(|_| DecodingKey::from_ed_pem(b))
            .map_err(|e| format!("PEM block {n} is not an RSA, EC or Ed25519 public key: {e}"))?;
        keys.push(Key {
            kid: None,
            validation: validation(family_algorithms(&key), rules),
            key,
        });
    }
    if keys.is_empty() {
        return Err("no PEM block (-----BEGIN PUBLIC KEY-----) and not a JWKS document".into());
    }
    Ok(keys)
}

/// A JWKS document (`{"keys": [...]}`); keys marked `"use": "enc"` are skipped, symmetric
/// (`oct`) keys refused: a shared secret belongs in `--jwt-secret-file`.
fn jwks(text: &str, rules: &Rules) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| {
        format!(
            "not a JWKS document at line {}, column {}: {e}",
            e.line(),
            e.column()
        )
    })?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.iter().enumerate() {
        if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
            continue;
        }
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return Err(format!(
                "key {i} is a symmetric (oct) key; put shared secrets in --jwt-secret-file"
            ));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key {i}: {e}"))?;
        let family = family_algorithms(&key);
        let algorithms: Vec<Algorithm> = match jwk.common.key_algorithm {
            Some(ka) => {
                let alg = ka.to_string().parse::<Algorithm>().ok();
                match alg {
                    Some(a) if family.contains(&a) => vec![a],
                    _ => {
                        return Err(format!(
                            "key {i}: algorithm {ka:?} cannot be used with this key type"
                        ))
                    }
                }
            }
            None => family.to_vec(),
        };
        keys.push(Key {
            kid: jwk.common.key_id.clone(),
            validation: validation(&algorithms, rules),
            key,
        });
    }
    if keys.is_empty() {
        return Err("the JWKS document has no signature keys".into());
    }
    Ok(keys)
}

/// The client-facing reason for a refused token.
fn describe(e: &jsonwebtoken::errors::Error) -> String {
    match e.kind() {
        ErrorKind::ExpiredSignature => "token expired (exp)".into(),
        ErrorKind::ImmatureSignature => "token not valid yet (nbf)".into(),
        ErrorKind::InvalidAudience => "token audience (aud) not accepted".into(),
        ErrorKind::InvalidIssuer => "token issuer (iss) not accepted".into(),
        ErrorKind::InvalidSignature => "bad token signature".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "token algorithm (alg) not accepted".into()
        }
        ErrorKind::MissingRequiredClaim(c) => format!("token has no {c:?} claim"),
        ErrorKind::InvalidClaimFormat(c) => format!("token claim {c:?} has the wrong type"),
        ErrorKind::Json(j) if j.to_string().contains("unknown variant") => {
            "token algorithm (alg) not accepted".into()
        }
        ErrorKind::Base64(_)
        | ErrorKind::Utf8(_)
        | ErrorKind::Json(_)
        | ErrorKind::InvalidToken => {
            "malformed token: not a JWT (header.payload.signature, base64url JSON)".into()
        }
        _ => "token refused".into(),
    }
}
