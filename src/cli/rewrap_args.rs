//! The flags of `tresor rewrap --input` (src/cli/rewrap_file.rs) and `--pg`
//! (src/cli/rewrap_table.rs), and of `tresor key census`: one set, since both modes share
//! most of them (--column, --dry-run, --resume, --batch-size, --connections).

use std::path::PathBuf;

use clap::Args;

/// Where the ciphertexts are.
#[derive(Args, Default, Clone)]
pub(crate) struct SourceArgs {
    /// JSON Lines or CSV file (CSV: a header line, comma-separated, RFC 4180 quoting).
    #[arg(long, value_name = "FILE")]
    pub(crate) input: Option<PathBuf>,
    /// JSON Lines: the top-level field holding the ciphertext.
    #[arg(long, conflicts_with = "column")]
    pub(crate) field: Option<String>,
    /// CSV: the header of the column holding the ciphertext; with --pg, the table's column.
    #[arg(long)]
    pub(crate) column: Option<String>,
    /// Issue 17: a PostgreSQL table instead of a file (src/cli/rewrap_table.rs).
    #[command(flatten)]
    pub(crate) pg_table: TableSource,
}

/// `tresor rewrap` over a file or a table.
#[derive(Args, Default, Clone)]
pub(crate) struct FileArgs {
    #[command(flatten)]
    pub(crate) source: SourceArgs,
    /// The rewrapped file (required with --input unless --dry-run).
    #[arg(long, value_name = "FILE", conflicts_with = "pg")]
    pub(crate) output: Option<PathBuf>,
    /// Count the ciphertexts per key version; change nothing (as `tresor key census`).
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Continue an interrupted run: keep the complete rows already in --output (with --pg:
    /// continue the table's unfinished job after its last committed batch).
    #[arg(long)]
    pub(crate) resume: bool,
    /// Ciphertexts per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub(crate) batch_size: u32,
    /// Requests in flight, each on its own connection.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub(crate) connections: u32,
    /// With --pg: rows read per second at most, to spare a production database.
    #[arg(long, value_name = "ROWS_PER_S", requires = "pg", value_parser = rate)]
    pub(crate) rate: Option<f64>,
    /// Stop after this many rows are written, as an interruption would (drills and tests).
    #[arg(long, hide = true)]
    pub(crate) stop_after: Option<u64>,
}

fn rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 1.0 => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a number of rows per second of at least 1"
        )),
    }
}

/// Where the table is (flattened into the source flags).
#[derive(Args, Default, Clone)]
pub(crate) struct TableSource {
    /// PostgreSQL connection URL of the application's database (no password in it): rewrap the
    /// ciphertexts of --table's --column in place.
    #[arg(long, value_name = "URL", conflicts_with_all = ["input", "field"])]
    pub(crate) pg: Option<String>,
    /// With --pg: the table, `name` or `schema.name`, spelt as the catalog spells it.
    #[arg(long, requires = "pg")]
    pub(crate) table: Option<String>,
    /// With --pg: the column to walk the table by: non-null, with a unique index of its own
    /// (default: the table's primary key, when it is one column).
    #[arg(long, requires = "pg")]
    pub(crate) key_column: Option<String>,
    /// With --pg: a file holding the database password on one line (default: PGPASSFILE or ~/.pgpass, then PGPASSWORD).
    #[arg(long, value_name = "FILE", requires = "pg")]
    pub(crate) pg_password_file: Option<PathBuf>,
    /// With --pg: the CA certificate(s) of the database server (PEM); TLS is then required.
    #[arg(long, value_name = "FILE", requires = "pg")]
    pub(crate) pg_ca_file: Option<PathBuf>,
}
