//! Content negotiation: picks the output format from an `Accept` header (RFC 9110 q-values).

use crate::error::{ErrorKind, QueryError};

/// The formats a rows response can be encoded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Json,
    Ndjson,
    Csv,
    /// Arrow IPC stream (`application/vnd.apache.arrow.stream`), for pyarrow / polars.
    ArrowStream,
}

impl OutputFormat {
    /// Formats in server preference order (used to break q-value ties between wildcards).
    const ALL: [OutputFormat; 4] = [
        OutputFormat::Json,
        OutputFormat::Ndjson,
        OutputFormat::Csv,
        OutputFormat::ArrowStream,
    ];

    pub fn content_type(self) -> &'static str {
        match self {
            OutputFormat::Json => "application/json",
            OutputFormat::Ndjson => "application/x-ndjson",
            OutputFormat::Csv => "text/csv; charset=utf-8",
            OutputFormat::ArrowStream => "application/vnd.apache.arrow.stream",
        }
    }

    /// The media types that name this format exactly.
    fn media_types(self) -> &'static [&'static str] {
        match self {
            OutputFormat::Json => &["application/json"],
            OutputFormat::Ndjson => &[
                "application/x-ndjson",
                "application/ndjson",
                "application/jsonl",
            ],
            OutputFormat::Csv => &["text/csv"],
            OutputFormat::ArrowStream => &["application/vnd.apache.arrow.stream"],
        }
    }
}

/// How well one media range matches a format: 3 exact, 2 `type/*`, 1 `*/*`, 0 no match.
fn specificity(range: &str, format: OutputFormat) -> u8 {
    if format
        .media_types()
        .iter()
        .any(|m| m.eq_ignore_ascii_case(range))
    {
        return 3;
    }
    if range == "*/*" {
        return 1;
    }
    if let Some(main) = range.strip_suffix("/*") {
        let ours = format.media_types()[0];
        if ours
            .split('/')
            .next()
            .is_some_and(|t| t.eq_ignore_ascii_case(main))
        {
            return 2;
        }
    }
    0
}

/// Picks the output format. No header (or an empty one) means JSON. Each format gets the q-value
/// of the most specific media range that matches it; the highest q wins, then the more specific
/// match, then the earlier range in the header, then JSON > NDJSON > CSV. Ranges with an
/// unparsable q are ignored. Nothing acceptable -> 406.
pub fn negotiate(accept: Option<&str>) -> Result<OutputFormat, QueryError> {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return Ok(OutputFormat::Json);
    };
    // (q, specificity, -position) per format; None = not matched.
    let mut best: Option<(OutputFormat, u16, u8, usize)> = None;
    for format in OutputFormat::ALL {
        // The most specific matching range decides this format's q.
        let mut chosen: Option<(u16, u8, usize)> = None;
        for (pos, item) in accept.split(',').enumerate() {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or("").trim();
            let mut q = Some(1000u16);
            for p in parts {
                let p = p.trim();
                if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                    q = parse_q(v.trim());
                }
            }
            let Some(q) = q else { continue };
            let s = specificity(range, format);
            if s == 0 {
                continue;
            }
            if chosen.is_none_or(|(_, cs, _)| s > cs) {
                chosen = Some((q, s, pos));
            }
        }
        if let Some((q, s, pos)) = chosen {
            if q == 0 {
                continue;
            }
            let better = match best {
                None => true,
                Some((_, bq, bs, bpos)) => {
                    (q, s, std::cmp::Reverse(pos)) > (bq, bs, std::cmp::Reverse(bpos))
                }
            };
            if better {
                best = Some((format, q, s, pos));
            }
        }
    }
    match best {
        Some((f, ..)) => Ok(f),
        None => Err(QueryError {
            kind: ErrorKind::NotAcceptable,
            code: "not_acceptable",
            message: format!(
                "no acceptable format in Accept: {accept:?}; this endpoint serves application/json, \
                 application/x-ndjson, text/csv and application/vnd.apache.arrow.stream"
            ),
            param: None,
        }),
    }
}

/// q-value in thousandths: "1", "0.5", "0.125"; None if malformed.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int: u16 = match int {
        "0" => 0,
        "1" => 1,
        _ => return None,
    };
    let mut f: u16 = 0;
    for i in 0..3 {
        f = f * 10 + frac.as_bytes().get(i).map_or(0, |b| u16::from(b - b'0'));
    }
    let q = int * 1000 + f;
    (q <= 1000).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_to_json() {
        assert_eq!(negotiate(None).unwrap(), OutputFormat::Json);
        assert_eq!(negotiate(Some("")).unwrap(), OutputFormat::Json);
        assert_eq!(negotiate(Some("*/*")).unwrap(), OutputFormat::Json);
        assert_eq!(
            negotiate(Some("application/*")).unwrap(),
            OutputFormat::Json
        );
    }

    #[test]
    fn exact_types() {
        assert_eq!(negotiate(Some("text/csv")).unwrap(), OutputFormat::Csv);
        assert_eq!(
            negotiate(Some("application/x-ndjson")).unwrap(),
            OutputFormat::Ndjson
        );
        assert_eq!(negotiate(Some("text/*")).unwrap(), OutputFormat::Csv);
        assert_eq!(negotiate(Some("TEXT/CSV")).unwrap(), OutputFormat::Csv);
        let arrow = "application/vnd.apache.arrow.stream";
        assert_eq!(negotiate(Some(arrow)).unwrap(), OutputFormat::ArrowStream);
    }

    #[test]
    fn q_values_decide() {
        let a = "application/json;q=0.5, text/csv;q=0.9";
        assert_eq!(negotiate(Some(a)).unwrap(), OutputFormat::Csv);
        let a = "text/csv;q=0.1, */*;q=0.8";
        assert_eq!(negotiate(Some(a)).unwrap(), OutputFormat::Json);
        // An exact q=0 excludes the format even if */* allows it.
        let a = "application/json;q=0, */*";
        assert_eq!(negotiate(Some(a)).unwrap(), OutputFormat::Ndjson);
        // Equal q: the more specific range wins over a wildcard.
        let a = "*/*, text/csv";
        assert_eq!(negotiate(Some(a)).unwrap(), OutputFormat::Csv);
        // Equal q and specificity: the earlier one wins.
        let a = "text/csv, application/json";
        assert_eq!(negotiate(Some(a)).unwrap(), OutputFormat::Csv);
    }

    #[test]
    fn nothing_acceptable_is_406() {
        let e = negotiate(Some("image/png")).unwrap_err();
        assert_eq!(e.status(), 406);
        let e = negotiate(Some("application/json;q=0")).unwrap_err();
        assert_eq!(e.status(), 406);
        // Malformed q -> the range is ignored.
        let e = negotiate(Some("application/json;q=2")).unwrap_err();
        assert_eq!(e.status(), 406);
    }

    #[test]
    fn parse_q_rules() {
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("0.125"), Some(125));
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("0.1234"), None);
        assert_eq!(parse_q("x"), None);
    }
}
