//! The operations a policy grants, the scope each one lives in, and the vocabulary they form.
//!
//! An operation is a value declared by whatever performs it (the server declares each of its
//! operations beside the endpoint that serves it: see `tresor_server::operations`), not a
//! variant of a central list. A [`Vocabulary`] is the set a program declares; policy files are
//! checked against it, so a name no endpoint declares is an error (docs/policies.md).

use std::fmt;

/// Where an operation applies, which decides what kind of rule can grant it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// On one key of one tenant: grantable per tenant with key globs.
    Key,
    /// On one tenant as a whole (no key): grantable per tenant.
    Tenant,
    /// On the vault as a whole: only an operator rule can grant it.
    Vault,
}

/// Something a principal asks the vault to do: the name used in policy files, audit lines and
/// metrics, and its [`Scope`].
///
/// ```
/// use tresor_server::policy::{Operation, Scope};
/// const SIGN: Operation = Operation::new("sign", Scope::Key);
/// assert_eq!(SIGN.to_string(), "sign");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Operation {
    name: &'static str,
    scope: Scope,
}

impl Operation {
    /// An operation named `name` (lowercase letters, digits and `-`) applying in `scope`.
    pub const fn new(name: &'static str, scope: Scope) -> Operation {
        Operation { name, scope }
    }

    /// The name used in policy files and audit lines.
    pub const fn name(self) -> &'static str {
        self.name
    }

    /// Where the operation applies.
    pub const fn scope(self) -> Scope {
        self.scope
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// A name that is not an operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown operation `{0}`")]
pub struct UnknownOperation(pub String);

/// Operations that cannot form a vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid operation vocabulary: {0}")]
pub struct InvalidVocabulary(pub String);

/// The operations policies may name, in declaration order; at most [`Vocabulary::MAX`].
/// A policy set holds one operation per bit, numbered by position here.
#[derive(Debug)]
pub struct Vocabulary {
    operations: Vec<Operation>,
    /// `(name, position)`, sorted by name: a lookup is a binary search, not a scan.
    by_name: Vec<(&'static str, u8)>,
}

/// The vocabulary with no operations (of a policy set with no rules).
pub(crate) static EMPTY: Vocabulary = Vocabulary {
    operations: Vec::new(),
    by_name: Vec::new(),
};

impl Vocabulary {
    /// How many operations a vocabulary can hold.
    pub const MAX: usize = 64;

    /// The vocabulary of `operations`, in the order given. The same operation may be given
    /// more than once (several endpoints perform one operation); one name with two scopes, an
    /// invalid name or more than [`Vocabulary::MAX`] operations is an error.
    pub fn new(
        operations: impl IntoIterator<Item = Operation>,
    ) -> Result<Vocabulary, InvalidVocabulary> {
        let mut unique: Vec<Operation> = Vec::new();
        for op in operations {
            let valid = !op.name.is_empty()
                && op
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid {
                return Err(InvalidVocabulary(format!(
                    "`{}` is not an operation name: use a-z, 0-9 and -",
                    op.name
                )));
            }
            match unique.iter().find(|known| known.name == op.name) {
                Some(known) if known.scope != op.scope => {
                    return Err(InvalidVocabulary(format!(
                        "`{}` is declared with two scopes",
                        op.name
                    )));
                }
                Some(_) => {}
                None => unique.push(op),
            }
        }
        if unique.len() > Vocabulary::MAX {
            return Err(InvalidVocabulary(format!(
                "{} operations, more than {}",
                unique.len(),
                Vocabulary::MAX
            )));
        }
        let mut by_name: Vec<(&'static str, u8)> = unique
            .iter()
            .enumerate()
            .map(|(i, op)| (op.name, i as u8))
            .collect();
        by_name.sort_unstable();
        Ok(Vocabulary {
            operations: unique,
            by_name,
        })
    }

    /// The operation called `name`.
    pub fn parse(&self, name: &str) -> Result<Operation, UnknownOperation> {
        self.position(name)
            .map(|i| self.operations[i])
            .ok_or_else(|| UnknownOperation(name.chars().take(64).collect()))
    }

    /// Every operation, in declaration order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Operation> + '_ {
        self.operations.iter().copied()
    }

    /// Every operation name, in declaration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.operations.iter().map(|op| op.name).collect()
    }

    /// How many operations.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    /// The bit `op` has in a policy set over this vocabulary; `None` if it is not one of its
    /// operations (then no rule can grant it).
    pub(crate) fn bit(&self, op: Operation) -> Option<u64> {
        let i = self.position(op.name)?;
        (self.operations[i].scope == op.scope).then_some(1 << i)
    }

    /// The bits of every operation in `scopes`.
    pub(crate) fn bits_in(&self, scopes: &[Scope]) -> u64 {
        self.operations
            .iter()
            .enumerate()
            .filter(|(_, op)| scopes.contains(&op.scope))
            .fold(0, |bits, (i, _)| bits | 1 << i)
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.by_name
            .binary_search_by(|(known, _)| (*known).cmp(name))
            .ok()
            .map(|at| usize::from(self.by_name[at].1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Operation = Operation::new("a", Scope::Key);
    const B: Operation = Operation::new("b-2", Scope::Vault);

    #[test]
    fn names_round_trip_and_are_unique() {
        let vocabulary = Vocabulary::new([B, A, B]).unwrap();
        assert_eq!(vocabulary.names(), ["b-2", "a"]);
        for op in vocabulary.iter() {
            assert_eq!(vocabulary.parse(op.name()).unwrap(), op);
        }
        assert_eq!(vocabulary.bit(A), Some(2));
        assert_eq!(vocabulary.bit(Operation::new("a", Scope::Tenant)), None);
        assert_eq!(vocabulary.bits_in(&[Scope::Vault]), 1);
        assert!(vocabulary.parse("a ").is_err());
        assert_eq!(
            vocabulary.parse("nope"),
            Err(UnknownOperation("nope".into()))
        );
    }

    #[test]
    fn invalid_vocabularies() {
        assert!(Vocabulary::new([A, Operation::new("a", Scope::Vault)]).is_err());
        assert!(Vocabulary::new([Operation::new("*", Scope::Key)]).is_err());
        assert!(Vocabulary::new([Operation::new("", Scope::Key)]).is_err());
        let many: Vec<Operation> = (0..65)
            .map(|i| Operation::new(Box::leak(format!("op{i}").into_boxed_str()), Scope::Key))
            .collect();
        assert!(Vocabulary::new(many[..64].to_vec()).is_ok());
        assert!(Vocabulary::new(many).is_err());
    }
}
