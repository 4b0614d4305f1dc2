//! Both binaries' flag parsers on arbitrary argument lists: never a panic, and every refusal
//! renders as the binary would print it.
#![no_main]

use clap::Parser;

libfuzzer_sys::fuzz_target!(|args: Vec<String>| {
    let sidecar = std::iter::once("apiserver-proxy-sidecar".to_owned()).chain(args.iter().cloned());
    if let Err(error) = apiserver_proxy_sidecar::flags::Flags::try_parse_from(sidecar) {
        let _ = error.render().to_string();
    }
    let webhook = std::iter::once("apiserver-proxy-pod-webhook".to_owned()).chain(args.iter().cloned());
    if let Err(error) = apiserver_proxy_pod_webhook::flags::Flags::try_parse_from(webhook) {
        let _ = error.render().to_string();
    }
});
