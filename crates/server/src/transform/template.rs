//! Templates: which characters of a value a transformation changes, over which alphabet, and
//! what is recomputed afterwards so that downstream validators keep working (docs/anonymize.md).
//!
//! A regex template's capture groups say what is transformed: every character the groups match
//! (the whole pattern must match the whole value). The built-in templates are code, because
//! they recompute check digits:
//!
//! | name | transformed | recomputed |
//! |---|---|---|
//! | `builtin/creditcardnumber` | every digit but the last | the Luhn check digit |
//! | `builtin/socialsecuritynumber` | the nine digits (US SSN) | — |
//! | `builtin/iban` | the BBAN's digits (letters, e.g. NL bank codes, kept) | the two check digits (mod 97) |
//! | `builtin/bsn` | the first eight digits (cycle-walked until the 11-check can hold) | the ninth |
//! | `builtin/email` | the local part's letters and digits (lowercased) | — (the domain is kept) |
//! | `builtin/phone` | the digits after `+` and the country code | — |
//!
//! Separators (spaces, dashes, dots) stay where they are.

use regex::Regex;
use regex_syntax::hir::{Hir, HirKind};
use tresor_crypto::format_preserving::{Alphabet, FormatError, MIN_DOMAIN, domain_at_least};
use zeroize::Zeroizing;

/// Why a template refused a value or a definition. Never carries the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The value does not have the template's shape (or fails its validator).
    #[error("the value does not match template `{template}`: {reason}")]
    NoMatch {
        /// The template.
        template: String,
        /// What is wrong (never the value).
        reason: &'static str,
    },
    /// The template's definition is invalid.
    #[error("invalid template: {0}")]
    Definition(String),
    /// The transform refused the transformed part.
    #[error(transparent)]
    Format(#[from] FormatError),
    /// No output passing the validator was found (pseudonyms only, with negligible probability).
    #[error("no valid output found for template `{0}` after {CYCLE_LIMIT} attempts")]
    CycleLimit(String),
}

/// Most re-applications of the transform while cycle-walking to a valid output (FF1 is a
/// permutation, so a walk from a valid input always ends; a walk of more than a few steps is
/// already vanishingly unlikely).
pub const CYCLE_LIMIT: usize = 10_000;

/// Vault's built-in alphabets, by name.
pub const ALPHABETS: &[(&str, &str)] = &[
    ("builtin/numeric", "0123456789"),
    ("builtin/alphalower", "abcdefghijklmnopqrstuvwxyz"),
    ("builtin/alphaupper", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    (
        "builtin/alphanumericlower",
        "0123456789abcdefghijklmnopqrstuvwxyz",
    ),
    (
        "builtin/alphanumericupper",
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    ),
    (
        "builtin/alphanumeric",
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    ),
];

/// The characters of a built-in alphabet.
pub fn builtin_alphabet(name: &str) -> Option<&'static str> {
    ALPHABETS.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
}

/// The built-in templates, by name.
pub const BUILTINS: &[&str] = &[
    "builtin/creditcardnumber",
    "builtin/socialsecuritynumber",
    "builtin/iban",
    "builtin/bsn",
    "builtin/email",
    "builtin/phone",
];

const DIGITS: &str = "0123456789";
const LOCAL_PART: &str = "0123456789abcdefghijklmnopqrstuvwxyz";

/// Longest value a template takes.
pub const MAX_VALUE_LEN: usize = 1024;

/// A format-preserving map of selected characters (FF1 either way, or a pseudonym): given the
/// alphabet and the selected characters, their replacement.
pub type MapFn<'a> = &'a dyn Fn(&Alphabet, &str) -> Result<Zeroizing<String>, FormatError>;

/// What a transformation does to the characters a template selects.
pub enum Action<'a> {
    /// Map the selected characters.
    Map(MapFn<'a>),
    /// Replace every selected character with this one; nothing is recomputed.
    Mask(char),
}

/// A compiled template.
#[derive(Debug)]
pub enum Template {
    /// Capture groups of a whole-value regular expression, over an alphabet.
    Regex {
        /// The template's name.
        name: String,
        /// `^(?:pattern)$`.
        regex: Regex,
        /// The alphabet of the captured characters.
        alphabet: Box<Alphabet>,
    },
    /// A built-in template.
    Builtin(Builtin),
}

/// The built-in templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// Payment card numbers, Luhn-valid in and out.
    CreditCard,
    /// US social security numbers.
    Ssn,
    /// IBANs: BBAN digits transformed, check digits recomputed.
    Iban,
    /// Dutch citizen service numbers: 11-check valid in and out.
    Bsn,
    /// E-mail addresses: local part transformed, domain kept.
    Email,
    /// International phone numbers: country code kept.
    Phone,
}

impl Template {
    /// A built-in template by name.
    pub fn builtin(name: &str) -> Option<Template> {
        let b = match name {
            "builtin/creditcardnumber" => Builtin::CreditCard,
            "builtin/socialsecuritynumber" => Builtin::Ssn,
            "builtin/iban" => Builtin::Iban,
            "builtin/bsn" => Builtin::Bsn,
            "builtin/email" => Builtin::Email,
            "builtin/phone" => Builtin::Phone,
            _ => return None,
        };
        Some(Template::Builtin(b))
    }

    /// A regex template, refused if its pattern is invalid, has no capture group, or its
    /// shortest match captures fewer characters than a domain of 10⁶ values needs.
    pub fn regex(
        name: &str,
        pattern: &str,
        alphabet_name: &str,
    ) -> Result<Template, TemplateError> {
        if pattern.len() > 1024 {
            return Err(TemplateError::Definition(
                "the pattern is longer than 1024 characters".into(),
            ));
        }
        let chars = builtin_alphabet(alphabet_name).ok_or_else(|| {
            TemplateError::Definition(format!(
                "unknown alphabet `{}`; the alphabets are {}",
                alphabet_name.chars().take(64).collect::<String>(),
                ALPHABETS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let alphabet = Alphabet::new(chars)?;
        let hir = regex_syntax::parse(pattern)
            .map_err(|e| TemplateError::Definition(format!("invalid pattern: {e}")))?;
        if hir.properties().explicit_captures_len() == 0 {
            return Err(TemplateError::Definition(
                "the pattern has no capture group: nothing would be transformed".into(),
            ));
        }
        let min = min_captured(&hir);
        if !domain_at_least(alphabet.radix(), min, MIN_DOMAIN) {
            return Err(TemplateError::Definition(format!(
                "its shortest match transforms {min} characters of a {}-character alphabet: \
                 a domain of {}^{min} values, under the minimum of 10^6 (NIST SP 800-38G Rev. 1)",
                alphabet.radix(),
                alphabet.radix()
            )));
        }
        let regex = Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| TemplateError::Definition(format!("invalid pattern: {e}")))?;
        Ok(Template::Regex {
            name: name.to_owned(),
            regex,
            alphabet: Box::new(alphabet),
        })
    }

    /// The template's name.
    pub fn name(&self) -> &str {
        match self {
            Template::Regex { name, .. } => name,
            Template::Builtin(b) => b.name(),
        }
    }

    /// Applies `action` to `value`.
    pub fn apply(
        &self,
        value: &str,
        action: &Action<'_>,
    ) -> Result<Zeroizing<String>, TemplateError> {
        if value.len() > MAX_VALUE_LEN {
            return Err(self.no_match("longer than 1024 bytes"));
        }
        match self {
            Template::Regex {
                regex, alphabet, ..
            } => {
                let caps = regex
                    .captures(value)
                    .ok_or_else(|| self.no_match("the pattern does not match it"))?;
                let mut positions = Vec::new();
                for group in caps.iter().skip(1).flatten() {
                    for (i, _) in value[group.start()..group.end()].char_indices() {
                        let at = group.start() + i;
                        if !positions.contains(&at) {
                            positions.push(at);
                        }
                    }
                }
                positions.sort_unstable();
                self.replace(value, &positions, alphabet, action, |_| true)
            }
            Template::Builtin(b) => b.apply(self, value, action),
        }
    }

    fn no_match(&self, reason: &'static str) -> TemplateError {
        TemplateError::NoMatch {
            template: self.name().to_owned(),
            reason,
        }
    }

    /// Replaces the characters at byte offsets `positions` of `value` (all in `alphabet`),
    /// re-applying a map until `valid` accepts the selected characters' replacement.
    fn replace(
        &self,
        value: &str,
        positions: &[usize],
        alphabet: &Alphabet,
        action: &Action<'_>,
        valid: impl Fn(&str) -> bool,
    ) -> Result<Zeroizing<String>, TemplateError> {
        let mut selected = Zeroizing::new(String::with_capacity(positions.len()));
        for at in positions {
            let c = value[*at..]
                .chars()
                .next()
                .expect("a character starts here");
            if !alphabet.contains(c) {
                return Err(self.no_match("a transformed character is outside the alphabet"));
            }
            selected.push(c);
        }
        let replaced = match action {
            Action::Mask(mask) => {
                Zeroizing::new(std::iter::repeat_n(*mask, positions.len()).collect())
            }
            Action::Map(map) => {
                let mut out = map(alphabet, &selected)?;
                let mut steps = 0;
                while !valid(&out) {
                    steps += 1;
                    if steps > CYCLE_LIMIT {
                        return Err(TemplateError::CycleLimit(self.name().to_owned()));
                    }
                    out = map(alphabet, &out)?;
                }
                out
            }
        };
        let mut out = Zeroizing::new(String::with_capacity(value.len()));
        let mut next = replaced.chars();
        let mut pending = positions.iter().peekable();
        for (at, c) in value.char_indices() {
            if pending.peek() == Some(&&at) {
                pending.next();
                out.push(next.next().expect("one replacement per position"));
            } else {
                out.push(c);
            }
        }
        Ok(out)
    }
}

impl Builtin {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::CreditCard => "builtin/creditcardnumber",
            Builtin::Ssn => "builtin/socialsecuritynumber",
            Builtin::Iban => "builtin/iban",
            Builtin::Bsn => "builtin/bsn",
            Builtin::Email => "builtin/email",
            Builtin::Phone => "builtin/phone",
        }
    }

    fn apply(
        self,
        template: &Template,
        value: &str,
        action: &Action<'_>,
    ) -> Result<Zeroizing<String>, TemplateError> {
        let digits = Alphabet::new(DIGITS).expect("a valid alphabet");
        let no = |reason| template.no_match(reason);
        match self {
            Builtin::CreditCard => {
                check_chars(value, |c| c.is_ascii_digit() || c == ' ' || c == '-')
                    .map_err(|()| no("only digits, spaces and dashes"))?;
                let at = digit_positions(value);
                if !(12..=19).contains(&at.len()) {
                    return Err(no("a card number has 12 to 19 digits"));
                }
                if !luhn_valid(value) {
                    return Err(no("the Luhn check fails"));
                }
                let body = &at[..at.len() - 1];
                let out = template.replace(value, body, &digits, action, |_| true)?;
                if matches!(action, Action::Mask(_)) {
                    return Ok(out);
                }
                let last = *at.last().expect("12 or more digits");
                let check = luhn_check_digit(&out[..last]);
                let mut fixed = out;
                fixed.replace_range(last..=last, check.encode_utf8(&mut [0; 4]));
                Ok(fixed)
            }
            Builtin::Ssn => {
                let shaped =
                    value.len() == 11 && value.as_bytes()[3] == b'-' && value.as_bytes()[6] == b'-'
                        || value.len() == 9;
                check_chars(value, |c| c.is_ascii_digit() || c == '-')
                    .map_err(|()| no("only digits and dashes"))?;
                let at = digit_positions(value);
                if !shaped || at.len() != 9 {
                    return Err(no("an SSN is 9 digits, as NNN-NN-NNNN or NNNNNNNNN"));
                }
                template.replace(value, &at, &digits, action, |_| true)
            }
            Builtin::Bsn => {
                check_chars(value, |c| c.is_ascii_digit()).map_err(|()| no("a BSN is 9 digits"))?;
                if value.len() != 9 {
                    return Err(no("a BSN is 9 digits"));
                }
                if !bsn_valid(value) {
                    return Err(no("the 11-check fails"));
                }
                let out =
                    template.replace(value, &[0, 1, 2, 3, 4, 5, 6, 7], &digits, action, |p| {
                        bsn_check_digit(p).is_some()
                    })?;
                if matches!(action, Action::Mask(_)) {
                    return Ok(out);
                }
                let check = bsn_check_digit(&out[..8]).expect("cycle-walked to a valid prefix");
                let mut fixed = Zeroizing::new(out[..8].to_owned());
                fixed.push(check);
                Ok(fixed)
            }
            Builtin::Iban => {
                let compact: Zeroizing<String> =
                    Zeroizing::new(value.chars().filter(|c| *c != ' ').collect());
                if value.get(..4).is_none_or(|head| head.contains(' ')) || !iban_valid(&compact) {
                    return Err(no(
                        "not a valid IBAN (country, length, characters or check digits)",
                    ));
                }
                let at: Vec<usize> = value
                    .char_indices()
                    .filter(|(_, c)| *c != ' ')
                    .skip(4)
                    .filter(|(_, c)| c.is_ascii_digit())
                    .map(|(i, _)| i)
                    .collect();
                let out = template.replace(value, &at, &digits, action, |_| true)?;
                if matches!(action, Action::Mask(_)) {
                    return Ok(out);
                }
                let compact: Zeroizing<String> =
                    Zeroizing::new(out.chars().filter(|c| *c != ' ').collect());
                let check = iban_check_digits(&compact[..2], &compact[4..]);
                // The check digits are the third and fourth characters (no space before them).
                let mut fixed = out;
                fixed.replace_range(2..4, &check);
                Ok(fixed)
            }
            Builtin::Email => {
                let (local, domain) = value
                    .rsplit_once('@')
                    .ok_or_else(|| no("an e-mail address has an @"))?;
                if local.is_empty()
                    || local.len() > 64
                    || domain.is_empty()
                    || !domain.contains('.')
                {
                    return Err(no("an e-mail address is local@domain.tld"));
                }
                check_chars(local, |c| c.is_ascii_alphanumeric() || ".-_+".contains(c)).map_err(
                    |()| no("the local part has characters other than letters, digits and .-_+"),
                )?;
                let lower = Zeroizing::new(value.to_ascii_lowercase());
                let at: Vec<usize> = lower[..local.len()]
                    .char_indices()
                    .filter(|(_, c)| c.is_ascii_alphanumeric())
                    .map(|(i, _)| i)
                    .collect();
                let alphabet = Alphabet::new(LOCAL_PART).expect("a valid alphabet");
                let out = template.replace(&lower, &at, &alphabet, action, |_| true)?;
                // The domain as given (case kept).
                let mut fixed = Zeroizing::new(out[..local.len()].to_owned());
                fixed.push('@');
                fixed.push_str(domain);
                Ok(fixed)
            }
            Builtin::Phone => {
                let rest = value
                    .strip_prefix('+')
                    .ok_or_else(|| no("an international number starts with +"))?;
                check_chars(rest, |c| c.is_ascii_digit() || " -.()".contains(c)).map_err(|()| {
                    no("only digits, spaces, dashes, dots and parentheses after +")
                })?;
                let at: Vec<usize> = digit_positions(value);
                if !(8..=15).contains(&at.len()) {
                    return Err(no("an international number has 8 to 15 digits"));
                }
                let cc = country_code_len(&value[at[0]..]);
                template.replace(value, &at[cc..], &digits, action, |_| true)
            }
        }
    }
}

fn check_chars(value: &str, allowed: impl Fn(char) -> bool) -> Result<(), ()> {
    if value.chars().all(allowed) {
        Ok(())
    } else {
        Err(())
    }
}

fn digit_positions(value: &str) -> Vec<usize> {
    value
        .char_indices()
        .filter(|(_, c)| c.is_ascii_digit())
        .map(|(i, _)| i)
        .collect()
}

/// The smallest number of characters the capture groups of any match of `hir` hold.
fn min_captured(hir: &Hir) -> usize {
    match hir.kind() {
        HirKind::Capture(c) => c.sub.properties().minimum_len().unwrap_or(0),
        HirKind::Concat(subs) => subs.iter().map(min_captured).sum(),
        HirKind::Alternation(subs) => subs.iter().map(min_captured).min().unwrap_or(0),
        HirKind::Repetition(r) => usize::try_from(r.min)
            .unwrap_or(usize::MAX)
            .saturating_mul(min_captured(&r.sub)),
        _ => 0,
    }
}

/// True if the digits of `value` pass the Luhn check.
pub fn luhn_valid(value: &str) -> bool {
    let digits: Vec<u32> = value.chars().filter_map(|c| c.to_digit(10)).collect();
    !digits.is_empty() && luhn_sum(&digits, false) % 10 == 0
}

fn luhn_sum(digits: &[u32], double_last: bool) -> u32 {
    digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            if (i % 2 == 1) != double_last {
                let x = d * 2;
                if x > 9 { x - 9 } else { x }
            } else {
                *d
            }
        })
        .sum()
}

/// The Luhn check digit to append to the digits of `body`.
pub fn luhn_check_digit(body: &str) -> char {
    let digits: Vec<u32> = body.chars().filter_map(|c| c.to_digit(10)).collect();
    let sum = luhn_sum(&digits, true);
    char::from_digit((10 - sum % 10) % 10, 10).expect("a digit")
}

/// The ninth digit that makes the eight digits `prefix` a valid BSN, if one exists.
pub fn bsn_check_digit(prefix: &str) -> Option<char> {
    let sum: u32 = prefix
        .chars()
        .zip((2..=9).rev())
        .map(|(c, w)| c.to_digit(10).unwrap_or(0) * w)
        .sum();
    let check = sum % 11;
    (check < 10).then(|| char::from_digit(check, 10).expect("a digit"))
}

/// True if `value` is nine digits passing the 11-check (Σ dᵢ·wᵢ with weights 9…2, −1 ≡ 0 mod 11).
pub fn bsn_valid(value: &str) -> bool {
    value.len() == 9
        && value.chars().all(|c| c.is_ascii_digit())
        && bsn_check_digit(&value[..8]) == value.chars().nth(8)
}

/// IBAN lengths of the countries whose length is checked (others: 15 to 34).
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AT", 20),
    ("BE", 16),
    ("CH", 21),
    ("DE", 22),
    ("DK", 18),
    ("ES", 24),
    ("FI", 18),
    ("FR", 27),
    ("GB", 22),
    ("IE", 22),
    ("IT", 27),
    ("LU", 20),
    ("NL", 18),
    ("NO", 15),
    ("PL", 28),
    ("PT", 25),
    ("SE", 24),
];

/// True if `iban` (no spaces) has a country code, the country's length, upper-case letters and
/// digits only, and check digits that make it ≡ 1 mod 97 (ISO 13616).
pub fn iban_valid(iban: &str) -> bool {
    let b = iban.as_bytes();
    if b.len() < 15 || b.len() > 34 {
        return false;
    }
    if !b[..2].iter().all(u8::is_ascii_uppercase) || !b[2..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    if !b[4..]
        .iter()
        .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    {
        return false;
    }
    if let Some((_, len)) = IBAN_LENGTHS.iter().find(|(cc, _)| cc.as_bytes() == &b[..2]) {
        if *len != b.len() {
            return false;
        }
    }
    iban_mod97(&iban[4..], &iban[..4]) == 1
}

/// The check digits of an IBAN of `country` with `bban`.
pub fn iban_check_digits(country: &str, bban: &str) -> String {
    let r = iban_mod97(bban, &format!("{country}00"));
    format!("{:02}", 98 - r)
}

fn iban_mod97(bban: &str, head: &str) -> u32 {
    let mut r: u32 = 0;
    for c in bban.chars().chain(head.chars()) {
        let v = c.to_digit(36).unwrap_or(0);
        r = if v >= 10 {
            (r * 100 + v) % 97
        } else {
            (r * 10 + v) % 97
        };
    }
    r
}

/// How many leading digits of `digits` (an international number without `+`) are the ITU
/// country code: 1 for zones 1 and 7, 2 for the two-digit codes, else 3.
fn country_code_len(digits: &str) -> usize {
    const TWO: &[&str] = &[
        "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46",
        "47", "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63",
        "64", "65", "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
    ];
    let d: String = digits
        .chars()
        .filter(char::is_ascii_digit)
        .take(2)
        .collect();
    if d.starts_with('1') || d.starts_with('7') {
        1
    } else if TWO.contains(&d.as_str()) {
        2
    } else {
        3
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tresor_crypto::SecretKey;
    use tresor_crypto::format_preserving::{Ff1, Pseudonym};

    use super::*;

    fn ff1_both(template: &Template, value: &str) -> (Zeroizing<String>, Zeroizing<String>) {
        let key = SecretKey::random();
        let enc = |a: &Alphabet, s: &str| Ff1::new(&key, a.clone()).encrypt(b"t", s);
        let dec = |a: &Alphabet, s: &str| Ff1::new(&key, a.clone()).decrypt(b"t", s);
        let out = template.apply(value, &Action::Map(&enc)).unwrap();
        let back = template.apply(&out, &Action::Map(&dec)).unwrap();
        (out, back)
    }

    fn pseudonym(template: &Template, value: &str) -> Zeroizing<String> {
        let p = Pseudonym::new(&SecretKey::random());
        let f = |a: &Alphabet, s: &str| p.map(a, b"t", s);
        template.apply(value, &Action::Map(&f)).unwrap()
    }

    fn builtin(name: &str) -> Template {
        Template::builtin(name).unwrap()
    }

    fn card() -> impl Strategy<Value = String> {
        (12usize..=19)
            .prop_flat_map(|n| proptest::collection::vec(0u32..10, n - 1))
            .prop_map(|body| {
                let s: String = body
                    .iter()
                    .map(|d| char::from_digit(*d, 10).unwrap())
                    .collect();
                let check = luhn_check_digit(&s);
                format!("{s}{check}")
            })
    }

    fn bsn() -> impl Strategy<Value = String> {
        proptest::collection::vec(0u32..10, 8)
            .prop_map(|d| {
                d.iter()
                    .map(|d| char::from_digit(*d, 10).unwrap())
                    .collect::<String>()
            })
            .prop_filter_map("no check digit", |p| {
                bsn_check_digit(&p).map(|c| format!("{p}{c}"))
            })
    }

    /// IBANs of several countries with their real BBAN shapes.
    fn iban() -> impl Strategy<Value = String> {
        let shapes: Vec<(&str, &str)> = vec![
            ("NL", "[A-Z]{4}[0-9]{10}"),
            ("DE", "[0-9]{18}"),
            ("GB", "[A-Z]{4}[0-9]{14}"),
            ("BE", "[0-9]{12}"),
            ("FR", "[0-9]{10}[0-9A-Z]{11}[0-9]{2}"),
            ("ES", "[0-9]{20}"),
            ("IT", "[A-Z][0-9]{10}[0-9A-Z]{12}"),
        ];
        proptest::sample::select(shapes).prop_flat_map(|(cc, shape)| {
            proptest::string::string_regex(shape)
                .unwrap()
                .prop_map(move |bban| format!("{cc}{}{bban}", iban_check_digits(cc, &bban)))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn cards_stay_luhn_valid(value in card()) {
            let t = builtin("builtin/creditcardnumber");
            let (out, back) = ff1_both(&t, &value);
            prop_assert_eq!(out.len(), value.len());
            prop_assert!(out.chars().all(|c| c.is_ascii_digit()));
            prop_assert!(luhn_valid(&out));
            prop_assert_eq!(back.as_str(), value.as_str());
            prop_assert!(luhn_valid(&pseudonym(&t, &value)));
        }

        #[test]
        fn bsns_stay_eleven_check_valid(value in bsn()) {
            let t = builtin("builtin/bsn");
            let (out, back) = ff1_both(&t, &value);
            prop_assert!(bsn_valid(&out));
            prop_assert_eq!(back.as_str(), value.as_str());
            prop_assert!(bsn_valid(&pseudonym(&t, &value)));
        }

        #[test]
        fn ibans_stay_valid_in_their_country(value in iban()) {
            prop_assert!(iban_valid(&value));
            let t = builtin("builtin/iban");
            let (out, back) = ff1_both(&t, &value);
            prop_assert!(iban_valid(&out));
            prop_assert_eq!(&out[..2], &value[..2]);
            prop_assert_eq!(out.len(), value.len());
            // Letters (bank codes) stay, digits stay digits.
            for (a, b) in value.chars().zip(out.chars()).skip(4) {
                prop_assert_eq!(a.is_ascii_digit(), b.is_ascii_digit());
                if !a.is_ascii_digit() { prop_assert_eq!(a, b); }
            }
            prop_assert_eq!(back.as_str(), value.as_str());
            prop_assert!(iban_valid(&pseudonym(&t, &value)));
        }
    }

    #[test]
    fn separators_stay_and_masks_mask() {
        let t = builtin("builtin/creditcardnumber");
        let (out, back) = ff1_both(&t, "4111 1111 1111 1111");
        assert_eq!(&out[4..5], " ");
        assert_eq!(back.as_str(), "4111 1111 1111 1111");
        let masked = t.apply("4111-1111-1111-1111", &Action::Mask('#')).unwrap();
        assert_eq!(masked.as_str(), "####-####-####-###1");
        let ssn = builtin("builtin/socialsecuritynumber");
        let (out, back) = ff1_both(&ssn, "123-45-6789");
        assert!(Regex::new(r"^\d{3}-\d{2}-\d{4}$").unwrap().is_match(&out));
        assert_eq!(back.as_str(), "123-45-6789");
    }

    #[test]
    fn email_keeps_the_domain_and_phone_the_country_code() {
        let t = builtin("builtin/email");
        let (out, back) = ff1_both(&t, "Jan.Jansen@Example.NL");
        assert!(out.ends_with("@Example.NL"));
        assert_eq!(&out[3..4], ".");
        assert_eq!(back.as_str(), "jan.jansen@Example.NL");
        // Three letters: 36^3 < 10^6.
        let e = t
            .apply(
                "jan@example.nl",
                &Action::Map(&|a: &Alphabet, s: &str| {
                    Ff1::new(&SecretKey::random(), a.clone()).encrypt(b"", s)
                }),
            )
            .unwrap_err();
        assert!(matches!(
            e,
            TemplateError::Format(FormatError::DomainTooSmall { .. })
        ));
        let p = builtin("builtin/phone");
        let (out, back) = ff1_both(&p, "+31 6 1234 5678");
        assert!(out.starts_with("+31 "));
        assert_eq!(out.len(), "+31 6 1234 5678".len());
        assert_eq!(back.as_str(), "+31 6 1234 5678");
        let (out, _) = ff1_both(&p, "+1-202-555-0143");
        assert!(out.starts_with("+1-"));
    }

    #[test]
    fn bad_values_are_refused_without_echoing_them() {
        let f = |a: &Alphabet, s: &str| Ff1::new(&SecretKey::random(), a.clone()).encrypt(b"", s);
        let cases = [
            ("builtin/creditcardnumber", "4111111111111112"),
            ("builtin/creditcardnumber", "41111111x1111111"),
            ("builtin/bsn", "111222334"),
            ("builtin/bsn", "12345678"),
            ("builtin/iban", "NL91ABNA0417164301"),
            ("builtin/iban", "NL91ABNA04171643000"),
            ("builtin/email", "no-at-sign.example"),
            ("builtin/phone", "0612345678"),
            ("builtin/socialsecuritynumber", "12-345-6789"),
        ];
        for (name, value) in cases {
            let e = builtin(name).apply(value, &Action::Map(&f)).unwrap_err();
            assert!(
                matches!(e, TemplateError::NoMatch { .. }),
                "{name} {value}: {e}"
            );
            assert!(!e.to_string().contains(value));
        }
        // The reference IBAN and BSN are valid.
        assert!(iban_valid("NL91ABNA0417164300"));
        assert!(bsn_valid("111222333"));
    }

    #[test]
    fn regex_templates_transform_their_groups_and_refuse_small_domains() {
        let t = Template::regex("acct", r"ACC-(\d{4})-(\d{4})", "builtin/numeric").unwrap();
        let (out, back) = ff1_both(&t, "ACC-1234-5678");
        assert!(out.starts_with("ACC-") && &out[8..9] == "-");
        assert_eq!(back.as_str(), "ACC-1234-5678");
        assert!(matches!(
            t.apply("ACC-1234-567", &Action::Mask('*')),
            Err(TemplateError::NoMatch { .. })
        ));
        // A card template keeping BIN and last four, with Luhn recomputed, transforms 5 digits.
        let e = Template::regex("ccn-bin", r"\d{6}(\d{5})\d{5}", "builtin/numeric").unwrap_err();
        assert!(e.to_string().contains("under the minimum of 10^6"), "{e}");
        assert!(Template::regex("x", r"(\d{3}|\d{7})", "builtin/numeric").is_err());
        assert!(Template::regex("x", r"\d{9}", "builtin/numeric").is_err());
        assert!(Template::regex("x", r"(\d{9}", "builtin/numeric").is_err());
        assert!(Template::regex("x", r"(\d{9})", "builtin/klingon").is_err());
        assert!(Template::regex("x", r"([a-z]{5})", "builtin/alphalower").is_ok());
    }
}
