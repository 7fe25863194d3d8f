//! The `neoc` command line.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let json = args.json();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) if json => {
            // --json: the error is the one object on stdout.
            println!("{}", serde_json::json!({ "ok": false, "error": format!("{e:#}") }));
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
