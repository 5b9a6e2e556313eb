//! The origin check of `accept` and its glob: never panics; a pattern without `*`/`?` matches
//! exactly its own text (ignoring ASCII case); `*` alone matches any text without `/`.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<u8>, Vec<u8>, Vec<String>, Vec<u8>, Vec<u8>)| {
    let (origin, host, patterns, pattern, text) = input;
    let _ = isosock::fuzz::origin_allowed(&origin, &host, &patterns);
    if !pattern.contains(&b'*') && !pattern.contains(&b'?') {
        assert_eq!(
            isosock::fuzz::glob_match(&pattern, &text),
            pattern.eq_ignore_ascii_case(&text)
        );
    }
    assert_eq!(isosock::fuzz::glob_match(b"*", &text), !text.contains(&b'/'));
});
