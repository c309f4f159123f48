//! `heraldctl`: the operator CLI over Herald's control-plane gRPC API, and a local webhook
//! listener for development.
//!
//! This binary stays thin: it parses arguments, runs one command, prints its output and maps a
//! failure to a one-line `error: ...` message and exit code 1. It links only `herald-proto`,
//! `herald-core` and `herald-signing`, never server-side crates.

mod access;
mod args;
mod client;
mod deliveries;
mod listen;
mod output;
mod rejected;
mod sub;
mod types;

#[cfg(test)]
mod tests;

use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{Cli, Command};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report_error(&client::describe(&err));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let target = client::Target {
        server: cli.server,
        token: cli.token,
        ca_file: cli.ca_file,
        cert_file: cli.cert,
        key_file: cli.key,
    };
    match cli.command {
        Command::Sub(command) => {
            let mut client = client::connect(&target).await?;
            let text = sub::run(&mut client, command, cli.output).await?;
            output::print(&text);
            Ok(())
        }
        Command::Rejected(command) => {
            let mut client = client::connect_events(&target).await?;
            let text = rejected::run(&mut client, command, cli.output).await?;
            output::print(&text);
            Ok(())
        }
        Command::Dlq(command) => {
            let mut client = client::connect_deliveries(&target).await?;
            let text = deliveries::dlq(&mut client, command, cli.output).await?;
            output::print(&text);
            Ok(())
        }
        Command::Attempts(command) => {
            let mut client = client::connect_deliveries(&target).await?;
            let text = deliveries::attempts(&mut client, command, cli.output).await?;
            output::print(&text);
            Ok(())
        }
        Command::Status(args) => {
            let mut client = client::connect_deliveries(&target).await?;
            let text = deliveries::status(&mut client, args, cli.output).await?;
            output::print(&text);
            Ok(())
        }
        Command::Replay(args) => {
            let mut client = client::connect_deliveries(&target).await?;
            deliveries::replay(&mut client, args, cli.output, output::print).await
        }
        Command::Listen(args) => listen::run(args).await,
        Command::Key(command) => {
            let mut client = client::connect_credentials(&target).await?;
            output::print(&access::key(&mut client, command, cli.output).await?);
            Ok(())
        }
        Command::Token(command) => {
            let mut client = client::connect_credentials(&target).await?;
            output::print(&access::token(&mut client, command, cli.output).await?);
            Ok(())
        }
        Command::Audit(command) => {
            let mut client = client::connect_audit(&target).await?;
            output::print(&access::audit(&mut client, command, cli.output).await?);
            Ok(())
        }
        Command::Types(command) => {
            let mut client = client::connect_types(&target).await?;
            if let Some(text) = types::run(&mut client, command, cli.output).await? {
                output::print(&text);
            }
            Ok(())
        }
    }
}

#[allow(
    clippy::print_stderr,
    reason = "the CLI reports failures on standard error"
)]
fn report_error(message: &str) {
    eprintln!("error: {message}");
}
