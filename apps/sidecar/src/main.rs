//! `apiserver-proxy-sidecar`: flags -> desired state -> adapters -> the domain's sync loop.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use adapters::clock::TokioClock;
use adapters::iptables::{rule_events, Backend, IptablesRules, Tools};
use adapters::metrics::server;
use adapters::metrics::sidecar::SidecarMetrics;
use adapters::netlink::{events::network_events, Netlink};
use anyhow::Context;
use domain::ports::NetEvent;
use domain::sidecar::address::AddressReconciler;
use domain::sidecar::desired::DesiredAddress;
use domain::sidecar::reconciler::Sidecar;
use domain::sidecar::rules::RuleReconciler;
use domain::sidecar::run::{run, sync_once, Schedule, Trigger};
use futures::stream::{self, BoxStream, StreamExt};

use apiserver_proxy_sidecar::flags::Flags;

const PROGRAM: &str = "apiserver-proxy-sidecar";

fn main() -> ExitCode {
    let flags: Flags = adapters::cli::parse_flags();
    // One thread: the sidecar waits on the kernel almost all the time, and a single thread keeps
    // its footprint small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let klog = flags.klog.clone();
    adapters::cli::run_program(PROGRAM, &klog, runtime, serve(flags))
}

async fn serve(flags: Flags) -> anyhow::Result<ExitCode> {
    tracing::info!("starting {PROGRAM}: {}", flags.summary());
    adapters::rlimit::raise_open_files_limit();
    let net = Netlink::connect()?;
    let desired = DesiredAddress {
        address: flags.ip_address,
        interface: flags.interface.clone(),
    };
    let backend = match flags.setup_iptables {
        true => Some(Backend::detect(&Tools::default()).await),
        false => None,
    };
    let rules = backend.map(|backend| {
        tracing::info!(?backend, "keeping the conntrack-bypass rules");
        let manager = IptablesRules::new(backend, Tools::default());
        RuleReconciler::new(manager, &flags.ip_address, flags.port)
    });
    let mut sidecar = Sidecar::new(AddressReconciler::new(net, desired), rules);
    let clock = TokioClock::default();
    let metrics = match flags.metrics.bind_address.0 {
        Some(address) => Some(serve_metrics(address, flags.sync_interval).await?),
        None => None,
    };
    if !flags.daemon {
        let outcome = sync_once(&mut sidecar, &clock, &metrics, Trigger::Start).await;
        let cleaned = !flags.cleanup || cleanup(&mut sidecar).await;
        return Ok(if outcome.succeeded() && cleaned {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let mut signals = adapters::signals::Signals::install()?;
    run(
        &mut sidecar,
        &clock,
        &metrics,
        Schedule::new(flags.sync_interval),
        events(backend),
        signals.next(),
    )
    .await;
    if !flags.cleanup {
        tracing::info!("stopping; --cleanup is off, so the address stays");
        return Ok(ExitCode::SUCCESS);
    }
    tracing::info!("stopping; cleaning up (a second signal exits at once)");
    tokio::select! {
        cleaned = cleanup(&mut sidecar) => Ok(if cleaned { ExitCode::SUCCESS } else { ExitCode::FAILURE }),
        () = signals.next() => {
            tracing::warn!("second signal: exiting before cleanup finished");
            Ok(ExitCode::from(130))
        }
    }
}

/// Starts the metrics and health server; a bad or busy address fails the start.
async fn serve_metrics(
    address: SocketAddr,
    interval: Duration,
) -> anyhow::Result<Arc<SidecarMetrics>> {
    let metrics = Arc::new(SidecarMetrics::new(interval));
    let bound = server::serve(address, metrics.clone())
        .await
        .with_context(|| format!("cannot serve metrics on --metrics-bind-address={address}"))?;
    tracing::info!("serving /metrics, /healthz and /readyz on http://{bound}");
    Ok(metrics)
}

/// The network events, and the rule events when rules are kept. If the kernel refuses the
/// address subscription, the interval remains the safety net.
fn events(rules: Option<Backend>) -> BoxStream<'static, NetEvent> {
    let network = match network_events() {
        Ok(events) => events.boxed(),
        Err(error) => {
            tracing::warn!(cause = %error, "cannot subscribe to netlink events; relying on --sync-interval alone");
            stream::pending().boxed()
        }
    };
    match rules {
        Some(backend) => stream::select(network, rule_events(backend)).boxed(),
        None => network,
    }
}

async fn cleanup(sidecar: &mut Sidecar<Netlink, IptablesRules>) -> bool {
    match sidecar.cleanup().await {
        Ok(()) => {
            tracing::info!("cleanup done: removed what this process added");
            true
        }
        Err(errors) => {
            for error in errors {
                tracing::error!("cleanup: {error}");
            }
            false
        }
    }
}
