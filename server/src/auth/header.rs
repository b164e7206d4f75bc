//! The `Authorization: Bearer <token>` header (RFC 6750 section 2.1), parsed without allocating.

/// Longest token accepted. Longer ones are refused before any hashing or decoding, so a
/// client cannot make the server hash or base64-decode a large header per request.
pub const MAX_TOKEN_BYTES: usize = 8192;

/// Why a request's `Authorization` header carries no usable bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// More than one `Authorization` header.
    Repeated,
    /// A scheme other than `Bearer` (e.g. `Basic`), or no scheme at all.
    NotBearer,
    /// `Bearer` with nothing after it.
    Empty,
    /// A byte outside the token68 alphabet, or text after the token.
    BadCharacter {
        offset: usize,
    },
    TooLong {
        len: usize,
    },
}

impl HeaderError {
    /// The client-facing reason (never contains the token).
    pub fn message(self) -> String {
        match self {
            HeaderError::Repeated => "more than one Authorization header".to_string(),
            HeaderError::NotBearer => {
                "the Authorization header must use the Bearer scheme: `Authorization: Bearer <token>`"
                    .to_string()
            }
            HeaderError::Empty => "the Authorization header has no token after `Bearer`".to_string(),
            HeaderError::BadCharacter { offset } => format!(
                "the Authorization header has a byte that cannot be part of a bearer token at byte offset {offset}"
            ),
            HeaderError::TooLong { len } => format!(
                "the bearer token is {len} bytes; the limit is {MAX_TOKEN_BYTES}"
            ),
        }
    }
}

/// The token of `Bearer <token>`: the scheme is case-insensitive, spaces or tabs separate it
/// from the token, trailing spaces or tabs are ignored, and the token is token68
/// (`A-Z a-z 0-9 - . _ ~ + /` then any `=`), which covers hex, base64url and JWTs.
pub fn bearer_token(value: &[u8]) -> Result<&[u8], HeaderError> {
    let (start, token) = bearer_slice(value)?;
    check_token68(token, start)?;
    Ok(token)
}

/// The text after `Bearer` (trimmed, non-empty, at most [`MAX_TOKEN_BYTES`]) and its offset in
/// the header value, its characters not yet checked: a token found in the cache of verified
/// tokens was checked when it was first seen, so only a miss pays for [`check_token68`].
pub fn bearer_slice(value: &[u8]) -> Result<(usize, &[u8]), HeaderError> {
    const SCHEME: &[u8] = b"bearer";
    let is_space = |b: u8| b == b' ' || b == b'\t';
    let start = value
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(value.len());
    let rest = &value[start..];
    if rest.len() < SCHEME.len() || !rest[..SCHEME.len()].eq_ignore_ascii_case(SCHEME) {
        return Err(HeaderError::NotBearer);
    }
    let after = &rest[SCHEME.len()..];
    if after.first().is_some_and(|&b| !is_space(b)) {
        // "Bearerabc" or "Bearer_": another scheme name that merely starts with "bearer".
        return Err(HeaderError::NotBearer);
    }
    let skip = after
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(after.len());
    let token_start = start + SCHEME.len() + skip;
    let end = value
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(0, |i| i + 1);
    if end <= token_start {
        return Err(HeaderError::Empty);
    }
    let token = &value[token_start..end];
    if token.len() > MAX_TOKEN_BYTES {
        return Err(HeaderError::TooLong { len: token.len() });
    }
    Ok((token_start, token))
}

/// token68: `A-Z a-z 0-9 - . _ ~ + /`, then only `=`; `offset` is where the token starts.
pub fn check_token68(token: &[u8], token_start: usize) -> Result<(), HeaderError> {
    let body_end = token.iter().position(|&b| b == b'=').unwrap_or(token.len());
    if body_end == 0 {
        return Err(HeaderError::BadCharacter {
            offset: token_start,
        });
    }
    // A table lookup per byte: JWTs are hundreds of bytes and this runs on every request.
    if let Some(i) = token[..body_end]
        .iter()
        .position(|&b| !TOKEN68[usize::from(b)])
    {
        return Err(HeaderError::BadCharacter {
            offset: token_start + i,
        });
    }
    if let Some(i) = token[body_end..].iter().position(|&b| b != b'=') {
        return Err(HeaderError::BadCharacter {
            offset: token_start + body_end + i,
        });
    }
    Ok(())
}

/// The token68 characters before any trailing `=`.
const TOKEN68: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
        b += 1;
    }
    t
};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bearer_tokens_are_taken_from_well_formed_headers() {
        assert_eq!(bearer_token(b"Bearer abc"), Ok(&b"abc"[..]));
        assert_eq!(bearer_token(b"bearer  abc=="), Ok(&b"abc=="[..]));
        assert_eq!(bearer_token(b"\tBEARER\tx.y.z \t"), Ok(&b"x.y.z"[..]));
        assert_eq!(bearer_token(b"Bearer a-._~+/9"), Ok(&b"a-._~+/9"[..]));
    }

    #[test]
    fn malformed_headers_say_what_is_wrong_and_where() {
        assert_eq!(bearer_token(b""), Err(HeaderError::NotBearer));
        assert_eq!(
            bearer_token(b"Basic dXNlcjpwdw=="),
            Err(HeaderError::NotBearer)
        );
        assert_eq!(bearer_token(b"Bearerabc"), Err(HeaderError::NotBearer));
        assert_eq!(bearer_token(b"abc"), Err(HeaderError::NotBearer));
        assert_eq!(bearer_token(b"Bearer"), Err(HeaderError::Empty));
        assert_eq!(bearer_token(b"Bearer    "), Err(HeaderError::Empty));
        assert_eq!(
            bearer_token(b"Bearer a b"),
            Err(HeaderError::BadCharacter { offset: 8 })
        );
        assert_eq!(
            bearer_token(b"Bearer ab=c"),
            Err(HeaderError::BadCharacter { offset: 10 })
        );
        assert_eq!(
            bearer_token(b"Bearer =="),
            Err(HeaderError::BadCharacter { offset: 7 })
        );
        assert_eq!(
            bearer_token(b"Bearer \xff"),
            Err(HeaderError::BadCharacter { offset: 7 })
        );
        let long = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES + 1));
        assert_eq!(
            bearer_token(long.as_bytes()),
            Err(HeaderError::TooLong {
                len: MAX_TOKEN_BYTES + 1
            })
        );
        let longest = format!("Bearer {}", "a".repeat(MAX_TOKEN_BYTES));
        assert!(bearer_token(longest.as_bytes()).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// Any bytes: no panic, an accepted token is a token68 slice of the input, and an
        /// offset in an error points inside the input.
        #[test]
        fn any_header_bytes_parse_without_panicking(value in proptest::collection::vec(any::<u8>(), 0..64)) {
            match bearer_token(&value) {
                Ok(token) => {
                    prop_assert!(!token.is_empty() && token.len() <= MAX_TOKEN_BYTES);
                    prop_assert!(token.iter().all(|b| b.is_ascii_graphic()));
                    prop_assert!(value.windows(token.len()).any(|w| w == token));
                }
                Err(HeaderError::BadCharacter { offset }) => prop_assert!(offset < value.len()),
                Err(e) => prop_assert!(!e.message().is_empty()),
            }
        }

        /// Headers built the way clients send them always yield their token back.
        #[test]
        fn generated_bearer_headers_round_trip(
            scheme in "[bB][eE][aA][rR][eE][rR]",
            gap in "[ \t]{1,3}",
            token in "[A-Za-z0-9._~+/-]{1,200}={0,2}",
            trail in "[ \t]{0,2}",
        ) {
            let header = format!("{scheme}{gap}{token}{trail}");
            prop_assert_eq!(bearer_token(header.as_bytes()), Ok(token.as_bytes()));
        }
    }
}
