//! End-to-end tests: every role against a real nats-server and real HTTP endpoints.
