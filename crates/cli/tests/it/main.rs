//! The `modelgate` binary end to end, in one test binary: `serve` as a child process that is
//! stopped when its test ends, and the client commands against it.

mod common;

mod cli;
mod hostile;
