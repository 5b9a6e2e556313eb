//! Close status codes (RFC 6455 section 7.4 and the IANA registry) and close-frame validation.

use std::fmt;

use crate::error::{Error, ErrorKind, Result};

/// The longest close reason, in UTF-8 bytes, that fits a close frame (125 − 2 bytes of code).
pub const MAX_CLOSE_REASON: usize = 123;

/// A WebSocket close status code.
///
/// The constants carry the RFC 6455 / IANA names. Any `u16` can be wrapped, but
/// [`Conn::close`](crate::Conn::close) only sends codes that are legal on the wire; see
/// [`StatusCode::is_sendable`].
///
/// # Examples
///
/// ```
/// use isosock::StatusCode;
///
/// assert_eq!(StatusCode::NORMAL_CLOSURE.as_u16(), 1000);
/// assert!(StatusCode::from(4001).is_sendable());
/// assert!(!StatusCode::ABNORMAL_CLOSURE.is_sendable());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(u16);

impl StatusCode {
    /// 1000: the purpose for which the connection was established has been fulfilled.
    pub const NORMAL_CLOSURE: StatusCode = StatusCode(1000);
    /// 1001: an endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: StatusCode = StatusCode(1001);
    /// 1002: the peer violated the protocol.
    pub const PROTOCOL_ERROR: StatusCode = StatusCode(1002);
    /// 1003: the endpoint received a type of data it cannot accept.
    pub const UNSUPPORTED_DATA: StatusCode = StatusCode(1003);
    /// 1005: no status code was present in the close frame (never sent on the wire).
    pub const NO_STATUS_RCVD: StatusCode = StatusCode(1005);
    /// 1006: the connection closed without a close frame (never sent on the wire).
    pub const ABNORMAL_CLOSURE: StatusCode = StatusCode(1006);
    /// 1007: a message's data was not consistent with its type (e.g. invalid UTF-8 text).
    pub const INVALID_FRAME_PAYLOAD_DATA: StatusCode = StatusCode(1007);
    /// 1008: a message violated the endpoint's policy.
    pub const POLICY_VIOLATION: StatusCode = StatusCode(1008);
    /// 1009: a message was too big to process.
    pub const MESSAGE_TOO_BIG: StatusCode = StatusCode(1009);
    /// 1010: the client expected the server to negotiate an extension.
    pub const MANDATORY_EXTENSION: StatusCode = StatusCode(1010);
    /// 1011: the server met an unexpected condition.
    pub const INTERNAL_ERROR: StatusCode = StatusCode(1011);
    /// 1012: the service is restarting.
    pub const SERVICE_RESTART: StatusCode = StatusCode(1012);
    /// 1013: try again later (temporary overload).
    pub const TRY_AGAIN_LATER: StatusCode = StatusCode(1013);
    /// 1014: the gateway received an invalid response from upstream.
    pub const BAD_GATEWAY: StatusCode = StatusCode(1014);
    /// 1015: the TLS handshake failed (never sent on the wire).
    pub const TLS_HANDSHAKE: StatusCode = StatusCode(1015);

    /// Returns the numeric code.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Returns `true` if an endpoint may put this code in a close frame: 1000–1003, 1007–1014
    /// and the application/library ranges 3000–4999.
    pub const fn is_sendable(self) -> bool {
        matches!(self.0, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }

    /// Returns `true` if a browser script may close with this code: only 1000 and 3000–4999.
    ///
    /// The browser backend sends the other [sendable](Self::is_sendable) codes as 1000 with
    /// the same reason, because the browser's `WebSocket.close()` throws for them.
    pub const fn is_browser_allowed(self) -> bool {
        matches!(self.0, 1000 | 3000..=4999)
    }
}

impl From<u16> for StatusCode {
    fn from(code: u16) -> Self {
        StatusCode(code)
    }
}

impl From<StatusCode> for u16 {
    fn from(code: StatusCode) -> Self {
        code.0
    }
}

impl fmt::Debug for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StatusCode({})", self.0)
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A close frame's contents: the status code and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code; [`StatusCode::NO_STATUS_RCVD`] when the frame carried none.
    pub code: StatusCode,
    /// The reason, at most [`MAX_CLOSE_REASON`] bytes of UTF-8, often empty.
    pub reason: String,
}

impl fmt::Display for CloseFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason.is_empty() {
            write!(f, "status {}", self.code)
        } else {
            write!(f, "status {}: {:?}", self.code, self.reason)
        }
    }
}

/// Checks a close code and reason an application wants to send, on both targets alike.
pub(crate) fn validate_close(code: StatusCode, reason: &str) -> Result<()> {
    if !code.is_sendable() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "close code {code} may not be sent: use 1000-1003, 1007-1014 or 3000-4999 \
                 (1000 or 3000-4999 to behave the same in browsers)"
            ),
        ));
    }
    if reason.len() > MAX_CLOSE_REASON {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "close reason is {} bytes of UTF-8; a close frame holds at most {MAX_CLOSE_REASON}",
                reason.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sendable_codes_match_rfc_6455() {
        for code in [1000, 1001, 1002, 1003, 1007, 1011, 1014, 3000, 4999] {
            assert!(StatusCode(code).is_sendable(), "{code}");
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
            assert!(!StatusCode(code).is_sendable(), "{code}");
        }
    }

    #[test]
    fn validate_rejects_long_reason_and_reserved_code() {
        assert!(validate_close(StatusCode::NORMAL_CLOSURE, &"a".repeat(123)).is_ok());
        let e = validate_close(StatusCode::NORMAL_CLOSURE, &"a".repeat(124)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        // 62 two-byte characters are 124 bytes although only 62 chars.
        assert!(validate_close(StatusCode::NORMAL_CLOSURE, &"é".repeat(62)).is_err());
        let e = validate_close(StatusCode::ABNORMAL_CLOSURE, "").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    }
}
