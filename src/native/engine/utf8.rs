//! The text of a message that arrives in pieces: each piece is checked for UTF-8 once, as it
//! arrives, and its characters move into the message's `String`, so a finished message needs
//! no second pass. A character split between two pieces is carried over (at most 3 bytes).

/// An incremental UTF-8 decoder: a sequence that can never become valid is reported as soon
/// as its offending byte is fed (RFC 6455 8.1: fail fast).
#[derive(Debug, Default)]
pub(super) struct Utf8Text {
    /// The characters fed so far.
    text: String,
    /// The start of a character split between two pieces.
    pending: [u8; 4],
    pending_len: usize,
}

impl Utf8Text {
    /// Feeds the next bytes of the text; `false` if the text is invalid already.
    pub(super) fn feed(&mut self, mut data: &[u8]) -> bool {
        if self.pending_len > 0 {
            let width = match self.pending[0] {
                0xF0.. => 4,
                0xE0.. => 3,
                _ => 2,
            };
            let take = (width - self.pending_len).min(data.len());
            let end = self.pending_len + take;
            self.pending[self.pending_len..end].copy_from_slice(&data[..take]);
            data = &data[take..];
            match std::str::from_utf8(&self.pending[..end]) {
                Ok(c) => {
                    self.text.push_str(c);
                    self.pending_len = 0;
                }
                // Still a valid start of a character: `data` is used up.
                Err(e) if e.error_len().is_none() => {
                    self.pending_len = end;
                    return true;
                }
                Err(_) => return false,
            }
        }
        self.text.reserve(data.len());
        let end = data.as_ptr_range().end;
        for chunk in data.utf8_chunks() {
            self.text.push_str(chunk.valid());
            let bad = chunk.invalid();
            if bad.is_empty() {
                continue;
            }
            // Only the piece's last bytes may be a character still to be completed.
            let incomplete = bad.as_ptr_range().end == end
                && std::str::from_utf8(bad).is_err_and(|e| e.error_len().is_none());
            if !incomplete {
                return false;
            }
            self.pending[..bad.len()].copy_from_slice(bad);
            self.pending_len = bad.len();
        }
        true
    }

    /// Makes room for `extra` more bytes, growing geometrically but never past `limit` bytes
    /// of capacity when the text fits in it (so a read limit bounds the allocation too).
    pub(super) fn reserve_within(&mut self, extra: usize, limit: usize) {
        // A split character's bytes move into the text with the next piece.
        let (len, cap) = (self.len(), self.text.capacity());
        if let Some(more) = growth_within(len, cap, extra, limit) {
            self.text.reserve_exact(more);
        }
    }

    /// Bytes fed so far (a split character's included).
    pub(super) fn len(&self) -> usize {
        self.text.len() + self.pending_len
    }

    /// The whole text, if it ends on a character boundary; either way the decoder is empty
    /// again (and holds no memory) afterwards.
    pub(super) fn take(&mut self) -> Option<String> {
        let complete = self.pending_len == 0;
        self.pending_len = 0;
        let text = std::mem::take(&mut self.text);
        complete.then_some(text)
    }
}

/// How much to reserve (exactly) on a buffer of `len` bytes and capacity `cap` so that
/// `extra` more fit: `None` if they already do; otherwise double the capacity, but not past
/// `limit`, and never less than needed.
pub(super) fn growth_within(len: usize, cap: usize, extra: usize, limit: usize) -> Option<usize> {
    let need = len.saturating_add(extra);
    if need <= cap {
        return None;
    }
    let target = cap.saturating_mul(2).min(limit).max(need);
    Some(target - len)
}

#[cfg(test)]
mod tests {
    use super::Utf8Text;

    /// The shortest prefix of `text` that no continuation can make valid UTF-8, if any.
    fn first_bad_prefix(text: &[u8]) -> Option<usize> {
        (1..=text.len())
            .find(|&n| std::str::from_utf8(&text[..n]).is_err_and(|e| e.error_len().is_some()))
    }

    #[test]
    fn fails_at_the_first_impossible_byte_and_keeps_the_text_whatever_the_pieces() {
        let samples: [&[u8]; 13] = [
            "plain ascii".as_bytes(),
            "h\u{e9}llo \u{20ac} \u{1f600}".as_bytes(),
            b"\xF4\x8F\xBF\xBF", // U+10FFFF, the last code point
            b"\xF4\x90\x80\x80", // past U+10FFFF
            b"\xED\xA0\x80",     // a UTF-16 surrogate
            b"\xC0\xAF",         // an overlong '/'
            b"ok \xE2\x82",      // ends inside a character
            b"\xE2\x82\xAC\x80", // a stray continuation byte
            b"abc\xFFdef",
            b"\xF0\x9F\x98",                             // truncated emoji
            b"\xC3\x28",                                 // bad second byte
            b"\xE2\x82\xAC\xE2\x82\xAC\xF0\x9F\x98\x80", // back-to-back multi-byte characters
            b"",
        ];
        for text in samples {
            let valid = std::str::from_utf8(text).ok();
            let bad = first_bad_prefix(text);
            // Every split into two pieces, and one byte at a time.
            let mut splits: Vec<Vec<&[u8]>> = (0..=text.len())
                .map(|i| vec![&text[..i], &text[i..]])
                .collect();
            splits.push(text.chunks(1).collect());
            for pieces in splits {
                let mut check = Utf8Text::default();
                let mut fed = 0;
                let mut failed_at = None;
                for piece in &pieces {
                    fed += piece.len();
                    if !check.feed(piece) {
                        failed_at = Some(fed);
                        break;
                    }
                    assert_eq!(check.len(), fed, "{text:?} in {pieces:?}");
                }
                let got = if failed_at.is_none() {
                    check.take()
                } else {
                    None
                };
                assert_eq!(got.as_deref(), valid, "{text:?} in {pieces:?}");
                if let Some(bad) = bad {
                    // Caught with the piece that brought the offending byte, not later.
                    let mut end = 0;
                    let due = pieces.iter().find_map(|p| {
                        end += p.len();
                        (end >= bad).then_some(end)
                    });
                    assert_eq!(failed_at, due, "{text:?} in {pieces:?}");
                }
            }
        }
    }

    #[test]
    fn take_leaves_an_empty_decoder_that_holds_no_memory() {
        let mut t = Utf8Text::default();
        assert!(t.feed("abc\u{e9}".as_bytes()));
        assert_eq!(t.take().as_deref(), Some("abc\u{e9}"));
        assert_eq!(t.len(), 0);
        assert_eq!(t.text.capacity(), 0);
        // An unfinished character: no text, and the decoder is reset all the same.
        assert!(t.feed(b"x\xE2\x82"));
        assert_eq!(t.take(), None);
        assert_eq!(t.len(), 0);
        assert!(t.feed(b"y"));
        assert_eq!(t.take().as_deref(), Some("y"));
    }
}
