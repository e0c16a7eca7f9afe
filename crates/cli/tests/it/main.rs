//! The `modelgate` binary end to end, in one test binary: `serve` as a child process that is
//! stopped when its test ends, and the client commands against it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails by panicking"
)]

mod common;

mod bundle;
mod cli;
mod docs;
mod hostile;
mod scale_out;
