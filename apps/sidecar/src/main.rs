//! `apiserver-proxy-sidecar`: flags -> desired state -> adapters -> the domain's sync loop.

mod flags;
mod signals;

use std::process::ExitCode;

use adapters::clock::TokioClock;
use adapters::netlink::{events::network_events, Netlink};
use anyhow::Context;
use domain::ports::{NetEvent, RuleError, RuleManager};
use domain::sidecar::address::AddressReconciler;
use domain::sidecar::desired::DesiredAddress;
use domain::sidecar::reconciler::Sidecar;
use domain::sidecar::rules::{IpFamily, Rule};
use domain::sidecar::run::{run, sync_once, Schedule, Trigger};
use futures::stream::{self, BoxStream, StreamExt};

use crate::flags::Flags;

const PROGRAM: &str = "apiserver-proxy-sidecar";

fn main() -> ExitCode {
    let flags: Flags = adapters::cli::parse_flags();
    if let Err(error) = flags.klog.init(PROGRAM) {
        eprintln!("{PROGRAM}: {error}");
        return ExitCode::FAILURE;
    }
    // One thread: the sidecar waits on the kernel almost all the time, and a single thread keeps
    // its footprint small.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let outcome = runtime
        .context("cannot start the async runtime")
        .and_then(|rt| rt.block_on(serve(flags)));
    match outcome {
        Ok(code) => code,
        Err(error) => {
            tracing::error!("{error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(flags: Flags) -> anyhow::Result<ExitCode> {
    tracing::info!("starting {PROGRAM}: {}", flags.summary());
    let net = Netlink::connect()?;
    let desired = DesiredAddress {
        address: flags.ip_address,
        interface: flags.interface.clone(),
    };
    let mut sidecar: Sidecar<Netlink, NoRules> =
        Sidecar::new(AddressReconciler::new(net, desired), None);
    if flags.setup_iptables {
        tracing::warn!(
            "--setup-iptables is accepted, but this build does not manage the rules yet"
        );
    }
    let clock = TokioClock::default();
    if !flags.daemon {
        let outcome = sync_once(&mut sidecar, &clock, &(), Trigger::Start).await;
        let cleaned = !flags.cleanup || cleanup(&mut sidecar).await;
        return Ok(if outcome.succeeded() && cleaned {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let mut signals = signals::Signals::install()?;
    run(
        &mut sidecar,
        &clock,
        &(),
        Schedule::new(flags.sync_interval),
        events(),
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

/// The network events, or none if the kernel refuses the subscription: the interval then remains
/// the safety net.
fn events() -> BoxStream<'static, NetEvent> {
    match network_events() {
        Ok(events) => events.boxed(),
        Err(error) => {
            tracing::warn!(cause = %error, "cannot subscribe to netlink events; relying on --sync-interval alone");
            stream::pending().boxed()
        }
    }
}

async fn cleanup(sidecar: &mut Sidecar<Netlink, NoRules>) -> bool {
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

/// Stands in for the iptables adapter until it lands: never constructed.
#[derive(Debug)]
enum NoRules {}

#[async_trait::async_trait]
impl RuleManager for NoRules {
    async fn list_ours(&self, _: IpFamily) -> Result<Vec<Rule>, RuleError> {
        match *self {}
    }
    async fn insert(&self, _: IpFamily, _: &Rule) -> Result<(), RuleError> {
        match *self {}
    }
    async fn delete(&self, _: IpFamily, _: &Rule) -> Result<(), RuleError> {
        match *self {}
    }
}
