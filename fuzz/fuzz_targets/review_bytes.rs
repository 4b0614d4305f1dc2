//! Arbitrary bytes as a review body.
#![no_main]

libfuzzer_sys::fuzz_target!(|body: &[u8]| apiserver_proxy_fuzz::check_review(body));
