//! `Sec-WebSocket-Extensions` (RFC 6455 9.1) and the permessage-deflate negotiation (RFC 7692
//! 7.1): parsing offers and responses, a server's pick among several offers, a client's check
//! of the answer. Pure functions over header text, fuzzed; the engine only sees the
//! [`Agreement`] they produce.
//!
//! The choices RFC 7692 leaves to an implementation, and isosock's:
//!
//! - A server takes the first offer it can honour, in the client's order of preference, and
//!   declines (skips) an offer with an unknown, repeated or out-of-range parameter rather than
//!   refusing the handshake; a header that does not parse at all is refused with 400.
//! - A server in [`Compression::NoContextTakeover`] mode answers with both
//!   `server_no_context_takeover` and `client_no_context_takeover` (RFC 7692 lets it add
//!   either), so neither direction keeps DEFLATE state between messages.
//! - A server grants `server_max_window_bits=N` as asked. DEFLATE implementations cannot
//!   compress with a 256-byte window, so after `server_max_window_bits=8` (or a
//!   `client_max_window_bits=8` answer, for a client) that side sends its messages
//!   uncompressed, which the RFC always allows.
//! - `client_max_window_bits` is never lowered by an isosock server: its decompressor takes
//!   any window up to 32 KiB.
//! - A client fails the handshake (`ErrorKind::Handshake`) on an answer it did not offer
//!   (an extension other than permessage-deflate, more than one, or one at all with
//!   compression disabled), an unknown or repeated parameter, a window size outside 8..=15 or
//!   with leading zeros, a value-less `client_max_window_bits`, or, when it offered
//!   `server_no_context_takeover`, an answer without it.

use crate::compression::Compression;

/// One element of an extension list: a name and its parameters (values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Extension {
    pub(crate) name: String,
    pub(crate) params: Vec<(String, Option<String>)>,
}

/// Whether `b` may appear in an HTTP token (RFC 9110 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A cursor over one header value.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn skip_ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > start).then(|| String::from_utf8_lossy(&self.s[start..self.i]).into_owned())
    }

    /// A quoted-string (RFC 9110 5.6.4), unescaped; the opening quote is next.
    fn quoted(&mut self) -> Option<String> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return String::from_utf8(out).ok();
                }
                b'\\' => {
                    let c = *self.s.get(self.i + 1)?;
                    out.push(c);
                    self.i += 2;
                }
                c => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

/// Parses `Sec-WebSocket-Extensions` values (several header lines form one list, RFC 9110
/// 5.3). `Err` names what is malformed. Empty list elements are skipped (RFC 9110 5.6.1); a
/// quoted parameter value must unescape to a token (RFC 6455 9.1).
pub(crate) fn parse<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<Extension>, String> {
    let mut out = Vec::new();
    for value in values {
        let mut c = Cursor { s: value, i: 0 };
        loop {
            c.skip_ws();
            match c.peek() {
                None => break,
                Some(b',') => {
                    c.i += 1;
                    continue;
                }
                Some(_) => {}
            }
            let name = c
                .token()
                .ok_or_else(|| format!("expected an extension name at byte {}", c.i))?;
            let mut params = Vec::new();
            loop {
                c.skip_ws();
                match c.peek() {
                    None => break,
                    Some(b',') => {
                        c.i += 1;
                        break;
                    }
                    Some(b';') => c.i += 1,
                    Some(b) => {
                        return Err(format!("unexpected byte {b:#04x} after extension {name:?}"))
                    }
                }
                c.skip_ws();
                let key = c
                    .token()
                    .ok_or_else(|| format!("expected a parameter name in extension {name:?}"))?;
                c.skip_ws();
                let val = if c.peek() == Some(b'=') {
                    c.i += 1;
                    c.skip_ws();
                    let v = if c.peek() == Some(b'"') {
                        c.quoted()
                            .filter(|v| !v.is_empty() && v.bytes().all(is_tchar))
                            .ok_or_else(|| {
                                format!("parameter {key:?} has a malformed quoted value")
                            })?
                    } else {
                        c.token()
                            .ok_or_else(|| format!("parameter {key:?} has no value after '='"))?
                    };
                    Some(v)
                } else {
                    None
                };
                params.push((key, val));
            }
            out.push(Extension { name, params });
        }
    }
    Ok(out)
}

/// The extension's registered name.
pub(crate) const PERMESSAGE_DEFLATE: &str = "permessage-deflate";

/// What both sides agreed for permessage-deflate, in RFC 7692's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Agreement {
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    /// The window the server compresses with (8..=15).
    pub(crate) server_max_window_bits: u8,
    /// The window the client compresses with (8..=15).
    pub(crate) client_max_window_bits: u8,
}

/// permessage-deflate's parameters as one offer or response states them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in an offer only).
    client_max_window_bits: Option<Option<u8>>,
}

/// A window size: a decimal integer from 8 to 15 without leading zeros (RFC 7692 7.1.2).
fn window_bits(v: &str) -> Option<u8> {
    match v {
        "8" => Some(8),
        "9" => Some(9),
        "10" | "11" | "12" | "13" | "14" | "15" => v.parse().ok(),
        _ => None,
    }
}

/// Reads permessage-deflate's parameters; `Err` names the first that is unknown, repeated or
/// out of range.
fn params(ext: &Extension) -> Result<Params, String> {
    let mut p = Params::default();
    let mut seen = [false; 4];
    for (key, val) in &ext.params {
        let (slot, ok) = match (key.as_str(), val.as_deref()) {
            ("server_no_context_takeover", None) => {
                p.server_no_context_takeover = true;
                (0, true)
            }
            ("client_no_context_takeover", None) => {
                p.client_no_context_takeover = true;
                (1, true)
            }
            ("server_max_window_bits", Some(v)) => {
                p.server_max_window_bits = window_bits(v);
                (2, p.server_max_window_bits.is_some())
            }
            ("client_max_window_bits", None) => {
                p.client_max_window_bits = Some(None);
                (3, true)
            }
            ("client_max_window_bits", Some(v)) => {
                p.client_max_window_bits = Some(window_bits(v));
                (3, window_bits(v).is_some())
            }
            (
                "server_no_context_takeover"
                | "client_no_context_takeover"
                | "server_max_window_bits",
                _,
            ) => return Err(format!("parameter {key} has a wrong value: {val:?}")),
            _ => return Err(format!("unknown parameter {key:?}")),
        };
        if !ok {
            return Err(format!(
                "parameter {key} must be a window size from 8 to 15, not {val:?}"
            ));
        }
        if std::mem::replace(&mut seen[slot], true) {
            return Err(format!("parameter {key} appears twice"));
        }
    }
    Ok(p)
}

/// The server's answer to the client's offers: the agreement and the response header value,
/// or `None` to decline every offer. `Err`: the header does not parse (the handshake is
/// refused with 400, RFC 6455 9.1).
pub(crate) fn server_accept<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    mode: Compression,
) -> Result<Option<(Agreement, String)>, String> {
    if mode == Compression::Disabled {
        return Ok(None);
    }
    let offers = parse(values)?;
    for offer in offers.iter().filter(|e| e.name == PERMESSAGE_DEFLATE) {
        // An offer with a parameter this server does not know, or a wrong value, is declined
        // (RFC 7692 5.1); a later offer may still be taken.
        let Ok(p) = params(offer) else { continue };
        let no_takeover = mode == Compression::NoContextTakeover;
        let a = Agreement {
            server_no_context_takeover: no_takeover || p.server_no_context_takeover,
            client_no_context_takeover: no_takeover || p.client_no_context_takeover,
            server_max_window_bits: p.server_max_window_bits.unwrap_or(15),
            // The client compresses with at most what it offered; isosock's decompressor takes
            // any window, so it never asks for less.
            client_max_window_bits: match p.client_max_window_bits {
                Some(Some(bits)) => bits,
                _ => 15,
            },
        };
        let mut resp = String::from(PERMESSAGE_DEFLATE);
        if a.server_no_context_takeover {
            resp.push_str("; server_no_context_takeover");
        }
        if a.client_no_context_takeover {
            resp.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = p.server_max_window_bits {
            resp.push_str(&format!("; server_max_window_bits={bits}"));
        }
        return Ok(Some((a, resp)));
    }
    Ok(None)
}

/// The offer a client makes in `mode`; `None` when compression is disabled.
pub(crate) fn client_offer(mode: Compression) -> Option<&'static str> {
    match mode {
        Compression::Disabled => None,
        // Both directions without context: no DEFLATE state between messages on either side.
        Compression::NoContextTakeover => Some(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
             client_max_window_bits",
        ),
        Compression::ContextTakeover => Some("permessage-deflate; client_max_window_bits"),
    }
}

/// Checks the server's answer to `client_offer(mode)`: `Ok(None)` if it declined, the
/// agreement if it accepted, `Err` (the handshake fails) if the answer is not one the offer
/// allows.
pub(crate) fn client_check<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    mode: Compression,
) -> Result<Option<Agreement>, String> {
    let exts = parse(values).map_err(|e| format!("malformed Sec-WebSocket-Extensions: {e}"))?;
    let Some(first) = exts.first() else {
        return Ok(None);
    };
    if mode == Compression::Disabled || first.name != PERMESSAGE_DEFLATE {
        return Err(format!(
            "the server selected extension {:?}, which was not offered",
            first.name
        ));
    }
    if exts.len() > 1 {
        return Err("the server selected more than one extension".to_owned());
    }
    let p = params(first).map_err(|e| format!("the server's permessage-deflate answer: {e}"))?;
    let client_bits = match p.client_max_window_bits {
        None => 15,
        Some(Some(bits)) => bits,
        Some(None) => {
            return Err(
                "the server's permessage-deflate answer has client_max_window_bits without a \
                 value"
                    .to_owned(),
            )
        }
    };
    if mode == Compression::NoContextTakeover && !p.server_no_context_takeover {
        return Err(
            "the server accepted permessage-deflate without server_no_context_takeover, which \
             was offered"
                .to_owned(),
        );
    }
    Ok(Some(Agreement {
        server_no_context_takeover: p.server_no_context_takeover,
        client_no_context_takeover: p.client_no_context_takeover
            || mode == Compression::NoContextTakeover,
        server_max_window_bits: p.server_max_window_bits.unwrap_or(15),
        client_max_window_bits: client_bits,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Result<Vec<Extension>, String> {
        parse([s.as_bytes()])
    }

    #[test]
    fn parses_lists_params_and_quoted_values() {
        let e = one("permessage-deflate; client_max_window_bits, foo;a=\"1\" ;b=x,,").unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].name, "permessage-deflate");
        assert_eq!(
            e[0].params,
            vec![("client_max_window_bits".to_owned(), None)]
        );
        assert_eq!(
            e[1].params,
            vec![
                ("a".to_owned(), Some("1".to_owned())),
                ("b".to_owned(), Some("x".to_owned()))
            ]
        );
        // Two header lines are one list.
        let e = parse([&b"a"[..], &b"b; c"[..]]).unwrap();
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn malformed_headers_are_errors() {
        for bad in [
            ";x",
            "a;",
            "a; =1",
            "a; b=",
            "a; b=\"\"",
            "a; b=\"x y\"",
            "a; b=\"unterminated",
            "a b",
            "a; b=1 2",
            "\u{e9}",
        ] {
            assert!(one(bad).is_err(), "{bad:?} parsed");
        }
    }

    fn accept(offer: &str, mode: Compression) -> Option<(Agreement, String)> {
        server_accept([offer.as_bytes()], mode).unwrap()
    }

    #[test]
    fn server_answers_what_browsers_offer() {
        let (a, resp) = accept(
            "permessage-deflate; client_max_window_bits",
            Compression::ContextTakeover,
        )
        .unwrap();
        assert_eq!(resp, "permessage-deflate");
        assert_eq!(
            a,
            Agreement {
                server_no_context_takeover: false,
                client_no_context_takeover: false,
                server_max_window_bits: 15,
                client_max_window_bits: 15
            }
        );
        let (a, resp) = accept(
            "permessage-deflate; client_max_window_bits",
            Compression::NoContextTakeover,
        )
        .unwrap();
        assert_eq!(
            resp,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        assert!(a.server_no_context_takeover && a.client_no_context_takeover);
        assert!(accept("permessage-deflate", Compression::Disabled).is_none());
    }

    #[test]
    fn server_honours_window_and_takeover_requests() {
        let (a, resp) = accept(
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9; \
             server_no_context_takeover",
            Compression::ContextTakeover,
        )
        .unwrap();
        assert_eq!(
            resp,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10"
        );
        assert_eq!(a.server_max_window_bits, 10);
        assert_eq!(a.client_max_window_bits, 9);
        assert!(a.server_no_context_takeover && !a.client_no_context_takeover);
    }

    #[test]
    fn server_declines_offers_it_cannot_honour_and_picks_a_later_one() {
        for bad in [
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=08",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; mystery",
            "x-webkit-deflate-frame",
        ] {
            assert!(
                accept(bad, Compression::ContextTakeover).is_none(),
                "{bad:?} accepted"
            );
        }
        let (a, _) = accept(
            "permessage-deflate; server_max_window_bits=99, permessage-deflate; \
             server_max_window_bits=12",
            Compression::ContextTakeover,
        )
        .unwrap();
        assert_eq!(a.server_max_window_bits, 12);
        assert!(server_accept(
            [&b"permessage-deflate; ="[..]],
            Compression::ContextTakeover
        )
        .is_err());
    }

    fn check(resp: &str, mode: Compression) -> Result<Option<Agreement>, String> {
        client_check([resp.as_bytes()], mode)
    }

    #[test]
    fn client_accepts_what_it_offered() {
        assert_eq!(check("", Compression::ContextTakeover), Ok(None));
        let a = check(
            "permessage-deflate; client_max_window_bits=9; server_max_window_bits=10",
            Compression::ContextTakeover,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (a.client_max_window_bits, a.server_max_window_bits),
            (9, 10)
        );
        let a = check(
            "permessage-deflate; server_no_context_takeover",
            Compression::NoContextTakeover,
        )
        .unwrap()
        .unwrap();
        assert!(a.client_no_context_takeover && a.server_no_context_takeover);
        // The client's offers parse and a server accepts them.
        for mode in [Compression::NoContextTakeover, Compression::ContextTakeover] {
            let offer = client_offer(mode).unwrap();
            let (_, resp) = accept(offer, mode).unwrap();
            assert!(check(&resp, mode).unwrap().is_some());
        }
        assert_eq!(client_offer(Compression::Disabled), None);
    }

    #[test]
    fn client_refuses_answers_it_did_not_offer() {
        for (resp, mode) in [
            ("permessage-deflate", Compression::Disabled),
            ("x-webkit-deflate-frame", Compression::ContextTakeover),
            (
                "permessage-deflate, permessage-deflate",
                Compression::ContextTakeover,
            ),
            (
                "permessage-deflate; client_max_window_bits",
                Compression::ContextTakeover,
            ),
            (
                "permessage-deflate; server_max_window_bits=16",
                Compression::ContextTakeover,
            ),
            (
                "permessage-deflate; client_max_window_bits=7",
                Compression::ContextTakeover,
            ),
            ("permessage-deflate; foo", Compression::ContextTakeover),
            ("permessage-deflate", Compression::NoContextTakeover),
            ("permessage-deflate; =", Compression::ContextTakeover),
        ] {
            assert!(check(resp, mode).is_err(), "{resp:?} accepted in {mode:?}");
        }
    }
}
