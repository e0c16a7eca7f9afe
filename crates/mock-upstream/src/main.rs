//! `modelgate-mock-upstream`: the fake provider server as a process, for the Python client tests
//! and the benchmark.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test double: it serves only tests and benchmarks, and a broken fake should fail loudly"
)]

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use modelgate_mock_upstream::{Mock, Options};

#[derive(Parser)]
#[command(about = "A local fake of the OpenAI, Azure OpenAI, Anthropic and Entra ID APIs")]
struct Args {
    /// Address to listen on (port 0 picks one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Delay before each answer, e.g. 20ms.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    delay: Duration,
    /// Pause between streamed words.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    chunk_interval: Duration,
    /// Fixed answers on the OpenAI chat route (benchmarks).
    #[arg(long)]
    fast: bool,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(args.threads.max(1)).enable_all().build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        println!("mock listening on http://{}", listener.local_addr()?);
        let mock = Mock::new(Options { delay: args.delay, chunk_interval: args.chunk_interval, fast: args.fast });
        modelgate_mock_upstream::serve(listener, mock).await
    })
}
