//! Output for people (`text`) and for scripts (`json`), and log set-up.

use clap::ValueEnum;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
}

/// Prints `value` as JSON, or through `text` for people.
pub(crate) fn print<T: Serialize>(
    format: Format,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> anyhow::Result<()> {
    match format {
        Format::Json => line(&serde_json::to_string_pretty(value)?),
        Format::Text => line(&text(value)),
    }
}

/// Writes one line to stdout. A reader that went away (`tresor … | head`) is not an error.
pub(crate) fn line(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Logs to stderr at `level`, as text or JSON lines. `RUST_LOG` overrides the level.
pub(crate) fn init_logging(level: &str, format: tresor_server::config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},hyper=warn,rustls=warn,sled=warn"))
    });
    // Colours only for a person at a terminal: journald and log files get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        tresor_server::config::LogFormat::Json => builder.json().try_init(),
        tresor_server::config::LogFormat::Text => builder.try_init(),
    };
}
