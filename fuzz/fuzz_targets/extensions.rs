//! `Sec-WebSocket-Extensions` and the permessage-deflate negotiation: parsing never panics and
//! yields tokens only, and re-serialised it parses to the same list; a server's answer to any
//! offer is exactly one well-formed permessage-deflate agreement that a client accepts; any
//! answer a client accepts agrees windows of 8..=15 bits; isosock's own offers and answers
//! agree with each other in every mode.
#![no_main]
use isosock::fuzz::{
    client_extensions, client_offer, parse_extensions, server_extensions, Extensions,
};
use libfuzzer_sys::fuzz_target;

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn serialise(exts: &Extensions) -> String {
    exts.iter()
        .map(|(name, params)| {
            let mut s = name.clone();
            for (k, v) in params {
                s.push_str("; ");
                s.push_str(k);
                if let Some(v) = v {
                    s.push('=');
                    s.push_str(v);
                }
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fuzz_target!(|input: (Vec<u8>, Vec<u8>, u8, u8)| {
    let (a, b, server_mode, client_mode) = input;
    let values: [&[u8]; 2] = [&a, &b];

    if let Some(exts) = parse_extensions(&values) {
        for (name, params) in &exts {
            assert!(is_token(name), "{name:?}");
            for (k, v) in params {
                assert!(is_token(k), "{k:?}");
                assert!(v.as_deref().is_none_or(is_token), "{v:?}");
            }
        }
        let text = serialise(&exts);
        assert_eq!(parse_extensions(&[text.as_bytes()]).as_ref(), Some(&exts));
    }

    if let Ok(Some(answer)) = server_extensions(&values, server_mode) {
        assert_ne!(server_mode % 3, 0, "a disabled server agreed {answer:?}");
        let parsed = parse_extensions(&[answer.as_bytes()]).expect("the answer parses");
        assert_eq!(parsed.len(), 1, "{answer:?}");
        assert_eq!(parsed[0].0, "permessage-deflate");
        if server_mode % 3 == 1 {
            assert!(answer.contains("server_no_context_takeover"), "{answer:?}");
            assert!(answer.contains("client_no_context_takeover"), "{answer:?}");
        }
        // A client with context takeover (whose offer allows any such answer) accepts it.
        let agreed = client_extensions(&[answer.as_bytes()], 2);
        assert!(matches!(agreed, Ok(Some(_))), "{answer:?}: {agreed:?}");
    }

    match client_extensions(&values, client_mode) {
        Ok(Some((server_bits, client_bits, server_reset, _))) => {
            assert_ne!(client_mode % 3, 0);
            assert!((8..=15).contains(&server_bits) && (8..=15).contains(&client_bits));
            if client_mode % 3 == 1 {
                assert!(server_reset, "no-context client accepted a context-keeping server");
            }
        }
        Ok(None) => assert!(parse_extensions(&values).is_some_and(|e| e.is_empty())),
        Err(()) => {}
    }

    for client in [1, 2] {
        let offer = client_offer(client).expect("an offer");
        for server in [1, 2] {
            let answer = server_extensions(&[offer.as_bytes()], server)
                .expect("isosock's offer parses")
                .expect("and is accepted");
            let agreed = client_extensions(&[answer.as_bytes()], client);
            assert!(matches!(agreed, Ok(Some(_))), "{offer} -> {answer}: {agreed:?}");
        }
    }
});
