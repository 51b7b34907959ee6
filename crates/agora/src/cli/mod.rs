//! The remote commands: `agora webhooks|deliveries|events|keys|audit-log …` talk to a running
//! server over its HTTP API, as an operator's or an integrator's scripts would. Tables for
//! people, `--json` for machines, and exit codes scripts can rely on ([`Failure::exit_code`]).

mod client;
mod commands;
mod output;

pub use client::{Failure, Remote};
pub use commands::{
    AuditArgs, DeliveriesCommand, EventsCommand, KeysCommand, RemoteKeysCommand, WebhooksCommand,
};

/// The process's exit code for a remote command's outcome, having printed what failed.
pub fn exit_code(done: Result<(), Failure>) -> std::process::ExitCode {
    match done {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{}", failure.message());
            std::process::ExitCode::from(failure.exit_code())
        }
    }
}
