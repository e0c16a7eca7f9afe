//! `modelgate-loadgen`: drives HTTP load at a URL and prints one JSON line of results.
//!
//! Closed loop (`--concurrency N`): N workers each send the next request when the previous
//! answer is fully read; measures throughput. Open loop (`--rate R`): requests start on a fixed
//! schedule whatever the answers do, so a slow server cannot slow the offered load down. Latency
//! is timed from the moment each request is actually sent: tokio's timer wakes up to about 1 ms
//! late, and timing from the scheduled instant would add that jitter to both sides of a
//! comparison. `lag_p99_us` reports how late the schedule ran. With `--stream` the time to the
//! first body byte is recorded too. Answers 503 and 429 count as errors and, apart, as `shed`
//! (with `shed_p99_us`, how long a refusal took); in the open loop, requests due while
//! `--max-outstanding` are outstanding are counted as `unsent`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::Mutex;

#[derive(Parser, Clone)]
struct Args {
    /// Target URL.
    #[arg(long)]
    url: String,
    /// Bearer token.
    #[arg(long, default_value = "")]
    token: String,
    /// Request body (JSON).
    #[arg(long)]
    body: String,
    /// Closed loop with this many workers.
    #[arg(long, conflicts_with = "rate")]
    concurrency: Option<usize>,
    /// Open loop at this many requests per second.
    #[arg(long)]
    rate: Option<u64>,
    /// Open loop: most requests outstanding at once, each on its own kept-alive connection (as
    /// many clients with connection pools would hold). A request due while this many are
    /// outstanding is not sent and is counted as `unsent`: the client, not the server, is then
    /// the bottleneck.
    #[arg(long, default_value_t = 2048)]
    max_outstanding: usize,
    /// Measured duration.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    duration: Duration,
    /// Unmeasured warm-up before it.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    warmup: Duration,
    /// Record time to first byte (streaming answers).
    #[arg(long)]
    stream: bool,
    /// Make every request body different: `%N%` in the body becomes a counter (defeats caches).
    #[arg(long)]
    unique: bool,
}

/// Requests sent so far, for `--unique` bodies.
static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Where this run's `--unique` counter starts: the start time, so two runs never send the same body.
static FIRST: std::sync::LazyLock<u128> = std::sync::LazyLock::new(|| {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0)
});

fn body_of(args: &Args, template: &'static [u8]) -> reqwest::Body {
    if !args.unique {
        return reqwest::Body::from(template);
    }
    let n = *FIRST + u128::from(SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    reqwest::Body::from(args.body.replace("%N%", &n.to_string()))
}

#[derive(Default)]
struct Stats {
    ok: u64,
    /// Failures: connection errors and error statuses, shed ones included.
    errors: u64,
    /// Answered 503 or 429: the server refused the request rather than queue it.
    shed: u64,
    /// Open loop: due while `--max-outstanding` requests were outstanding, so never sent.
    unsent: u64,
    /// Every answered request, warm-up included (to divide the server's CPU time by).
    all: u64,
}

struct Recorder {
    latency: Histogram<u64>,
    /// How long a shed request took to be refused.
    shed: Histogram<u64>,
    ttfb: Histogram<u64>,
    lag: Histogram<u64>,
    stats: Stats,
}

impl Recorder {
    fn new() -> Self {
        #[allow(clippy::expect_used, reason = "3 significant figures is a valid constant precision")]
        let h = || Histogram::new(3).expect("histogram");
        Self { latency: h(), shed: h(), ttfb: h(), lag: h(), stats: Stats::default() }
    }
}

/// Why a request failed: refused with 503 or 429 after this long (shed), or anything else.
enum Failure {
    Shed(Duration),
    Other,
}

impl Recorder {
    fn failed(&mut self, f: Failure) {
        self.stats.errors += 1;
        if let Failure::Shed(after) = f {
            self.stats.shed += 1;
            let _ = self.shed.record(after.as_micros() as u64);
        }
    }
}

async fn one(client: &reqwest::Client, args: &Args, body: &'static [u8]) -> Result<(Duration, Duration), Failure> {
    let start = Instant::now();
    let mut resp = client
        .post(&args.url)
        .bearer_auth(&args.token)
        .header("content-type", "application/json")
        .body(body_of(args, body))
        .send()
        .await
        .map_err(|_| Failure::Other)?;
    let status = resp.status().as_u16();
    if status == 503 || status == 429 {
        return Err(Failure::Shed(start.elapsed()));
    }
    if !resp.status().is_success() {
        return Err(Failure::Other);
    }
    let mut first = None;
    while let Some(chunk) = resp.chunk().await.map_err(|_| Failure::Other)? {
        if first.is_none() && !chunk.is_empty() {
            first = Some(start.elapsed());
        }
    }
    Ok((start.elapsed(), first.unwrap_or_else(|| start.elapsed())))
}

// One thread: the load generator shares its core with the mock and should not fight it.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    let idle = args.max_outstanding.max(1024);
    let client = match reqwest::Client::builder().tcp_nodelay(true).pool_max_idle_per_host(idle).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot build the HTTP client: {e}");
            std::process::exit(2);
        }
    };
    let body: &'static [u8] = Box::leak(args.body.clone().into_bytes().into_boxed_slice());
    let rec = Arc::new(Mutex::new(Recorder::new()));
    let measure_from = Instant::now() + args.warmup;
    let end = measure_from + args.duration;

    if let Some(rate) = args.rate {
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let mut next = Instant::now();
        let mut tasks = Vec::new();
        let outstanding = Arc::new(tokio::sync::Semaphore::new(args.max_outstanding));
        while next < end {
            tokio::time::sleep_until(next.into()).await;
            let scheduled = next;
            next += interval;
            let Ok(slot) = outstanding.clone().try_acquire_owned() else {
                if scheduled >= measure_from {
                    rec.lock().await.stats.unsent += 1;
                }
                continue;
            };
            let (client, args, rec) = (client.clone(), args.clone(), rec.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = slot;
                let lag = scheduled.elapsed();
                let r = one(&client, &args, body).await;
                let mut rec = rec.lock().await;
                rec.stats.all += 1;
                if scheduled < measure_from {
                    return;
                }
                match r {
                    Ok((latency, ttfb)) => {
                        rec.stats.ok += 1;
                        let _ = rec.latency.record(latency.as_micros() as u64);
                        let _ = rec.ttfb.record(ttfb.as_micros() as u64);
                        let _ = rec.lag.record(lag.as_micros() as u64);
                    }
                    Err(f) => rec.failed(f),
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    } else {
        let workers = args.concurrency.unwrap_or(32);
        let mut handles = Vec::new();
        for _ in 0..workers {
            let (client, args, rec) = (client.clone(), args.clone(), rec.clone());
            handles.push(tokio::spawn(async move {
                let mut local = Recorder::new();
                while Instant::now() < end {
                    let started = Instant::now();
                    let r = one(&client, &args, body).await;
                    local.stats.all += 1;
                    if started < measure_from {
                        continue;
                    }
                    match r {
                        Ok((lat, ttfb)) => {
                            local.stats.ok += 1;
                            let _ = local.latency.record(lat.as_micros() as u64);
                            let _ = local.ttfb.record(ttfb.as_micros() as u64);
                        }
                        Err(f) => local.failed(f),
                    }
                }
                let mut rec = rec.lock().await;
                let _ = rec.latency.add(&local.latency);
                let _ = rec.ttfb.add(&local.ttfb);
                let _ = rec.shed.add(&local.shed);
                rec.stats.ok += local.stats.ok;
                rec.stats.errors += local.stats.errors;
                rec.stats.shed += local.stats.shed;
                rec.stats.all += local.stats.all;
            }));
        }
        for h in handles {
            let _ = h.await;
        }
    }

    let rec = rec.lock().await;
    let secs = args.duration.as_secs_f64();
    let out = json!({
        "ok": rec.stats.ok,
        "errors": rec.stats.errors,
        "shed": rec.stats.shed,
        "unsent": rec.stats.unsent,
        "shed_p99_us": rec.shed.value_at_quantile(0.99),
        "all": rec.stats.all,
        "rps": (rec.stats.ok as f64 / secs).round(),
        "p50_us": rec.latency.value_at_quantile(0.50),
        "p90_us": rec.latency.value_at_quantile(0.90),
        "p99_us": rec.latency.value_at_quantile(0.99),
        "max_us": rec.latency.max(),
        "ttfb_p50_us": rec.ttfb.value_at_quantile(0.50),
        "ttfb_p99_us": rec.ttfb.value_at_quantile(0.99),
        "lag_p99_us": rec.lag.value_at_quantile(0.99),
        "cpu_ticks": own_cpu_ticks(),
    });
    println!("{out}");
}

/// This process's CPU time so far (user + system) in clock ticks, from `/proc/self/stat`: whether
/// the client itself was the bottleneck of a run (it shares a core with the mock). 0 where that
/// file is missing.
fn own_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at the third; utime and stime
    // are the 14th and 15th.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name.split_whitespace().skip(11).take(2).filter_map(|f| f.parse::<u64>().ok()).sum()
}
