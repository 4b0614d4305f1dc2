//! `--apiserver-fqdn`: never a panic; an accepted name is kept as given, and an error names it.
#![no_main]

use domain::webhook::fqdn::ApiserverFqdn;

libfuzzer_sys::fuzz_target!(|text: &str| {
    match text.parse::<ApiserverFqdn>() {
        Ok(fqdn) => assert_eq!(fqdn.as_str(), text),
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
