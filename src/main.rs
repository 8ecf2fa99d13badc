//! The `tresor` binary: server and client CLI in one. Everything lives in the library and in
//! `cli/`; this file only hands over.
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
