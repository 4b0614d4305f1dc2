//! `apiserver-proxy-sidecar`: flags -> desired state -> adapters -> the domain's sync loop.

use std::net::SocketAddr;
use std::pin::pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use adapters::apiserver::node_taints::ApiNodeTaints;
use adapters::apiserver::Credentials;
use adapters::clock::TokioClock;
use adapters::iptables::{
    rule_events, warn_if_kube_proxy_iptables_mode, Backend, IptablesRules, Tools,
};
use adapters::metrics::server;
use adapters::metrics::sidecar::SidecarMetrics;
use adapters::netlink::{events::network_events, Netlink};
use adapters::proxy_probe::TcpProxyProbe;
use anyhow::Context;
use domain::sidecar::address::AddressReconciler;
use domain::sidecar::desired::{DesiredAddress, ProxyAddress};
use domain::sidecar::lifecycle::{Exit, Mode, Sidecar};
use domain::sidecar::model::{IpFamily, NetEvent};
use domain::sidecar::proxy::{watch, Proxy};
use domain::sidecar::reconciler::NodeReconciler;
use domain::sidecar::rules::RuleReconciler;
use domain::sidecar::run::Schedule;
use domain::sidecar::startup_taint::StartupTaint;
use futures::future::{Either, FutureExt};
use futures::stream::{self, BoxStream, StreamExt};

use apiserver_proxy_sidecar::flags::Flags;

const PROGRAM: &str = "apiserver-proxy-sidecar";

fn main() -> ExitCode {
    let flags: Flags = adapters::cli::parse_flags();
    let earlier = flags
        .earlier_addresses()
        .unwrap_or_else(|error| adapters::cli::refuse(error));
    // One thread: the sidecar waits on the kernel almost all the time, and a single thread keeps
    // its footprint small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let klog = flags.klog.clone();
    adapters::cli::run_program(PROGRAM, &klog, runtime, serve(flags, earlier))
}

async fn serve(flags: Flags, earlier: Vec<ProxyAddress>) -> anyhow::Result<ExitCode> {
    tracing::info!("starting {PROGRAM}: {}", flags.summary());
    adapters::rlimit::raise_open_files_limit();
    let net = Netlink::connect()?;
    let desired = DesiredAddress {
        addresses: flags.ip_address.clone(),
        interface: flags.interface.clone(),
    };
    let backend = match flags.setup_iptables {
        true => Some(Backend::detect(&Tools::default()).await),
        false => None,
    };
    if let Some(backend) = backend {
        let families: Vec<IpFamily> = flags.ip_address.iter().map(IpFamily::of).collect();
        warn_if_kube_proxy_iptables_mode(&Tools::default(), backend, &families).await;
    }
    let rules = backend.map(|backend| {
        tracing::info!(?backend, "keeping the conntrack-bypass rules");
        let manager = IptablesRules::new(backend, Tools::default());
        RuleReconciler::new(manager, &flags.ip_address, flags.port)
    });
    let address = AddressReconciler::new(net, desired).removing(earlier);
    let mut reconciler = NodeReconciler::new(address, rules);
    let metrics = match flags.metrics.bind_address.0 {
        Some(address) => Some(serve_metrics(address, flags.sync_interval).await?),
        None => None,
    };
    // Every probe, the taint's and the watch's, goes into the metrics when they are on.
    let proxy = Proxy::new(
        Arc::new(TcpProxyProbe::default()),
        &flags.ip_address,
        flags.port,
        Arc::new(metrics.clone()),
    );
    let mode = Mode {
        daemon: flags.daemon,
        cleanup: flags.cleanup,
    };
    // Only with --startup-taint: without it no client exists (clap made --node-name required).
    let taint = match (flags.startup_taint.clone(), flags.node_name.clone()) {
        (Some(key), Some(node)) => {
            let credentials = Credentials::from_flag(flags.kubeconfig.clone());
            let taints = ApiNodeTaints::new(credentials, node.clone());
            let taint = StartupTaint::new(taints, key, node);
            Some(match flags.wait_for_proxy {
                true => taint.waiting_for(proxy.clone()),
                false => taint,
            })
        }
        _ => None,
    };
    // A one-shot run neither listens for changes nor handles signals: a signal ends it at once.
    let (events, stops) = if flags.daemon {
        // Installed before the first sync, so a signal during start-up is not lost.
        let signals = adapters::signals::Signals::install()?;
        (events(backend), signals.into_stream().boxed())
    } else {
        (stream::pending().boxed(), stream::pending().boxed())
    };
    let clock = TokioClock::default();
    let sidecar = Sidecar {
        reconciler: &mut reconciler,
        clock: &clock,
        observer: &metrics,
        schedule: Schedule::new(flags.sync_interval),
    };
    let living = sidecar.live(mode, taint, events, stops);
    // The daemon with metrics keeps the proxy's reachability current. The watch never ends (its
    // output has no value), so the process ends with `live`.
    let watching = match (flags.daemon, &metrics) {
        (true, Some(_)) => watch(&proxy, &clock, flags.sync_interval).left_future(),
        _ => futures::future::pending().right_future(),
    };
    let exit = match futures::future::select(pin!(living), pin!(watching)).await {
        Either::Left((exit, _)) => exit,
        Either::Right((never, _)) => match never {},
    };
    Ok(match exit {
        Exit::Success => ExitCode::SUCCESS,
        Exit::Failure => ExitCode::FAILURE,
        // 128 + SIGINT, as a shell reports a process cut short.
        Exit::Interrupted => ExitCode::from(130),
    })
}

/// Starts the metrics and health server; a bad address, or one a process other than another
/// sidecar holds, fails the start. Shared (`SO_REUSEPORT`): in a surge rollout the next
/// generation binds the same port on the node beside the old one (docs/deploy.md#rollouts).
async fn serve_metrics(
    address: SocketAddr,
    interval: Duration,
) -> anyhow::Result<Arc<SidecarMetrics>> {
    let metrics = Arc::new(SidecarMetrics::new(interval));
    let bound = server::serve_shared(address, metrics.clone())
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
