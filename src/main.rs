//! The medmig binary: parse arguments, run, print `error: …` once, exit with the code.

use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::FromArgMatches;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match medmig::command()
        .try_get_matches_from(&args)
        .and_then(|matches| medmig::cli::Cli::from_arg_matches(&matches))
    {
        Ok(cli) => cli,
        Err(err) => match err.kind() {
            ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
                let _ = err.print();
                return ExitCode::SUCCESS;
            }
            // Bare `medmig` (or `medmig schema`): the help, as clap lays it out, on stderr.
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                let _ = err.print();
                return ExitCode::from(2);
            }
            _ => {
                eprint!(
                    "{}",
                    medmig::cli::argument_error(&medmig::command(), &err, &args)
                );
                return ExitCode::from(2);
            }
        },
    };
    match medmig::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            medmig::outfile::wait_if_interrupted();
            // The cause chain quotes names and messages from outside: one line, shown inert.
            let message = format!("{err:#}");
            eprintln!("error: {}", medmig::text::escape_controls(&message));
            ExitCode::from(2)
        }
    }
}

/// A reader that went away (`medmig status | head`) is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
