//! `apiserver-proxy-pod-webhook`: flags -> certificates and listener -> serve until a signal (and
//! the shutdown delay after it).

use std::process::ExitCode;
use std::sync::Arc;

use adapters::http::admission::PATH;
use adapters::http::server::Server;
use adapters::metrics::server;
use adapters::metrics::webhook::WebhookMetrics;
use adapters::signals::Signals;
use anyhow::Context;
use domain::webhook::shutdown::{Timing, DEFAULT_TERMINATION_GRACE};

use apiserver_proxy_pod_webhook::flags::Flags;

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

const PROGRAM: &str = "apiserver-proxy-pod-webhook";

/// Two workers: the work per review is microseconds, and each worker thread costs memory.
const WORKER_THREADS: usize = 2;

fn main() -> ExitCode {
    let flags: Flags = adapters::cli::parse_flags();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .enable_all()
        .build();
    let klog = flags.klog.clone();
    adapters::cli::run_program(PROGRAM, &klog, runtime, serve(flags))
}

async fn serve(flags: Flags) -> anyhow::Result<ExitCode> {
    tracing::info!("starting {PROGRAM}: {}", flags.summary());
    let timing = Timing::with_delay(flags.shutdown_delay);
    if let Some(stop_takes) = timing.outlasting_default_termination_grace() {
        tracing::warn!(
            "--shutdown-delay-duration and the {}s grace for requests in flight take up to {}s \
             to stop, more than the default terminationGracePeriodSeconds ({}s): raise the \
             Pod's, or the kubelet kills the webhook before it has finished",
            timing.grace.as_secs(),
            stop_takes.as_secs_f64(),
            DEFAULT_TERMINATION_GRACE.as_secs()
        );
    }
    adapters::rlimit::raise_open_files_limit();
    let signals = Signals::install()?;
    let metrics_address = flags.metrics.bind_address.0;
    let metrics = Arc::new(WebhookMetrics::new());
    let server = Server::bind(flags.server_config(), Arc::clone(&metrics))?;
    if let Some(address) = metrics_address {
        let bound = server::serve(address, metrics)
            .await
            .with_context(|| format!("cannot serve metrics on --metrics-bind-address={address}"))?;
        tracing::info!("serving /metrics, /healthz and /readyz on http://{bound}");
    }
    let address = server
        .local_addr()
        .context("cannot read the bound address")?;
    tracing::info!(%address, "serving https://{address}{PATH} (and /healthz, /readyz)");
    server.run(signals.into_stream()).await;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
