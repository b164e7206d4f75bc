//! `like` / `ilike` patterns: `*` or `%` match any run of characters, `_` exactly one,
//! `\` escapes the next character (PostgREST passes `*` through as `%`; the rest is SQL LIKE).
//!
//! Matching never backtracks: the common shapes (exact, prefix, suffix, contains) are std's
//! linear searches, and every other pattern runs as a bit-parallel NFA (Shift-And with
//! self-loops for `%`), O(value chars x pattern elements / 64) whatever the data: the worst
//! pattern the length cap allows costs a fixed number of word operations per value byte.

/// The longest pattern accepted, in characters (the request target is capped anyway; this
/// bounds the NFA's width, so the per-byte cost of the worst pattern).
pub const MAX_PATTERN_CHARS: usize = 4096;

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
    shape: Shape,
    case_insensitive: bool,
}

#[derive(Clone, Debug, PartialEq)]
enum Shape {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    General(Nfa),
}

/// The pattern's NFA as bitsets: state `i` = the first `i` non-`%` elements matched; bit `i`
/// of word `i / 64`. On a character `c`, `D' = ((D << 1) & accepts(c)) | (D & loops)`.
#[derive(Clone, Debug, PartialEq)]
struct Nfa {
    /// Words per bitset.
    words: usize,
    /// States `0..=last`; `last` is the accepting one.
    last: usize,
    /// States with a self-loop on any character (a `%` follows them).
    loops: Vec<u64>,
    /// States entered on any character (`_`).
    any: Vec<u64>,
    /// States entered on ASCII character `b`: `ascii[b * words..][..words]` (with `any` ORed in).
    ascii: Vec<u64>,
    /// The same for the other characters of the pattern (with `any` ORed in).
    other: Vec<(char, Vec<u64>)>,
}

impl Nfa {
    fn new(elems: &[P]) -> Nfa {
        let last = elems.iter().filter(|e| **e != P::Any).count();
        let words = last / 64 + 1;
        let mut nfa = Nfa {
            words,
            last,
            loops: vec![0; words],
            any: vec![0; words],
            ascii: vec![0; 128 * words],
            other: Vec::new(),
        };
        let set = |v: &mut [u64], i: usize| v[i / 64] |= 1 << (i % 64);
        let mut state = 0;
        for e in elems {
            match e {
                P::Any => set(&mut nfa.loops, state),
                P::One => {
                    state += 1;
                    set(&mut nfa.any, state);
                }
                P::Char(c) => {
                    state += 1;
                    if c.is_ascii() {
                        let b = *c as usize;
                        set(&mut nfa.ascii[b * words..(b + 1) * words], state);
                    } else {
                        let at = match nfa.other.iter().position(|(x, _)| x == c) {
                            Some(at) => at,
                            None => {
                                nfa.other.push((*c, vec![0; words]));
                                nfa.other.len() - 1
                            }
                        };
                        set(&mut nfa.other[at].1, state);
                    }
                }
            }
        }
        for chunk in nfa.ascii.chunks_mut(words) {
            for (w, a) in chunk.iter_mut().zip(&nfa.any) {
                *w |= a;
            }
        }
        for (_, v) in &mut nfa.other {
            for (w, a) in v.iter_mut().zip(&nfa.any) {
                *w |= a;
            }
        }
        nfa
    }

    fn accepts(&self, c: char) -> &[u64] {
        if c.is_ascii() {
            let b = c as usize;
            &self.ascii[b * self.words..(b + 1) * self.words]
        } else {
            self.other
                .iter()
                .find(|(x, _)| *x == c)
                .map_or(&self.any[..], |(_, v)| &v[..])
        }
    }

    fn matches(&self, s: &str) -> bool {
        let words = self.words;
        // Small patterns (the usual case) keep the state on the stack.
        let mut stack = [0u64; 4];
        let mut heap = Vec::new();
        let d: &mut [u64] = if words <= stack.len() {
            &mut stack[..words]
        } else {
            heap.resize(words, 0);
            &mut heap
        };
        d[0] = 1;
        for c in s.chars() {
            let accept = self.accepts(c);
            let mut carry = 0u64;
            let mut alive = 0u64;
            for i in 0..words {
                let w = d[i];
                let shifted = (w << 1) | carry;
                carry = w >> 63;
                let next = (shifted & accept[i]) | (w & self.loops[i]);
                d[i] = next;
                alive |= next;
            }
            if alive == 0 {
                return false;
            }
        }
        d[self.last / 64] & (1 << (self.last % 64)) != 0
    }
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
            Shape::General(Nfa::new(&elems))
        };
        LikePattern {
            shape,
            case_insensitive,
        }
    }

    /// What testing one value byte costs, in word operations: the NFA's width for general
    /// patterns, 1 for std's searches (2 with the lowercasing of `ilike`).
    pub(crate) fn cost_per_byte(&self) -> u64 {
        let base = match &self.shape {
            Shape::General(nfa) => nfa.words as u64 + 1,
            _ => 1,
        };
        base + u64::from(self.case_insensitive)
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
            Shape::General(nfa) => nfa.matches(s),
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

    /// The backtracking matcher this module used before, as the reference.
    fn reference(p: &str, s: &str) -> bool {
        let p: Vec<char> = p.chars().collect();
        let s: Vec<char> = s.chars().collect();
        fn go(p: &[char], s: &[char]) -> bool {
            match p.split_first() {
                None => s.is_empty(),
                Some(('%' | '*', rest)) => (0..=s.len()).any(|k| go(rest, &s[k..])),
                Some(('_', rest)) => !s.is_empty() && go(rest, &s[1..]),
                Some(('\\', rest)) => {
                    let (c, rest) = rest.split_first().map_or(('\\', rest), |(c, r)| (*c, r));
                    s.first() == Some(&c) && go(rest, &s[1..])
                }
                Some((c, rest)) => s.first() == Some(c) && go(rest, &s[1..]),
            }
        }
        go(&p, &s)
    }

    #[test]
    fn the_nfa_agrees_with_a_reference_matcher() {
        let pieces = ["a", "b", "é", "_", "%", "*", "ab", "\\_", "\\%"];
        let values = [
            "", "a", "b", "ab", "ba", "aab", "abab", "é", "aéb", "_", "%", "a_b", "bbbbbba",
        ];
        let mut n = 0;
        for x in pieces {
            for y in pieces {
                for z in pieces {
                    let p = format!("{x}{y}{z}");
                    for v in values {
                        assert_eq!(m(&p, v), reference(&p, v), "{p:?} on {v:?}");
                        n += 1;
                    }
                }
            }
        }
        assert!(n > 9000);
        // Wider than one word: states past 64 and 128.
        let long = format!("%{}_b%", "a".repeat(150));
        let hit = format!("x{}yb", "a".repeat(150));
        assert!(m(&long, &hit) && !m(&long, &"a".repeat(400)));
        assert!(m(&long, &format!("{}cb", "a".repeat(300))));
    }

    #[test]
    fn the_worst_pattern_is_linear_in_the_value() {
        // 2,000 `a`s then `_b` over a long run of `a`s: quadratic for a backtracking matcher.
        let p = LikePattern::new(&format!("*{}_b", "a".repeat(2000)), false);
        let v = "a".repeat(5000);
        let t0 = std::time::Instant::now();
        for _ in 0..20 {
            assert!(!p.matches(&v));
        }
        // A liveness bound, not a speed claim: a generous ceiling that only a matcher whose work
        // grows with pattern x value length can reach.
        assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn case_insensitive() {
        let p = LikePattern::new("*ÉTÉ*", true);
        assert!(p.matches("un été chaud"));
        assert!(!LikePattern::new("*ÉTÉ*", false).matches("un été chaud"));
    }
}
