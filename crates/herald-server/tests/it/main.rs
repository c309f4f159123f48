//! Process-level tests of the `herald` binary: each role as its own process against a real
//! nats-server, killed and signalled as an orchestrator would.

mod crash;
mod process;
mod shutdown;
mod startup;
