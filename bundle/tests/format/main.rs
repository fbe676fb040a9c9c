//! Integration tests of the bundle format: round trips, determinism, signatures and the
//! hostile-bundle suite, all through the public API.

mod harness;
mod hostile;
mod roundtrip;
mod streaming;
