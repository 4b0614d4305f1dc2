//! Go durations: never a panic, and what parses formats to text that parses to the same value.
#![no_main]

use domain::duration::{format_go_duration, parse_go_duration};

libfuzzer_sys::fuzz_target!(|text: &str| {
    if let Ok(duration) = parse_go_duration(text) {
        let formatted = format_go_duration(duration);
        assert_eq!(parse_go_duration(&formatted), Ok(duration), "{text:?} -> {formatted:?}");
    }
});
