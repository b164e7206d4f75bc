//! `like` / `ilike` patterns: `*` or `%` match any run of characters, `_` exactly one,
//! `\` escapes the next character (PostgREST passes `*` through as `%`; the rest is SQL LIKE).

/// One pattern element.
#[derive(Clone, Debug, PartialEq)]
enum P {
    Char(char),
    One,
    Any,
}

/// A compiled pattern, with fast paths for the common shapes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct LikePattern {
    elems: Vec<P>,
    shape: Shape,
    case_insensitive: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum Shape {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    General,
}

impl LikePattern {
    pub(crate) fn new(pattern: &str, case_insensitive: bool) -> LikePattern {
        let mut elems = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            elems.push(match c {
                '*' | '%' => {
                    if elems.last() == Some(&P::Any) {
                        continue;
                    }
                    P::Any
                }
                '_' => P::One,
                '\\' => P::Char(chars.next().unwrap_or('\\')),
                c if case_insensitive => P::Char(c), // lowered below with the whole literal
                c => P::Char(c),
            });
        }
        if case_insensitive {
            // Lowercase literal runs as strings (lowercasing can change a char count, so lower
            // each char on its own; values get the same per-char treatment in `lower`).
            elems = elems
                .into_iter()
                .flat_map(|e| match e {
                    P::Char(c) => c.to_lowercase().map(P::Char).collect::<Vec<_>>(),
                    other => vec![other],
                })
                .collect();
        }
        let lit = |es: &[P]| -> Option<String> {
            es.iter()
                .map(|e| match e {
                    P::Char(c) => Some(*c),
                    _ => None,
                })
                .collect()
        };
        let n = elems.len();
        let shape = if let Some(s) = lit(&elems) {
            Shape::Exact(s)
        } else if n >= 1 && elems[n - 1] == P::Any && lit(&elems[..n - 1]).is_some() {
            Shape::Prefix(lit(&elems[..n - 1]).unwrap_or_default())
        } else if n >= 1 && elems[0] == P::Any && lit(&elems[1..]).is_some() {
            Shape::Suffix(lit(&elems[1..]).unwrap_or_default())
        } else if n >= 2
            && elems[0] == P::Any
            && elems[n - 1] == P::Any
            && lit(&elems[1..n - 1]).is_some()
        {
            Shape::Contains(lit(&elems[1..n - 1]).unwrap_or_default())
        } else {
            Shape::General
        };
        LikePattern {
            elems,
            shape,
            case_insensitive,
        }
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        if self.case_insensitive {
            let lowered: String = s.chars().flat_map(char::to_lowercase).collect();
            self.matches_exact_case(&lowered)
        } else {
            self.matches_exact_case(s)
        }
    }

    fn matches_exact_case(&self, s: &str) -> bool {
        match &self.shape {
            Shape::Exact(l) => s == l,
            Shape::Prefix(l) => s.starts_with(l.as_str()),
            Shape::Suffix(l) => s.ends_with(l.as_str()),
            Shape::Contains(l) => s.contains(l.as_str()),
            Shape::General => general_match(&self.elems, s),
        }
    }
}

fn char_len_at(s: &str, i: usize) -> usize {
    s[i..].chars().next().map_or(1, char::len_utf8)
}

/// Greedy matching with backtracking to the last `Any` only: O(len(p) * len(s)) worst case.
fn general_match(p: &[P], s: &str) -> bool {
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                P::Any => {
                    star = Some((pi + 1, si));
                    pi += 1;
                    continue;
                }
                P::One if si < s.len() => {
                    si += char_len_at(s, si);
                    pi += 1;
                    continue;
                }
                P::Char(c) if s[si..].starts_with(c) => {
                    si += c.len_utf8();
                    pi += 1;
                    continue;
                }
                _ => {}
            }
        } else if si == s.len() {
            return true;
        }
        match star {
            Some((sp, ss)) if ss < s.len() => {
                let ns = ss + char_len_at(s, ss);
                star = Some((sp, ns));
                pi = sp;
                si = ns;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        LikePattern::new(p, false).matches(s)
    }

    #[test]
    fn shapes_and_wildcards() {
        assert!(m("abc", "abc") && !m("abc", "abcd"));
        assert!(m("ab*", "abcd") && !m("ab*", "xab"));
        assert!(m("*cd", "abcd") && !m("*cd", "cdx"));
        assert!(m("*bc*", "abcd") && !m("*bc*", "acbd"));
        assert!(m("%bc%", "abcd"));
        assert!(m("a_c", "abc") && m("a_c", "aéc") && !m("a_c", "ac"));
        assert!(m("a*b*c", "aXXbYYc") && m("a*b*c", "abc") && !m("a*b*c", "acb"));
        assert!(m("*", "") && m("**", "x") && !m("_", ""));
        assert!(m(r"a\*", "a*") && !m(r"a\*", "ab"));
        assert!(m("*a_", "xxab") && !m("*a_", "xxa"));
    }

    #[test]
    fn case_insensitive() {
        let p = LikePattern::new("*ÉTÉ*", true);
        assert!(p.matches("un été chaud"));
        assert!(!LikePattern::new("*ÉTÉ*", false).matches("un été chaud"));
    }
}
