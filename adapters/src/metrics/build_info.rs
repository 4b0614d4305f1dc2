//! The `build_info` gauge both binaries expose, as Prometheus exporters do: always 1, with the
//! version as a label, so that a dashboard can tell which versions run.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The workspace's version, which every crate of it shares, the binaries' included.
const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Adds `<prefix>_build_info{version="…"} 1` to `registry`.
pub(super) fn register(registry: &mut Registry) {
    let info = Family::<BuildLabels, Gauge>::default();
    info.get_or_create(&BuildLabels { version: VERSION }).set(1);
    registry.register(
        "build_info",
        "The running binary's version, as a label; always 1",
        info,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_gauge_names_the_version() {
        let mut registry = Registry::with_prefix("test");
        register(&mut registry);
        let text = super::super::encode(&registry);
        assert!(text.contains("# TYPE test_build_info gauge"), "{text}");
        let sample = format!("test_build_info{{version=\"{VERSION}\"}} 1\n");
        assert!(text.contains(&sample), "{text}");
    }
}
