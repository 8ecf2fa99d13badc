//! The rules file of `tresor anonymize` (docs/anonymize.md): what happens to each column.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What to do with a column the rules do not name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Default {
    /// Leave it out of the output.
    Drop,
    /// Copy it unchanged.
    Keep,
}

/// What to do with a row that cannot be transformed (a value the template does not match, a
/// broken CSV line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop; write nothing.
    #[default]
    Fail,
    /// Leave the row out, and count it.
    Skip,
    /// Write the row with [`MARK`] in each cell that failed, and count it.
    Mark,
}

/// What a marked cell holds.
pub const MARK: &str = "#ERROR";

/// What generalisation does.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generalize {
    /// Dates (`YYYY-MM-DD`) to `month` (`YYYY-MM`) or `year` (`YYYY`).
    #[serde(default)]
    pub to: Option<DatePart>,
    /// Numbers to buckets this wide (`30000-39999`).
    #[serde(default)]
    pub bucket: Option<u64>,
    /// Text (postcodes) to its first this many characters.
    #[serde(default)]
    pub prefix: Option<usize>,
}

/// What becomes of an e-mail address's domain (`builtin/email` transforms only the local part).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailDomain {
    /// Kept as it is (the employer's or the provider's domain stays visible).
    #[default]
    Keep,
    /// Only its top-level domain stays, under the reserved `.invalid` (RFC 2606):
    /// `x7k2@mail.bank.nl` becomes `x7k2@nl.invalid`, still shaped like an address.
    Generalize,
}

impl EmailDomain {
    /// `value` (as the vault returned it) with its domain treated as this says.
    pub fn apply(self, value: &str) -> String {
        match (self, value.rsplit_once('@')) {
            (EmailDomain::Generalize, Some((local, domain))) => {
                let tld = domain.rsplit('.').next().unwrap_or(domain);
                format!("{local}@{}.invalid", tld.to_ascii_lowercase())
            }
            _ => value.to_owned(),
        }
    }
}

/// How much of a date generalisation keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DatePart {
    /// `YYYY-MM`.
    Month,
    /// `YYYY`.
    Year,
}

/// One column's rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
pub enum Action {
    /// FF1 through the vault with `transformation` (reversible by those allowed to decode).
    Fpe {
        /// The transformation (one of the role's).
        transformation: String,
        /// A quasi-identifier (in the k-anonymity report).
        #[serde(default)]
        quasi: bool,
        /// For e-mail addresses: keep the domain, or generalise it to its top-level domain.
        #[serde(default)]
        email_domain: EmailDomain,
    },
    /// A pseudonym through the vault (irreversible, per role).
    Pseudonym {
        /// The transformation (one of the role's).
        transformation: String,
        /// A quasi-identifier.
        #[serde(default)]
        quasi: bool,
        /// For e-mail addresses: keep the domain, or generalise it to its top-level domain.
        #[serde(default)]
        email_domain: EmailDomain,
    },
    /// Masked locally: every character but the last `keep_last` becomes `char`.
    Mask {
        /// Characters kept at the end (default 0).
        #[serde(default)]
        keep_last: usize,
        /// The mask character (default `*`).
        #[serde(default = "star")]
        char: char,
        /// A quasi-identifier.
        #[serde(default)]
        quasi: bool,
    },
    /// Generalised locally (see [`Generalize`]; exactly one of its fields).
    Generalize {
        /// How.
        #[serde(flatten)]
        how: Generalize,
        /// A quasi-identifier.
        #[serde(default)]
        quasi: bool,
    },
    /// Left out.
    Drop,
    /// Copied unchanged.
    Keep {
        /// A quasi-identifier.
        #[serde(default)]
        quasi: bool,
    },
}

fn star() -> char {
    '*'
}

impl Action {
    /// Whether the column is a quasi-identifier.
    pub fn quasi(&self) -> bool {
        match self {
            Action::Fpe { quasi, .. }
            | Action::Pseudonym { quasi, .. }
            | Action::Mask { quasi, .. }
            | Action::Generalize { quasi, .. }
            | Action::Keep { quasi } => *quasi,
            Action::Drop => false,
        }
    }

    /// The vault transformation, for columns the vault transforms.
    pub fn transformation(&self) -> Option<&str> {
        match self {
            Action::Fpe { transformation, .. } | Action::Pseudonym { transformation, .. } => {
                Some(transformation)
            }
            _ => None,
        }
    }

    /// Whether the output holds a transformed value (not the input's).
    pub fn transforms(&self) -> bool {
        !matches!(self, Action::Keep { .. } | Action::Drop)
    }
}

/// A rules file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// The tenant whose transform role is used.
    pub tenant: String,
    /// The role (the pipeline principal needs `transform-encode` on it).
    pub role: String,
    /// Columns the rules do not name: refused unless this says `drop` or `keep`.
    #[serde(default)]
    pub default: Option<Default>,
    /// What to do with bad rows.
    #[serde(default)]
    pub on_error: OnError,
    /// Each column's rule, by name.
    pub columns: BTreeMap<String, Action>,
}

/// Why a rules file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Not TOML, or not the rules' shape.
    #[error("invalid rules: {0}")]
    Parse(String),
    /// A rule is inconsistent.
    #[error("invalid rule for column `{column}`: {reason}")]
    Column {
        /// The column.
        column: String,
        /// What is wrong.
        reason: String,
    },
}

impl Rules {
    /// Parses and checks a rules file.
    pub fn parse(text: &str) -> Result<Rules, RulesError> {
        let rules: Rules = toml::from_str(text).map_err(|e| RulesError::Parse(e.to_string()))?;
        if rules.columns.is_empty() {
            return Err(RulesError::Parse("no [columns]".into()));
        }
        for (column, action) in &rules.columns {
            let bad = |reason: &str| RulesError::Column {
                column: column.clone(),
                reason: reason.into(),
            };
            if let Action::Generalize { how, .. } = action {
                let set = [how.to.is_some(), how.bucket.is_some(), how.prefix.is_some()];
                if set.iter().filter(|s| **s).count() != 1 {
                    return Err(bad(
                        "generalize takes exactly one of `to`, `bucket`, `prefix`",
                    ));
                }
                if how.bucket == Some(0) || how.prefix == Some(0) {
                    return Err(bad("bucket and prefix must be at least 1"));
                }
            }
            if let Some(t) = action.transformation() {
                if t.is_empty() {
                    return Err(bad("an empty transformation name"));
                }
            }
        }
        Ok(rules)
    }

    /// The rule for `column`: its own, or the default; `None` when neither exists (refused).
    pub fn action(&self, column: &str) -> Option<Action> {
        self.columns.get(column).cloned().or(match self.default {
            Some(Default::Drop) => Some(Action::Drop),
            Some(Default::Keep) => Some(Action::Keep { quasi: false }),
            None => None,
        })
    }
}

/// Generalises `value`; `None` when it does not have the expected form.
pub fn generalize(how: &Generalize, value: &str) -> Option<String> {
    if let Some(part) = how.to {
        let b = value.as_bytes();
        let date = b.len() >= 10
            && b[..4].iter().all(u8::is_ascii_digit)
            && b[4] == b'-'
            && b[5..7].iter().all(u8::is_ascii_digit)
            && b[7] == b'-'
            && b[8..10].iter().all(u8::is_ascii_digit);
        if !date {
            return None;
        }
        return Some(match part {
            DatePart::Month => value[..7].to_owned(),
            DatePart::Year => value[..4].to_owned(),
        });
    }
    if let Some(width) = how.bucket {
        let number: f64 = value.trim().parse().ok()?;
        if !number.is_finite() || !(0.0..=1e15).contains(&number) {
            return None;
        }
        let lo = (number as u64) / width * width;
        return Some(format!("{lo}-{}", lo + width - 1));
    }
    if let Some(n) = how.prefix {
        let chars: Vec<char> = value.chars().collect();
        if chars.len() < n {
            return None;
        }
        return Some(chars[..n].iter().collect());
    }
    None
}

/// Masks all but the last `keep_last` characters of `value`.
pub fn mask(value: &str, keep_last: usize, mask: char) -> String {
    let count = value.chars().count();
    value
        .chars()
        .enumerate()
        .map(|(i, c)| if i + keep_last < count { mask } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_domain_is_kept_or_generalised_to_its_top_level_domain() {
        let rules = Rules::parse(
            "tenant = \"t\"\nrole = \"r\"\n[columns.email]\naction = \"pseudonym\"\n\
             transformation = \"email-pseudonym\"\nemail_domain = \"generalize\"\n",
        )
        .unwrap();
        let Some(Action::Pseudonym { email_domain, .. }) = rules.action("email") else {
            panic!("a pseudonym rule");
        };
        assert_eq!(email_domain.apply("x7k2@Mail.Bank.NL"), "x7k2@nl.invalid");
        assert_eq!(
            EmailDomain::Keep.apply("x7k2@mail.bank.nl"),
            "x7k2@mail.bank.nl"
        );
        assert!(
            Rules::parse(
                "tenant = \"t\"\nrole = \"r\"\n[columns.email]\naction = \"pseudonym\"\n\
                 transformation = \"e\"\nemail_domain = \"hide\"\n"
            )
            .is_err()
        );
    }

    #[test]
    fn rules_parse_and_refuse_what_is_wrong() {
        let rules = Rules::parse(
            r#"
tenant = "payroll"
role = "analytics"
default = "drop"
on_error = "skip"
[columns.iban]
action = "fpe"
transformation = "iban-fpe"
[columns.birth_date]
action = "generalize"
to = "year"
quasi = true
[columns.name]
action = "drop"
"#,
        )
        .unwrap();
        assert_eq!(rules.on_error, OnError::Skip);
        assert_eq!(
            rules.action("iban"),
            Some(Action::Fpe {
                transformation: "iban-fpe".into(),
                quasi: false,
                email_domain: EmailDomain::Keep,
            })
        );
        assert!(rules.action("birth_date").unwrap().quasi());
        assert_eq!(rules.action("unnamed"), Some(Action::Drop));
        for bad in [
            "tenant = \"t\"\nrole = \"r\"\n",
            "tenant = \"t\"\nrole = \"r\"\n[columns.a]\naction = \"shred\"\n",
            "tenant = \"t\"\nrole = \"r\"\n[columns.a]\naction = \"generalize\"\nto = \"year\"\nprefix = 2\n",
            "tenant = \"t\"\nrole = \"r\"\n[columns.a]\naction = \"fpe\"\n",
            "tenant = \"t\"\nrole = \"r\"\ndefault = \"maybe\"\n[columns.a]\naction = \"drop\"\n",
            "tenant = \"t\"\nrole = \"r\"\ntypo = 1\n[columns.a]\naction = \"drop\"\n",
        ] {
            assert!(Rules::parse(bad).is_err(), "{bad}");
        }
        let strict =
            Rules::parse("tenant = \"t\"\nrole = \"r\"\n[columns.a]\naction = \"drop\"\n").unwrap();
        assert_eq!(
            strict.action("b"),
            None,
            "unnamed columns are refused by default"
        );
    }

    #[test]
    fn generalisation_and_masks() {
        let year = Generalize {
            to: Some(DatePart::Year),
            bucket: None,
            prefix: None,
        };
        let month = Generalize {
            to: Some(DatePart::Month),
            bucket: None,
            prefix: None,
        };
        let bucket = Generalize {
            to: None,
            bucket: Some(10_000),
            prefix: None,
        };
        let prefix = Generalize {
            to: None,
            bucket: None,
            prefix: Some(4),
        };
        assert_eq!(generalize(&year, "1980-07-31").as_deref(), Some("1980"));
        assert_eq!(generalize(&month, "1980-07-31").as_deref(), Some("1980-07"));
        assert_eq!(generalize(&year, "31-07-1980"), None);
        assert_eq!(
            generalize(&bucket, "45250.50").as_deref(),
            Some("40000-49999")
        );
        assert_eq!(generalize(&bucket, "-3"), None);
        assert_eq!(generalize(&prefix, "1234 AB").as_deref(), Some("1234"));
        assert_eq!(generalize(&prefix, "12"), None);
        assert_eq!(mask("NL91ABNA0417164300", 4, '*'), "**************4300");
        assert_eq!(mask("ab", 4, '*'), "ab");
    }
}
