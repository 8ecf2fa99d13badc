//! The `tresor` binary: server and client CLI in one. Everything lives in the library crates;
//! this file only hands over.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    tresor::cli::main()
}
