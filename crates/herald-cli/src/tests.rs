//! Tests of the argument definitions.

use clap::CommandFactory as _;
use clap::Parser as _;

use crate::args::{Cli, Command, OutputFormat, SubCommand};

#[test]
fn arguments_are_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn global_flags_are_accepted_after_the_subcommand() {
    let cli = Cli::try_parse_from([
        "heraldctl",
        "sub",
        "get",
        "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "--output",
        "json",
        "--server",
        "http://control:50051",
    ])
    .unwrap();
    assert_eq!(cli.output, OutputFormat::Json);
    assert_eq!(cli.server, "http://control:50051");
    assert!(matches!(cli.command, Command::Sub(SubCommand::Get { .. })));
}

#[test]
fn clear_filters_conflicts_with_new_filters() {
    let result = Cli::try_parse_from([
        "heraldctl",
        "sub",
        "update",
        "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "--clear-filters",
        "--type",
        "a",
    ]);
    assert!(result.is_err());
}
