"""One module per subcommand: options -> one core call -> a short summary."""
