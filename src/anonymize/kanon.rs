//! k-anonymity of an extract over its quasi-identifier columns: rows are grouped by their
//! quasi-identifier values; k is the size of the smallest group. The report holds counts only,
//! never values. Memory grows with the number of distinct groups, not of rows.

use std::collections::HashMap;

use serde::Serialize;

/// Counts rows per quasi-identifier tuple.
#[derive(Debug, Default)]
pub struct Groups {
    counts: HashMap<Vec<String>, u64>,
    rows: u64,
}

/// How many of the smallest group sizes the report lists.
pub const SMALLEST: usize = 5;

/// The disclosure report (counts only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The quasi-identifier columns.
    pub quasi_identifiers: Vec<String>,
    /// Rows counted.
    pub rows: u64,
    /// Distinct quasi-identifier combinations.
    pub groups: u64,
    /// The smallest group's size (0 with no rows).
    pub k: u64,
    /// The sizes of the smallest groups, ascending (at most [`SMALLEST`]).
    pub smallest_groups: Vec<u64>,
    /// With `--min-k`: the groups smaller than it, and the rows in them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub below_min_k: Option<Below>,
}

/// Groups under the minimum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Below {
    /// The minimum asked for.
    pub min_k: u64,
    /// Groups smaller than it.
    pub groups: u64,
    /// Rows in those groups.
    pub rows: u64,
}

impl Groups {
    /// Counts one row's quasi-identifier values.
    pub fn add(&mut self, tuple: Vec<String>) {
        self.rows += 1;
        *self.counts.entry(tuple).or_insert(0) += 1;
    }

    /// The report over `columns`, with the groups under `min_k` counted when given.
    pub fn report(&self, columns: &[String], min_k: Option<u64>) -> Report {
        let mut sizes: Vec<u64> = self.counts.values().copied().collect();
        sizes.sort_unstable();
        Report {
            quasi_identifiers: columns.to_vec(),
            rows: self.rows,
            groups: sizes.len() as u64,
            k: sizes.first().copied().unwrap_or(0),
            smallest_groups: sizes.iter().take(SMALLEST).copied().collect(),
            below_min_k: min_k.map(|min_k| Below {
                min_k,
                groups: sizes.iter().filter(|s| **s < min_k).count() as u64,
                rows: sizes.iter().filter(|s| **s < min_k).sum(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten rows over (birth year, postcode prefix): by hand, the groups are
    /// (1980, 1011) × 4, (1980, 1012) × 3, (1975, 1011) × 2, (1990, 3511) × 1: k = 1.
    #[test]
    fn a_hand_computed_example() {
        let mut g = Groups::default();
        let rows = [
            ("1980", "1011"),
            ("1980", "1012"),
            ("1975", "1011"),
            ("1980", "1011"),
            ("1990", "3511"),
            ("1980", "1012"),
            ("1980", "1011"),
            ("1975", "1011"),
            ("1980", "1012"),
            ("1980", "1011"),
        ];
        for (year, postcode) in rows {
            g.add(vec![year.into(), postcode.into()]);
        }
        let columns = vec!["birth_year".to_owned(), "postcode".to_owned()];
        let report = g.report(&columns, Some(3));
        assert_eq!(report.rows, 10);
        assert_eq!(report.groups, 4);
        assert_eq!(report.k, 1);
        assert_eq!(report.smallest_groups, vec![1, 2, 3, 4]);
        assert_eq!(
            report.below_min_k,
            Some(Below {
                min_k: 3,
                groups: 2,
                rows: 3
            })
        );
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            !json.contains("1980") && !json.contains("1011"),
            "counts only: {json}"
        );
    }
}
