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

#[test]
fn delivery_flags_take_numbers_or_the_word_that_removes_the_limit() {
    use crate::args::{Limit, OnDeadLetterArg, OrderingArg};
    let cli = Cli::try_parse_from([
        "heraldctl",
        "sub",
        "update",
        "sub_01ARZ3NDEKTSV4RRFFQ69G5FAV",
        "--rate-limit",
        "none",
        "--max-in-flight",
        "default",
        "--ordering",
        "key",
        "--on-dead-letter",
        "skip",
    ])
    .unwrap();
    let Command::Sub(SubCommand::Update(args)) = cli.command else {
        panic!("expected sub update");
    };
    assert_eq!(args.delivery.rate_limit, Some(Limit::Removed));
    assert_eq!(args.delivery.max_in_flight, Some(Limit::Removed));
    assert_eq!(args.delivery.ordering, Some(OrderingArg::Key));
    assert_eq!(args.delivery.on_dead_letter, Some(OnDeadLetterArg::Skip));

    let cli = Cli::try_parse_from([
        "heraldctl",
        "sub",
        "create",
        "--sink",
        "https://example.com/",
        "--rate-limit",
        "50",
        "--burst",
        "10",
        "--max-in-flight",
        "8",
    ])
    .unwrap();
    let Command::Sub(SubCommand::Create(args)) = cli.command else {
        panic!("expected sub create");
    };
    assert_eq!(args.delivery.rate_limit, Some(Limit::At(50)));
    assert_eq!(args.delivery.burst, Some(10));
    assert_eq!(args.delivery.max_in_flight, Some(Limit::At(8)));
}

#[test]
fn malformed_delivery_flags_are_refused() {
    for flags in [
        ["--rate-limit", "fast"],
        ["--max-in-flight", "none"],
        ["--ordering", "partition"],
        ["--on-dead-letter", "drop"],
    ] {
        let mut args = vec![
            "heraldctl",
            "sub",
            "create",
            "--sink",
            "https://example.com/",
        ];
        args.extend(flags);
        assert!(Cli::try_parse_from(&args).is_err(), "{flags:?}");
    }
}
