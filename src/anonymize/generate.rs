//! A synthetic payroll extract, for tests, benchmarks and docs/anonymize.md: invented names,
//! valid-looking identifiers (BSNs pass the 11-check, IBANs their mod-97 check, with invented
//! bank codes), no real personal data. Deterministic for a seed (SplitMix64: a test-data
//! generator, not a secret).

use std::io::{self, Write};

use super::csv::write_record;

/// The columns, in order.
pub const COLUMNS: &[&str] = &[
    "employee_id",
    "name",
    "bsn",
    "iban",
    "email",
    "phone",
    "birth_date",
    "postcode",
    "job_title",
    "salary",
];

const FIRST: &[&str] = &[
    "Anouk", "Bram", "Daan", "Eva", "Fenna", "Gijs", "Hidde", "Isa", "Jelle", "Kiki", "Lars",
    "Mila", "Noor", "Olaf", "Pien", "Quint", "Roos", "Sem", "Tess", "Vince",
];
const LAST: &[&str] = &[
    "Aalberts",
    "Bosgra",
    "Cremers",
    "Dijkhuis",
    "Elzinga",
    "Fokkema",
    "Gerritsma",
    "Hoekstra",
    "IJpma",
    "Jellema",
    "Kuipers",
    "Lammers",
    "Mulder",
    "Nijboer",
    "Oosterhof",
    "Postma",
];
const TITLES: &[&str] = &[
    "Analyst",
    "Engineer",
    "Accountant",
    "Clerk",
    "Manager",
    "Nurse",
    "Teacher",
    "Driver",
];
/// Invented bank codes (no real bank's).
const BANKS: &[&str] = &["TRSA", "TRSB", "TRSC"];

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len() as u64) as usize]
    }
}

fn bsn(rng: &mut Rng) -> String {
    loop {
        let prefix = format!("{}{}", 1 + rng.below(9), rng.digits(7));
        let sum: u64 = prefix
            .bytes()
            .zip((2..=9).rev())
            .map(|(b, w)| u64::from(b - b'0') * w)
            .sum();
        if sum % 11 < 10 {
            return format!("{prefix}{}", sum % 11);
        }
    }
}

fn iban(rng: &mut Rng) -> String {
    let bban = format!("{}{}", rng.pick(BANKS), rng.digits(10));
    let mut r: u32 = 0;
    for c in bban.chars().chain("NL00".chars()) {
        let v = c.to_digit(36).expect("alphanumeric");
        r = if v >= 10 {
            (r * 100 + v) % 97
        } else {
            (r * 10 + v) % 97
        };
    }
    format!("NL{:02}{bban}", 98 - r)
}

/// Writes a header and `rows` rows of CSV for `seed` to `out`.
pub fn payroll<W: Write>(out: &mut W, rows: u64, seed: u64) -> io::Result<()> {
    let mut rng = Rng(seed);
    write_record(out, COLUMNS)?;
    for i in 0..rows {
        let first = rng.pick(FIRST);
        let last = rng.pick(LAST);
        let year = 1960 + rng.below(45);
        let row = [
            format!("EMP-{:04}-{}", i % 10_000, rng.digits(4)),
            format!("{first} {last}"),
            bsn(&mut rng),
            iban(&mut rng),
            format!(
                "{}.{}.{i}@example.com",
                first.to_lowercase(),
                last.to_lowercase()
            ),
            format!("+31 6 {} {}", rng.digits(4), rng.digits(4)),
            format!("{year}-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28)),
            format!(
                "{} {}{}",
                1000 + rng.below(9000),
                char::from(b'A' + rng.below(26) as u8),
                char::from(b'A' + rng.below(26) as u8)
            ),
            rng.pick(TITLES).to_owned(),
            format!("{}.{:02}", 25_000 + rng.below(75_000), rng.below(100)),
        ];
        write_record(out, &row)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_deterministic_and_valid() {
        let mut a = Vec::new();
        payroll(&mut a, 50, 7).unwrap();
        let mut b = Vec::new();
        payroll(&mut b, 50, 7).unwrap();
        assert_eq!(a, b);
        let text = String::from_utf8(a).unwrap();
        assert_eq!(text.lines().count(), 51);
        let mut reader = super::super::csv::Reader::new(text.as_bytes());
        reader.record();
        while let Some(row) = reader.record() {
            let row = row.unwrap();
            assert_eq!(row.len(), COLUMNS.len());
            let bsn = &row[2];
            let sum: i64 = bsn
                .bytes()
                .zip([9, 8, 7, 6, 5, 4, 3, 2, -1])
                .map(|(b, w)| i64::from(b - b'0') * w)
                .sum();
            assert_eq!(sum % 11, 0, "{bsn}");
        }
    }
}
