//! Bearer tokens and JWTs over real HTTP: who may read what, what a refused credential gets,
//! reloads, and the admin port.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::support::*;

const ANALYTICS: &str = "analytics-token-0123456789abcdef";
const OPS: &str = "ops-token-fedcba9876543210";

fn key(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/it/keys")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn tokens_file(entries: &[(&str, &str, &[&str])]) -> String {
    entries
        .iter()
        .map(|(name, token, datasets)| {
            format!(
                "[[token]]\nname = \"{name}\"\nsha256 = \"{}\"\ndatasets = {}\n\n",
                quarry_server::auth::tokens::sha256_hex(token.as_bytes()),
                json!(datasets)
            )
        })
        .collect()
}

/// Three datasets: `people`, `orders_a`, `orders_b`.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["people", "orders_a", "orders_b"] {
        write_people(dir.path(), name, &people(20), 8);
    }
    dir
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn vary(r: &Resp) -> String {
    r.headers
        .iter()
        .filter(|(k, _)| k == "vary")
        .map(|(_, v)| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
        .to_ascii_lowercase()
}

/// A 401 with the one error shape and the RFC 6750 challenge.
fn assert_401(r: &Resp, invalid_token: bool, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.text());
    let j = r.json();
    let err = j["error"]
        .as_object()
        .unwrap_or_else(|| panic!("{what}: {j}"));
    assert_eq!(
        err.keys().map(String::as_str).collect::<Vec<_>>(),
        ["code", "message", "param"],
        "{what}"
    );
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}"
    );
    assert_eq!(err["param"], "Authorization", "{what}");
    let challenge = r.header("www-authenticate").unwrap_or("");
    if invalid_token {
        assert_eq!(err["code"], "invalid_token", "{what}");
        assert_eq!(
            challenge, "Bearer realm=\"quarry\", error=\"invalid_token\"",
            "{what}"
        );
    } else {
        assert_eq!(err["code"], "unauthorized", "{what}");
        assert_eq!(challenge, "Bearer realm=\"quarry\"", "{what}");
    }
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
}

#[test]
fn tokens_grant_per_dataset_access_and_hide_the_rest() {
    let dir = data_dir();
    let secrets = tempfile::tempdir().unwrap();
    let tokens = secrets.path().join("tokens.toml");
    std::fs::write(
        &tokens,
        tokens_file(&[
            ("analytics", ANALYTICS, &["orders_*"]),
            ("ops", OPS, &["*"]),
        ]),
    )
    .unwrap();
    let server = start(dir.path(), &["--auth-tokens", tokens.to_str().unwrap()]);
    let addr = server.local_addr();
    wait_ready(addr);
    let analytics = bearer(ANALYTICS);
    let as_analytics = |path: &str| get_with(addr, path, &[("Authorization", &analytics)]);

    // No credentials: 401 on every dataset route, probes and the document stay open.
    for path in [
        "/v1/datasets",
        "/v1/datasets/people",
        "/v1/datasets/nope",
        "/v1/datasets/orders_a/rows?limit=1",
        "/v1/datasets/orders_a/rows/3",
        "/v1/datasets/orders_a/columns/id",
    ] {
        assert_401(&get(addr, path), false, path);
    }
    for path in ["/livez", "/healthz", "/openapi.json"] {
        assert_eq!(get(addr, path).status, 200, "{path}");
    }
    // The API port's /healthz names no dataset; the admin port's does.
    assert_eq!(get(addr, "/healthz").json()["datasets"], json!({}));
    let detail = get(server.admin_addr(), "/healthz").json();
    assert_eq!(detail["datasets"]["people"]["state"], "ready", "{detail}");

    // The list names only what the token may read.
    let list = as_analytics("/v1/datasets");
    assert_eq!(list.status, 200);
    let names: Vec<String> = list.json()["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["orders_a", "orders_b"]);
    let all = get_with(addr, "/v1/datasets", &[("Authorization", &bearer(OPS))]);
    assert_eq!(all.json()["datasets"].as_array().unwrap().len(), 3);
    assert_ne!(list.header("etag"), all.header("etag"), "one ETag per view");

    // A dataset the token may not read is answered exactly like a missing one.
    for (hidden, missing) in [
        ("/v1/datasets/people", "/v1/datasets/nobody"),
        ("/v1/datasets/people/rows/3", "/v1/datasets/nobody/rows/3"),
        (
            "/v1/datasets/people/rows?limit=1",
            "/v1/datasets/nobody/rows?limit=1",
        ),
        (
            "/v1/datasets/people/columns/id",
            "/v1/datasets/nobody/columns/id",
        ),
    ] {
        let h = as_analytics(hidden);
        let m = as_analytics(missing);
        assert_eq!((h.status, m.status), (404, 404), "{hidden}");
        assert_eq!(
            h.text().replace("people", "X"),
            m.text().replace("nobody", "X"),
            "{hidden}"
        );
        assert_eq!(h.header("cache-control"), m.header("cache-control"));
    }

    // Readable datasets answer, privately cacheable, varying on the credential.
    for path in [
        "/v1/datasets/orders_a",
        "/v1/datasets/orders_b/rows/3",
        "/v1/datasets/orders_a/rows?limit=2",
        "/v1/datasets/orders_a/columns/id",
    ] {
        let r = as_analytics(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(
            vary(&r).contains("authorization"),
            "{path}: {:?}",
            r.headers
        );
        let cc = r.header("cache-control").unwrap_or("");
        assert!(
            cc.contains("private") && !cc.contains("public"),
            "{path}: {cc}"
        );
    }

    // The PostgREST face: refused in PostgREST's error shape, the same hiding.
    let r = get(addr, "/rest/orders_a?limit=1");
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["code"], "PGRST302");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer realm=\"quarry\"")
    );
    let r = get_with(addr, "/rest/orders_a", &[("Authorization", "Bearer nope")]);
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (401, json!("PGRST301"))
    );
    assert_eq!(as_analytics("/rest/orders_a?limit=1").status, 200);
    let (h, m) = (as_analytics("/rest/people"), as_analytics("/rest/nobody"));
    assert_eq!((h.status, m.status), (404, 404));
    assert_eq!(
        h.text().replace("people", "X"),
        m.text().replace("nobody", "X")
    );

    // A wrong token is refused as invalid.
    assert_401(
        &get_with(
            addr,
            "/v1/datasets",
            &[("Authorization", "Bearer not-a-known-token")],
        ),
        true,
        "unknown token",
    );
    // Metrics moved to the admin port, which needs no credentials.
    assert_eq!(get(addr, "/metrics").status, 404);
    let admin = server.admin_addr();
    let m = get(admin, "/metrics");
    assert_eq!(m.status, 200);
    let text = m.text();
    assert!(text.contains("quarry_auth_enabled 1"), "{text}");
    assert!(
        text.contains("quarry_auth_refused_total{reason=\"missing\"} 7"),
        "{text}"
    );
    assert!(
        text.contains("quarry_auth_refused_total{reason=\"invalid\"} 2"),
        "{text}"
    );
    for path in ["/livez", "/healthz"] {
        assert_eq!(get(admin, path).status, 200, "{path}");
    }
    assert_eq!(
        get(admin, "/v1/datasets").status,
        404,
        "no data on the admin port"
    );
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn without_auth_the_server_says_so_in_metrics_and_caches_publicly() {
    let dir = data_dir();
    let server = start(dir.path(), &[]);
    let addr = server.local_addr();
    wait_ready(addr);
    let r = get(addr, "/v1/datasets/people");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    assert!(!vary(&r).contains("authorization"));
    assert!(get(server.admin_addr(), "/metrics")
        .text()
        .contains("quarry_auth_enabled 0"));
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn malformed_headers_and_tokens_of_every_length_are_401() {
    let dir = data_dir();
    let secrets = tempfile::tempdir().unwrap();
    let tokens = secrets.path().join("tokens.toml");
    std::fs::write(&tokens, tokens_file(&[("ops", OPS, &["*"])])).unwrap();
    let server = start(
        dir.path(),
        &[
            "--auth-tokens",
            tokens.to_str().unwrap(),
            "--max-header-bytes",
            "262144",
        ],
    );
    let addr = server.local_addr();
    wait_ready(addr);
    let path = "/v1/datasets/people";
    let mut headers: Vec<String> = [
        "",
        "Bearer",
        "Bearer ",
        "bearer    ",
        "Basic b3BzOnB3",
        "Bearerx abc",
        "Bearer a b",
        "Bearer ==",
        "Bearer abc=def",
        "Bearer \"quoted\"",
        "Bearer eyJ.eyJ.",
        "Bearer eyJhbGciOiJub25lIn0.e30.",
        "Token abc",
        "Bearer ops-token-fedcba987654321",
        "Bearer ops-token-fedcba9876543210x",
        "Bearer OPS-TOKEN-FEDCBA9876543210",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for len in (1..=300).chain([1023, 1024, 4096, 8192, 8193, 100_000]) {
        headers.push(bearer(&"a".repeat(len)));
    }
    for h in &headers {
        let r = get_with(addr, path, &[("Authorization", h)]);
        let shown: String = h.chars().take(40).collect();
        assert_401(
            &r,
            true,
            &format!("Authorization: {shown} ({} bytes)", h.len()),
        );
    }
    // Two Authorization headers: refused, whichever is valid.
    let ok = bearer(OPS);
    let r = get_with(
        addr,
        path,
        &[("Authorization", &ok), ("Authorization", &ok)],
    );
    assert_401(&r, true, "two Authorization headers");
    let r = raw(
        addr,
        b"GET /v1/datasets/people HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n",
    );
    assert_401(&r, true, "non-ASCII token");
    // And the right token still works on the same server.
    assert_eq!(get_with(addr, path, &[("Authorization", &ok)]).status, 200);
    server.shutdown();
    server.join().unwrap();

    // With the default head limit, a 100 KB token never reaches auth: 431, not a 5xx.
    let server = start(dir.path(), &["--auth-tokens", tokens.to_str().unwrap()]);
    let addr = server.local_addr();
    wait_ready(addr);
    let r = get_with(
        addr,
        path,
        &[("Authorization", &bearer(&"a".repeat(100_000)))],
    );
    assert_eq!(r.status, 431);
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn the_tokens_file_reloads_and_a_bad_one_keeps_the_previous() {
    let dir = data_dir();
    let secrets = tempfile::tempdir().unwrap();
    let tokens = secrets.path().join("tokens.toml");
    let write = |text: String| {
        // Like a Secret update: a new file renamed over the old one.
        let tmp = secrets.path().join(".tokens.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &tokens).unwrap();
    };
    write(tokens_file(&[("analytics", ANALYTICS, &["orders_a"])]));
    let server = start(dir.path(), &["--auth-tokens", tokens.to_str().unwrap()]);
    let addr = server.local_addr();
    wait_ready(addr);
    let status =
        |token: &str, path: &str| get_with(addr, path, &[("Authorization", &bearer(token))]).status;
    assert_eq!(status(ANALYTICS, "/v1/datasets/orders_a"), 200);
    assert_eq!(status(ANALYTICS, "/v1/datasets/orders_b"), 404);
    assert_eq!(status(OPS, "/v1/datasets/orders_a"), 401);

    // Rotation: a new token, new rights, the old token revoked; cached answers do not linger.
    write(tokens_file(&[
        ("ops", OPS, &["*"]),
        ("analytics", ANALYTICS, &["orders_b"]),
    ]));
    server.reload();
    wait_until("the new token works", || {
        status(OPS, "/v1/datasets/people") == 200
    });
    assert_eq!(status(ANALYTICS, "/v1/datasets/orders_a"), 404);
    assert_eq!(status(ANALYTICS, "/v1/datasets/orders_b"), 200);

    // A broken file is refused; the previous credentials keep serving.
    write("[[token]]\nname = \"x\"\nsha256 = \"plaintext-token\"\ndatasets = [\"*\"]\n".into());
    server.reload();
    let admin = server.admin_addr();
    wait_until("the refusal is counted", || {
        get(admin, "/metrics")
            .text()
            .contains("quarry_auth_reload_failures_total 1")
    });
    assert_eq!(status(OPS, "/v1/datasets/people"), 200);
    assert_eq!(status("plaintext-token", "/v1/datasets/people"), 401);
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn bad_credentials_files_refuse_startup_naming_the_line() {
    let dir = data_dir();
    let secrets = tempfile::tempdir().unwrap();
    let path = secrets.path().join("tokens.toml");
    let good = tokens_file(&[("a", ANALYTICS, &["*"])]);
    for (text, want) in [
        (
            good.clone() + &tokens_file(&[("a", OPS, &["x"])]),
            "line 7, column 8: duplicate token name \"a\"",
        ),
        (
            tokens_file(&[("a", ANALYTICS, &["orders_{a"])]),
            "line 4, column 13: token \"a\": bad glob",
        ),
        (
            format!("{good}[[token]]\nname = \"b\"\nsha256 = \"{OPS}\"\ndatasets = []\n"),
            "line 8, column 10: token \"b\": sha256 is not 64 hex digits",
        ),
    ] {
        std::fs::write(&path, &text).unwrap();
        let err = quarry_server::start(config(
            dir.path(),
            &["--auth-tokens", path.to_str().unwrap()],
        ))
        .expect_err("a bad tokens file refuses startup");
        let msg = format!("{err:#}");
        assert!(msg.contains(want), "{msg}\nwanted: {want}");
        assert!(
            msg.contains(path.to_str().unwrap()),
            "names the file: {msg}"
        );
        assert!(!msg.contains(OPS), "never repeats a token: {msg}");
    }
    let missing = secrets.path().join("absent.toml");
    let err = quarry_server::start(config(
        dir.path(),
        &["--auth-tokens", missing.to_str().unwrap()],
    ))
    .expect_err("a missing tokens file refuses startup");
    assert!(format!("{err:#}").contains("absent.toml"), "{err:#}");
    std::fs::write(&path, "short").unwrap();
    let err = quarry_server::start(config(
        dir.path(),
        &["--jwt-secret-file", path.to_str().unwrap()],
    ))
    .expect_err("a short secret refuses startup");
    assert!(format!("{err:#}").contains("at least 32"), "{err:#}");
    std::fs::write(&path, key("ec_private.pem")).unwrap();
    let err = quarry_server::start(config(
        dir.path(),
        &["--jwt-public-keys", path.to_str().unwrap()],
    ))
    .expect_err("a private key refuses startup");
    assert!(format!("{err:#}").contains("private key"), "{err:#}");
}

fn sign(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

fn b64(v: &Value) -> String {
    base64_url_encode(v.to_string().as_bytes())
}

/// base64url without padding (RFC 7515 section 2), written out to keep the tests' JWTs
/// independent of the library under test.
fn base64_url_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n =
            chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[test]
fn jwts_are_verified_with_every_key_kind_and_refused_for_every_flaw() {
    let dir = data_dir();
    let secrets = tempfile::tempdir().unwrap();
    let secret = b"0123456789abcdef0123456789abcdef-hmac";
    let secret_file = secrets.path().join("secret");
    std::fs::write(&secret_file, [&secret[..], b"\n"].concat()).unwrap();
    let keys_file = secrets.path().join("keys.pem");
    std::fs::write(
        &keys_file,
        [
            key("rsa_public.pem"),
            key("ec_public.pem"),
            key("ed_public.pem"),
        ]
        .concat(),
    )
    .unwrap();
    let server = start(
        dir.path(),
        &[
            "--jwt-secret-file",
            secret_file.to_str().unwrap(),
            "--jwt-public-keys",
            keys_file.to_str().unwrap(),
            "--jwt-audience",
            "quarry-test",
            "--jwt-issuer",
            "https://issuer.test",
        ],
    );
    let addr = server.local_addr();
    wait_ready(addr);
    let call = |token: &str, path: &str| get_with(addr, path, &[("Authorization", &bearer(token))]);

    let hs = EncodingKey::from_secret(secret);
    let rs = EncodingKey::from_rsa_pem(&key("rsa_private.pem")).unwrap();
    let rs_other = EncodingKey::from_rsa_pem(&key("rsa_other_private.pem")).unwrap();
    let es = EncodingKey::from_ec_pem(&key("ec_private.pem")).unwrap();
    let ed = EncodingKey::from_ed_pem(&key("ed_private.pem")).unwrap();
    let t = now();
    let good = json!({
        "sub": "alice", "aud": "quarry-test", "iss": "https://issuer.test",
        "exp": t + 600, "nbf": t - 10, "quarry_datasets": ["orders_*"],
    });
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let without = |k: &str| {
        let mut c = good.clone();
        c.as_object_mut().unwrap().remove(k);
        c
    };

    for (alg, key) in [
        (Algorithm::HS256, &hs),
        (Algorithm::HS384, &hs),
        (Algorithm::HS512, &hs),
        (Algorithm::RS256, &rs),
        (Algorithm::PS256, &rs),
        (Algorithm::ES256, &es),
        (Algorithm::EdDSA, &ed),
    ] {
        let token = sign(alg, key, None, &good);
        assert_eq!(call(&token, "/v1/datasets/orders_a").status, 200, "{alg:?}");
        assert_eq!(call(&token, "/v1/datasets/people").status, 404, "{alg:?}");
        let names = call(&token, "/v1/datasets").json()["datasets"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(names, 2, "{alg:?}");
    }

    let rsa_public_pem = key("rsa_public.pem");
    let good_rs = sign(Algorithm::RS256, &rs, None, &good);
    let (head, rest) = good_rs.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let mut flipped: Vec<u8> = signature.bytes().collect();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let refused: Vec<(&str, String)> = vec![
        (
            "bad signature",
            format!("{head}.{payload}.{}", String::from_utf8(flipped).unwrap()),
        ),
        (
            "signed by an unknown key",
            sign(Algorithm::RS256, &rs_other, None, &good),
        ),
        (
            "payload swapped",
            format!(
                "{head}.{}.{signature}",
                b64(&with("quarry_datasets", json!(["*"])))
            ),
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "JWT"})),
                b64(&good)
            ),
        ),
        (
            "alg confusion: HS256 keyed with the RSA public key",
            sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(&rsa_public_pem),
                None,
                &good,
            ),
        ),
        (
            "HS256 with another secret",
            sign(
                Algorithm::HS256,
                &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
                None,
                &good,
            ),
        ),
        ("no exp", sign(Algorithm::RS256, &rs, None, &without("exp"))),
        (
            "exp as a string",
            sign(
                Algorithm::RS256,
                &rs,
                None,
                &with("exp", json!((t + 600).to_string())),
            ),
        ),
        // The default leeway is 5 s: one second past it.
        (
            "expired by one second",
            sign(Algorithm::RS256, &rs, None, &with("exp", json!(t - 6))),
        ),
        (
            "not valid yet",
            sign(Algorithm::RS256, &rs, None, &with("nbf", json!(t + 60))),
        ),
        (
            "another audience",
            sign(
                Algorithm::RS256,
                &rs,
                None,
                &with("aud", json!("someone-else")),
            ),
        ),
        (
            "no audience",
            sign(Algorithm::RS256, &rs, None, &without("aud")),
        ),
        (
            "another issuer",
            sign(
                Algorithm::RS256,
                &rs,
                None,
                &with("iss", json!("https://evil.test")),
            ),
        ),
        (
            "datasets claim missing",
            sign(Algorithm::RS256, &rs, None, &without("quarry_datasets")),
        ),
        (
            "datasets claim a string",
            sign(
                Algorithm::RS256,
                &rs,
                None,
                &with("quarry_datasets", json!("orders_a")),
            ),
        ),
        (
            "datasets claim with a number",
            sign(
                Algorithm::RS256,
                &rs,
                None,
                &with("quarry_datasets", json!(["orders_a", 7])),
            ),
        ),
        (
            "datasets claim with a bad glob",
            sign(
                Algorithm::RS256,
                &rs,
                None,
                &with("quarry_datasets", json!(["orders_["])),
            ),
        ),
        (
            "not JSON",
            format!(
                "{}.{}.{signature}",
                b64(&json!({"alg": "RS256"})),
                base64_url_encode(b"not json")
            ),
        ),
        ("two parts", format!("{head}.{payload}")),
    ];
    for (what, token) in &refused {
        let r = call(token, "/v1/datasets/orders_a");
        assert_401(&r, true, what);
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            !message.contains(token.as_str()),
            "{what}: the token is echoed"
        );
    }
    // The good token still works after all that (and from the cache).
    for _ in 0..3 {
        assert_eq!(call(&good_rs, "/v1/datasets/orders_b/rows/3").status, 200);
    }
    // A cached token stops working at exp: the leeway is 5 s, so exp = now + 1 expires within ~7 s.
    let short = sign(Algorithm::ES256, &es, None, &with("exp", json!(now() + 1)));
    assert_eq!(call(&short, "/v1/datasets/orders_a").status, 200);
    wait_until("the short-lived token expires", || {
        call(&short, "/v1/datasets/orders_a").status == 401
    });
    server.shutdown();
    server.join().unwrap();
}

#[test]
fn jwks_keys_are_chosen_by_kid_and_a_custom_claim_names_the_datasets() {
    let dir = data_dir();
    let secrets = tempfile::tempdir().unwrap();
    let jwks = secrets.path().join("jwks.json");
    std::fs::write(&jwks, key("jwks.json")).unwrap();
    let server = start(
        dir.path(),
        &[
            "--jwt-public-keys",
            jwks.to_str().unwrap(),
            "--jwt-datasets-claim",
            "tables",
            "--jwt-leeway",
            "0s",
        ],
    );
    let addr = server.local_addr();
    wait_ready(addr);
    let call = |token: &str, path: &str| get_with(addr, path, &[("Authorization", &bearer(token))]);
    let k1 = EncodingKey::from_rsa_pem(&key("rsa_private.pem")).unwrap();
    let k2 = EncodingKey::from_rsa_pem(&key("rsa_other_private.pem")).unwrap();
    let claims = json!({"sub": "bob", "exp": now() + 600, "tables": ["people"]});
    assert_eq!(
        call(
            &sign(Algorithm::RS256, &k1, Some("k1"), &claims),
            "/v1/datasets/people"
        )
        .status,
        200
    );
    assert_eq!(
        call(
            &sign(Algorithm::RS256, &k2, Some("k2"), &claims),
            "/v1/datasets/people"
        )
        .status,
        200
    );
    assert_eq!(
        call(
            &sign(Algorithm::RS256, &k2, None, &claims),
            "/v1/datasets/people"
        )
        .status,
        200
    );
    assert_401(
        &call(
            &sign(Algorithm::RS256, &k2, Some("k1"), &claims),
            "/v1/datasets/people",
        ),
        true,
        "kid of another key",
    );
    assert_401(
        &call(
            &sign(Algorithm::RS256, &k1, Some("k9"), &claims),
            "/v1/datasets/people",
        ),
        true,
        "unknown kid",
    );
    // The JWKS pins RS256: PS256 with the same key is another algorithm.
    assert_401(
        &call(
            &sign(Algorithm::PS256, &k1, Some("k1"), &claims),
            "/v1/datasets/people",
        ),
        true,
        "PS256 with an RS256 key",
    );
    // No leeway: expired by one second is refused.
    let expired = json!({"sub": "bob", "exp": now() - 1, "tables": ["people"]});
    assert_401(
        &call(
            &sign(Algorithm::RS256, &k1, Some("k1"), &expired),
            "/v1/datasets/people",
        ),
        true,
        "expired by 1 s",
    );
    // The default claim name means nothing here.
    let other_claim = json!({"sub": "bob", "exp": now() + 600, "quarry_datasets": ["people"]});
    assert_401(
        &call(
            &sign(Algorithm::RS256, &k1, Some("k1"), &other_claim),
            "/v1/datasets/people",
        ),
        true,
        "claim under the default name",
    );
    server.shutdown();
    server.join().unwrap();
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use std::net::SocketAddr;
    use std::sync::OnceLock;

    /// One server for every case: tokens and HS256 JWTs on, a large head limit so long
    /// tokens reach the parser. Kept for the test binary's life (killed at exit).
    fn server() -> SocketAddr {
        static SERVER: OnceLock<(SocketAddr, tempfile::TempDir, tempfile::TempDir)> =
            OnceLock::new();
        SERVER
            .get_or_init(|| {
                let dir = data_dir();
                let secrets = tempfile::tempdir().unwrap();
                let tokens = secrets.path().join("tokens.toml");
                std::fs::write(&tokens, tokens_file(&[("ops", OPS, &["*"])])).unwrap();
                let secret = secrets.path().join("secret");
                std::fs::write(&secret, [b'k'; 32]).unwrap();
                let server = start(
                    dir.path(),
                    &[
                        "--auth-tokens",
                        tokens.to_str().unwrap(),
                        "--jwt-secret-file",
                        secret.to_str().unwrap(),
                        "--max-header-bytes",
                        "65536",
                    ],
                );
                let addr = server.local_addr();
                wait_ready(addr);
                // The handle's threads keep serving; the process exit ends them.
                std::mem::forget(server);
                (addr, dir, secrets)
            })
            .0
    }

    fn jwt_part() -> impl Strategy<Value = String> {
        "[A-Za-z0-9_-]{0,300}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Any visible header value (HTTP allows no control bytes there): 401 in the one
        /// shape, never 5xx, never a dropped connection.
        #[test]
        fn arbitrary_authorization_values_get_401(value in "[ -~]{0,2000}") {
            let r = get_with(server(), "/v1/datasets/people", &[("Authorization", value.trim())]);
            assert_401(&r, true, "arbitrary value");
        }

        /// JWT-shaped tokens with arbitrary parts (and real base64 JSON headers naming every
        /// algorithm, including none) never pass and never fail the server.
        #[test]
        fn jwt_shaped_garbage_gets_401(
            alg in prop::sample::select(vec!["none", "HS256", "HS512", "RS256", "ES256", "EdDSA", "PS384", "xx"]),
            kid in proptest::option::of("[a-z0-9]{0,8}"),
            payload in jwt_part(),
            signature in jwt_part(),
            raw_head in any::<bool>(),
        ) {
            let head = if raw_head {
                "eyJ".to_string() + &payload[..payload.len().min(20)]
            } else {
                b64(&json!({"alg": alg, "typ": "JWT", "kid": kid}))
            };
            let token = format!("{head}.{payload}.{signature}");
            let r = get_with(server(), "/v1/datasets/people", &[("Authorization", &bearer(&token))]);
            assert_401(&r, true, &token);
        }
    }
}

#[test]
fn every_loop_sees_a_reload() {
    let dir = data_dir();
    let secrets = tempfile::tempdir().unwrap();
    let tokens = secrets.path().join("tokens.toml");
    std::fs::write(&tokens, tokens_file(&[("analytics", ANALYTICS, &["*"])])).unwrap();
    let server = start(
        dir.path(),
        &["--auth-tokens", tokens.to_str().unwrap(), "--threads", "2"],
    );
    let addr = server.local_addr();
    wait_ready(addr);
    let status = |token: &str| {
        get_with(
            addr,
            "/v1/datasets/people",
            &[("Authorization", &bearer(token))],
        )
        .status
    };
    // Fill both loops' caches (connections spread over the loops' listeners).
    for _ in 0..20 {
        assert_eq!(status(ANALYTICS), 200);
    }
    let tmp = secrets.path().join(".tokens.tmp");
    std::fs::write(&tmp, tokens_file(&[("ops", OPS, &["*"])])).unwrap();
    std::fs::rename(&tmp, &tokens).unwrap();
    server.reload();
    wait_until("the new token works", || status(OPS) == 200);
    // Revoked everywhere: no loop answers from a stale cache.
    for _ in 0..40 {
        assert_eq!(status(ANALYTICS), 401);
        assert_eq!(status(OPS), 200);
    }
    server.shutdown();
    server.join().unwrap();
}
