//! The static bearer tokens file (`--auth-tokens`): TOML `[[token]]` entries of `name`,
//! `sha256` (hex SHA-256 of the token; the file never holds a token) and `datasets` (names or
//! globs). Every problem is reported with the file's line and column.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use toml::Spanned;

use super::{DatasetGlobs, Principal, PrincipalKind};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    token: Vec<Spanned<Entry>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    name: Spanned<String>,
    sha256: Spanned<String>,
    datasets: Vec<Spanned<String>>,
}

/// The tokens of one version of the file.
#[derive(Debug)]
pub struct TokenSet {
    /// (SHA-256 of the token, who it is).
    entries: Vec<([u8; 32], Arc<Principal>)>,
}

impl TokenSet {
    /// Reads and checks the file.
    pub fn load(path: &Path) -> anyhow::Result<TokenSet> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read tokens file {}: {e}", path.display()))?;
        TokenSet::parse(&text).map_err(|e| anyhow::anyhow!("tokens file {}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<TokenSet, String> {
        let at = |span: std::ops::Range<usize>| position(text, span.start);
        let doc: FileDoc = toml::from_str(text).map_err(|e| {
            let mut msg = e.message().trim_end().to_string();
            if msg.contains("unknown field `token`") || msg.contains("unknown field `secret`") {
                msg.push_str(
                    "; the file holds only the SHA-256 of each token (quarry-server hash-token)",
                );
            }
            match e.span() {
                Some(span) => format!("{}: {msg}", at(span)),
                None => msg,
            }
        })?;
        let mut entries: Vec<([u8; 32], Arc<Principal>)> = Vec::with_capacity(doc.token.len());
        let mut names: Vec<(&str, String)> = Vec::new();
        for entry in &doc.token {
            let e = entry.get_ref();
            let name = e.name.get_ref();
            if name.is_empty() || name.len() > 128 || name.chars().any(|c| c.is_control()) {
                return Err(format!(
                    "{}: token name must be 1 to 128 characters without control characters",
                    at(e.name.span())
                ));
            }
            if let Some((_, first)) = names.iter().find(|(n, _)| *n == name.as_str()) {
                return Err(format!(
                    "{}: duplicate token name {name:?} (first at {first})",
                    at(e.name.span())
                ));
            }
            names.push((name, at(e.name.span())));
            let digest = parse_sha256(e.sha256.get_ref())
                .map_err(|why| format!("{}: token {name:?}: {why}", at(e.sha256.span())))?;
            if let Some((_, p)) = entries.iter().find(|(d, _)| d == &digest) {
                return Err(format!(
                    "{}: token {name:?} has the same sha256 as token {:?}",
                    at(e.sha256.span()),
                    p.name
                ));
            }
            let mut patterns = Vec::with_capacity(e.datasets.len());
            for p in &e.datasets {
                DatasetGlobs::check(p.get_ref())
                    .map_err(|why| format!("{}: token {name:?}: {why}", at(p.span())))?;
                patterns.push(p.get_ref().as_str());
            }
            let datasets = DatasetGlobs::new(&patterns)
                .map_err(|why| format!("{}: token {name:?}: {why}", at(entry.span())))?;
            entries.push((
                digest,
                Arc::new(Principal {
                    name: name.clone(),
                    kind: PrincipalKind::Token,
                    datasets,
                }),
            ));
        }
        Ok(TokenSet { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The token's entry. Every entry is compared, each in constant time, so the time taken
    /// does not depend on which entry (if any) matches or on how much of a digest matches.
    pub fn find(&self, token: &[u8]) -> Option<&Arc<Principal>> {
        let digest: [u8; 32] = Sha256::digest(token).into();
        let mut found = None;
        for (d, p) in &self.entries {
            if bool::from(d.ct_eq(&digest)) {
                found = Some(p);
            }
        }
        found
    }
}

/// 64 hex digits. Anything else is refused, with a hint when it looks like a token itself.
fn parse_sha256(s: &str) -> Result<[u8; 32], String> {
    let hint = "set sha256 to the hex SHA-256 of the token (quarry-server hash-token prints it); \
                the file must never hold a token itself";
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "sha256 is not 64 hex digits (it is {} characters{}); {hint}",
            s.len(),
            if s.bytes().any(|b| !b.is_ascii_hexdigit()) {
                ", not all hex: this looks like a plaintext token"
            } else {
                ""
            }
        ));
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
        let hex = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
        out[i] = (hex(pair[0]) << 4) | hex(pair[1]);
    }
    Ok(out)
}

/// Lowercase hex SHA-256 of a token: the `sha256` value of its entry.
pub fn sha256_hex(token: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(token);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
    out
}

/// `line L, column C` (1-based) of a byte offset.
fn position(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = text
        .get(line_start..offset)
        .map_or(offset - line_start, |s| s.chars().count())
        + 1;
    format!("line {line}, column {column}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b"; // "secret"

    fn entry(name: &str, sha: &str, datasets: &str) -> String {
        format!("[[token]]\nname = \"{name}\"\nsha256 = \"{sha}\"\ndatasets = {datasets}\n")
    }

    #[test]
    fn tokens_are_found_by_their_hash_only() {
        assert_eq!(sha256_hex(b"secret"), A);
        let text = entry("analytics", A, "[\"orders_*\", \"flights\"]")
            + &entry("ops", &sha256_hex(b"other"), "[\"*\"]");
        let set = TokenSet::parse(&text).expect("valid");
        assert_eq!(set.len(), 2);
        let p = set.find(b"secret").expect("known token");
        assert_eq!(p.name, "analytics");
        assert!(p.datasets.allows("orders_2024") && p.datasets.allows("flights"));
        assert!(!p.datasets.allows("flights2") && !p.datasets.allows("people"));
        assert_eq!(set.find(b"other").map(|p| p.name.as_str()), Some("ops"));
        assert!(set.find(b"secre").is_none() && set.find(b"").is_none());
        assert!(
            set.find(A.as_bytes()).is_none(),
            "the hash is not the token"
        );
        assert_eq!(TokenSet::parse("").expect("empty file").len(), 0);
    }

    #[test]
    fn bad_files_are_refused_with_the_line() {
        let cases = [
            (
                entry("a", A, "[\"x\"]") + &entry("a", &sha256_hex(b"b"), "[\"y\"]"),
                "line 6, column 8: duplicate token name \"a\" (first at line 2, column 8)",
            ),
            (
                entry("a", A, "[\"x\", \"orders_[\"]"),
                "line 4, column 18: token \"a\": bad glob \"orders_[\"",
            ),
            (
                entry("a", "hunter2-my-token", "[\"x\"]"),
                "line 3, column 10: token \"a\": sha256 is not 64 hex digits (it is 16 characters, not all hex: this looks like a plaintext token)",
            ),
            (
                entry("a", A, "[\"x\"]") + &entry("b", A, "[\"y\"]"),
                "line 7, column 10: token \"b\" has the same sha256 as token \"a\"",
            ),
            (
                "[[token]]\nname = \"a\"\ntoken = \"plain\"\n".to_string(),
                "line 3, column 1: unknown field `token`",
            ),
            (
                "[[token]]\nname = \"a\"\ndatasets = [\"x\"]\n".to_string(),
                "missing field `sha256`",
            ),
            (
                "[[token]\nname = 1\n".to_string(),
                "line 1, column",
            ),
            (
                entry("a", A, "\"x\""),
                "line 4, column 12: invalid type: string \"x\", expected a sequence",
            ),
            (entry("", A, "[\"x\"]"), "line 2, column 8: token name must be"),
            (entry("a", A, "[\"\"]"), "line 4, column 13: token \"a\": empty dataset pattern"),
            (entry("a", A, "[\"a/b\"]"), "token \"a\": dataset pattern \"a/b\" has '/'"),
        ];
        for (text, want) in cases {
            let err = TokenSet::parse(&text).expect_err(&text);
            assert!(err.contains(want), "{text}\n-> {err}\nwanted {want}");
            assert!(
                !err.contains("hunter2"),
                "the message repeats the token: {err}"
            );
        }
    }
}
