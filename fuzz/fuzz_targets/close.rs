//! Close-argument validation: what passes is a code applications may send and a reason of at
//! most 123 bytes, so neither target ever sends (or the browser throws on) anything else.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u16, &str)| {
    let (code, reason) = input;
    if isosock::fuzz::validate_close(code, reason) {
        assert!(reason.len() <= 123, "reason of {} bytes passed", reason.len());
        assert!(
            matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999),
            "code {code} passed"
        );
    }
});
