//! Integration tests of the bundle format: round trips, determinism, signatures and the
//! hostile-bundle suite, all through the public API. The round-trip and hostile suites run in
//! every `IoMode`.

mod harness;
mod hostile;
mod roundtrip;
mod streaming;
pub mod tree;
