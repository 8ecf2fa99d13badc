//! Glob patterns for principals and key names, compiled once at load time.
//!
//! `*` matches any run of characters except `/`, `**` matches any run including `/`, and every
//! other character is literal (`.` is a dot, `?` is a question mark). Matching works on bytes,
//! which is exact for UTF-8 because `/` never occurs inside a multi-byte character.

use std::fmt;

/// Longest pattern accepted, in bytes. Bounds the matcher's state to a fixed stack array.
pub(crate) const MAX_PATTERN_LEN: usize = 1024;

/// 64-bit words of NFA state: one bit per pattern position, plus the accepting position.
const WORDS: usize = MAX_PATTERN_LEN / 64 + 1;

/// A compiled glob.
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    source: Box<str>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// No wildcard: the text must equal the pattern.
    Exact,
    /// A literal prefix (the first `len` bytes of the source) followed by one final `*`
    /// (`slash == false`) or `**` (`slash == true`). Covers `*`, `**`, `card-*`, `spiffe://x/**`.
    Prefix { len: usize, slash: bool },
    /// Anything else: a literal prefix and suffix for a quick reject, then an NFA run.
    General {
        prefix: usize,
        suffix: usize,
        atoms: Box<[Atom]>,
        /// Indices of the wildcard atoms, in increasing order.
        stars: Box<[u16]>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Atom {
    Byte(u8),
    /// `*`: any run without `/`.
    Star,
    /// `**`: any run.
    DoubleStar,
}

impl Glob {
    /// Compiles `pattern`. The error is a reason fit for a policy diagnostic.
    pub(crate) fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("empty pattern".into());
        }
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(format!(
                "pattern is {} bytes long; the limit is {MAX_PATTERN_LEN}",
                pattern.len()
            ));
        }
        if pattern.contains("***") {
            return Err(format!(
                "`{pattern}`: three or more `*` in a row mean nothing; use `*` (within one path segment) or `**` (across `/`)"
            ));
        }
        let bytes = pattern.as_bytes();
        let mut atoms = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'*' {
                if bytes.get(i + 1) == Some(&b'*') {
                    atoms.push(Atom::DoubleStar);
                    i += 2;
                } else {
                    atoms.push(Atom::Star);
                    i += 1;
                }
            } else {
                atoms.push(Atom::Byte(bytes[i]));
                i += 1;
            }
        }
        let wildcards = atoms.iter().filter(|a| !matches!(a, Atom::Byte(_))).count();
        let prefix = atoms
            .iter()
            .take_while(|a| matches!(a, Atom::Byte(_)))
            .count();
        let kind = if wildcards == 0 {
            Kind::Exact
        } else if wildcards == 1 && prefix == atoms.len() - 1 {
            Kind::Prefix {
                len: prefix,
                slash: atoms[prefix] == Atom::DoubleStar,
            }
        } else {
            let suffix = atoms
                .iter()
                .rev()
                .take_while(|a| matches!(a, Atom::Byte(_)))
                .count();
            let stars = atoms
                .iter()
                .enumerate()
                .filter(|(_, a)| !matches!(a, Atom::Byte(_)))
                // Lossless: at most MAX_PATTERN_LEN atoms.
                .map(|(i, _)| i as u16)
                .collect();
            Kind::General {
                prefix,
                suffix,
                atoms: atoms.into_boxed_slice(),
                stars,
            }
        };
        Ok(Glob {
            source: pattern.into(),
            kind,
        })
    }

    /// The pattern as written.
    pub(crate) fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern contains no wildcard at all.
    #[cfg(test)]
    pub(crate) fn is_literal(&self) -> bool {
        matches!(self.kind, Kind::Exact)
    }

    /// Whether `text` matches the whole pattern. Never allocates.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let src = self.source.as_bytes();
        let text = text.as_bytes();
        match &self.kind {
            Kind::Exact => src == text,
            Kind::Prefix { len, slash } => {
                text.len() >= *len
                    && text[..*len] == src[..*len]
                    && (*slash || !text[*len..].contains(&b'/'))
            }
            Kind::General {
                prefix,
                suffix,
                atoms,
                stars,
            } => {
                // The literal prefix and suffix are the same bytes in the source and the atoms.
                if text.len() < prefix + suffix
                    || text[..*prefix] != src[..*prefix]
                    || text[text.len() - suffix..] != src[src.len() - suffix..]
                {
                    return false;
                }
                nfa_match(atoms, stars, text)
            }
        }
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

/// Runs the pattern as an NFA whose state `i` means "the first `i` atoms have matched".
/// Time O(text × live states), no allocation.
fn nfa_match(atoms: &[Atom], stars: &[u16], text: &[u8]) -> bool {
    let n = atoms.len();
    let words = n / 64 + 1;
    let mut current = [0u64; WORDS];
    set(&mut current, 0);
    close(stars, &mut current);
    for &c in text {
        let mut next = [0u64; WORDS];
        let mut live = false;
        for (w, &word) in current[..words].iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let i = w * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let Some(atom) = atoms.get(i) else { continue };
                let to = match *atom {
                    Atom::Byte(b) if b == c => i + 1,
                    Atom::Star if c != b'/' => i,
                    Atom::DoubleStar => i,
                    _ => continue,
                };
                set(&mut next, to);
                live = true;
            }
        }
        if !live {
            return false;
        }
        close(stars, &mut next);
        current = next;
    }
    current[n / 64] & (1 << (n % 64)) != 0
}

/// A wildcard may match the empty string: wherever one is reached, the position after it is too.
fn close(stars: &[u16], state: &mut [u64; WORDS]) {
    for &s in stars {
        let s = usize::from(s);
        if state[s / 64] & (1 << (s % 64)) != 0 {
            set(state, s + 1);
        }
    }
}

fn set(state: &mut [u64; WORDS], i: usize) {
    state[i / 64] |= 1 << (i % 64);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).unwrap().matches(text)
    }

    /// A slow reference matcher, to check the fast one against.
    fn reference(p: &[u8], t: &[u8]) -> bool {
        if p.is_empty() {
            return t.is_empty();
        }
        if p.starts_with(b"**") {
            return (0..=t.len()).any(|k| reference(&p[2..], &t[k..]));
        }
        if p[0] == b'*' {
            return (0..=t.len())
                .take_while(|&k| k == 0 || t[k - 1] != b'/')
                .any(|k| reference(&p[1..], &t[k..]));
        }
        !t.is_empty() && p[0] == t[0] && reference(&p[1..], &t[1..])
    }

    #[test]
    fn literal_patterns() {
        let g = Glob::new("spiffe://prod.example/payments-api").unwrap();
        assert!(g.is_literal());
        assert!(g.matches("spiffe://prod.example/payments-api"));
        assert!(!g.matches("spiffe://prod.example/payments-api2"));
        assert!(
            !g.matches("spiffe://prodXexample/payments-api"),
            "a dot is literal"
        );
        assert!(!m("a.b", "aXb"));
        assert!(m("a.b", "a.b"));
        assert!(!m("a?c", "abc"), "? is literal");
        assert!(m("a?c", "a?c"));
        assert!(!m("[ab]", "a"), "brackets are literal");
    }

    #[test]
    fn single_star_stays_in_one_segment() {
        assert!(m("*", "card-pan"));
        assert!(m("*", ""));
        assert!(!m("*", "a/b"));
        assert!(m("card-*", "card-pan"));
        assert!(m("card-*", "card-"));
        assert!(!m("card-*", "car"));
        assert!(!m("card-*", "iban"));
        assert!(m(
            "spiffe://prod.example/batch-*",
            "spiffe://prod.example/batch-7"
        ));
        assert!(!m(
            "spiffe://prod.example/batch-*",
            "spiffe://prod.example/batch-7/evil"
        ));
        assert!(m(
            "spiffe://prod.example/*/api",
            "spiffe://prod.example/x/api"
        ));
        assert!(!m(
            "spiffe://prod.example/*/api",
            "spiffe://prod.example/x/y/api"
        ));
        assert!(m("*-pan", "card-pan"));
        assert!(m("a*b*c", "axxbyyc"));
        assert!(!m("a*b*c", "axxbyy/c"));
    }

    #[test]
    fn double_star_crosses_segments() {
        assert!(m("**", ""));
        assert!(m("**", "spiffe://anything/at/all"));
        assert!(m(
            "spiffe://prod.example/ops/**",
            "spiffe://prod.example/ops/a/b"
        ));
        assert!(m(
            "spiffe://prod.example/ops/**",
            "spiffe://prod.example/ops/"
        ));
        assert!(!m(
            "spiffe://prod.example/ops/**",
            "spiffe://prod.example/opsx"
        ));
        assert!(m("spiffe://**/api", "spiffe://a/b/c/api"));
        assert!(!m("spiffe://**/api", "spiffe://a/b/c/apix"));
        assert!(m("**/a*", "x/y/abc"));
        assert!(!m("**/a*", "x/y/abc/d"));
        assert!(m("a**b*c", "a/x/b-yc"));
        assert!(!m("a**b*c", "a/x/b/yc"));
        assert!(m("a**b*c", "a/x/b/yb-c"), "`**` takes the later `b`");
    }

    #[test]
    fn bad_patterns() {
        assert!(Glob::new("").is_err());
        assert!(Glob::new("a***").is_err());
        assert!(Glob::new(&"a".repeat(MAX_PATTERN_LEN + 1)).is_err());
        assert!(Glob::new(&"a".repeat(MAX_PATTERN_LEN)).is_ok());
    }

    #[test]
    fn long_general_patterns_use_every_state_word() {
        let pattern = format!("{}*{}", "a/".repeat(150), "b".repeat(700));
        let text = format!("{}zz{}", "a/".repeat(150), "b".repeat(700));
        assert!(pattern.len() <= MAX_PATTERN_LEN);
        assert!(m(&pattern, &text));
        assert!(!m(&pattern, &format!("{text}/")));
        // Many stars against a long near-miss: linear in the text, not exponential.
        let pattern = "*a".repeat(200) + "**b";
        let text = "a".repeat(5000);
        assert!(!m(&pattern, &text));
    }

    #[test]
    fn agrees_with_the_reference_matcher() {
        let patterns = [
            "*", "**", "a*", "*a", "a**", "**a", "*/*", "**/*", "a*/b**c", "*a*a*", "a**b*c",
            "**/**", "a/**/b", "*.*", "ab", "a/*b*/c",
        ];
        let alphabet = [b'a', b'b', b'c', b'/', b'.'];
        // Every text up to length 5 over the alphabet.
        let mut texts = vec![Vec::new()];
        let mut frontier = vec![Vec::new()];
        for _ in 0..5 {
            let mut grown = Vec::new();
            for t in &frontier {
                for &c in &alphabet {
                    let mut u: Vec<u8> = t.clone();
                    u.push(c);
                    grown.push(u);
                }
            }
            texts.extend(grown.iter().cloned());
            frontier = grown;
        }
        for p in patterns {
            let g = Glob::new(p).unwrap();
            for t in &texts {
                let t = std::str::from_utf8(t).unwrap();
                assert_eq!(
                    g.matches(t),
                    reference(p.as_bytes(), t.as_bytes()),
                    "pattern {p:?} text {t:?}"
                );
            }
        }
    }
}
