//! Native client side: TCP (+ rustls for `wss://`), then tungstenite's client handshake.

use std::sync::{Arc, OnceLock};

use http::header::{HeaderName, HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::Error as WsError;

use super::conn::{Conn, Settings};
use super::io::Transport;
use crate::dial::{DialOptions, Response, WsUrl};
use crate::error::{Error, ErrorKind, Result};

/// Headers the handshake sets itself; a caller may not override them.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-protocol",
    "sec-websocket-accept",
];

pub(crate) async fn dial(url: &WsUrl<'_>, opts: &DialOptions) -> Result<(Conn, Response)> {
    let limit = opts.timeout;
    match tokio::time::timeout(limit, dial_inner(url, opts)).await {
        Ok(r) => r,
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("the connection to {} was not open within {limit:?}", url.full),
        )),
    }
}

async fn dial_inner(url: &WsUrl<'_>, opts: &DialOptions) -> Result<(Conn, Response)> {
    let uri: http::Uri = url
        .full
        .parse()
        .map_err(|e| Error::with_source(ErrorKind::InvalidUrl, format!("{:?}", url.full), e))?;
    let host = uri
        .host()
        .ok_or_else(|| Error::new(ErrorKind::InvalidUrl, format!("{:?}: missing host", url.full)))?
        .to_owned();
    let port = uri.port_u16().unwrap_or(if url.secure { 443 } else { 80 });
    let mut request = uri
        .into_client_request()
        .map_err(|e| Error::with_source(ErrorKind::InvalidUrl, format!("{:?}", url.full), e))?;
    let headers = request.headers_mut();
    if !opts.subprotocols.is_empty() {
        let value = HeaderValue::from_str(&opts.subprotocols.join(", ")).map_err(|e| {
            Error::with_source(ErrorKind::InvalidArgument, "invalid subprotocol", e)
        })?;
        headers.insert(SEC_WEBSOCKET_PROTOCOL, value);
    }
    for (name, value) in &opts.headers {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("header {name:?}: {why}"),
            )
        };
        let hname = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("not a valid name"))?;
        if RESERVED_HEADERS.contains(&hname.as_str()) {
            return Err(bad("set by the WebSocket handshake itself"));
        }
        let hvalue = HeaderValue::from_str(value).map_err(|_| bad("not a valid value"))?;
        headers.append(hname, hvalue);
    }

    // rustls and `TcpStream::connect` want IPv6 literals without brackets.
    let bare_host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    let tcp = TcpStream::connect((bare_host.as_str(), port))
        .await
        .map_err(|e| {
            Error::with_source(
                ErrorKind::Connect,
                format!("could not connect to {host}:{port}"),
                e,
            )
        })?;
    let _ = tcp.set_nodelay(true);
    let transport = if url.secure {
        let config = match &opts.tls_config {
            Some(c) => c.clone(),
            None => default_tls_config()?,
        };
        let name = rustls::pki_types::ServerName::try_from(bare_host.clone()).map_err(|e| {
            Error::with_source(ErrorKind::InvalidUrl, format!("{host:?} is not a TLS server name"), e)
        })?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| {
                Error::with_source(
                    ErrorKind::Connect,
                    format!("TLS handshake with {host}:{port} failed"),
                    e,
                )
            })?;
        Transport::new(tls)
    } else {
        Transport::new(tcp)
    };

    let settings = Settings {
        read_limit: opts.read_limit,
        close_timeout: opts.close_timeout,
    };
    let (ws, resp) =
        tokio_tungstenite::client_async_with_config(request, transport, Some(settings.ws_config()))
            .await
            .map_err(handshake_error)?;
    let subprotocol = resp
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let conn = Conn::new(ws, subprotocol.clone(), settings);
    Ok((
        conn,
        Response {
            subprotocol,
            headers: resp.headers().clone(),
        },
    ))
}

fn handshake_error(e: WsError) -> Error {
    match e {
        WsError::Http(resp) => {
            let body = resp.body().as_deref().unwrap_or(&[]);
            Error::handshake_status(resp.status().as_u16(), body)
        }
        WsError::Protocol(p @ ProtocolError::SecWebSocketSubProtocolError(_)) => {
            Error::with_source(
                ErrorKind::Handshake,
                "the server's subprotocol answer does not match what was offered",
                p,
            )
        }
        WsError::Io(io) => Error::with_source(
            ErrorKind::Connect,
            "the connection failed during the opening handshake",
            io,
        ),
        other => Error::with_source(
            ErrorKind::Handshake,
            "the server's handshake response is not a valid WebSocket upgrade",
            other,
        ),
    }
}

/// The default rustls configuration, built once with the `ring` provider passed explicitly.
fn default_tls_config() -> Result<Arc<rustls::ClientConfig>> {
    static CONFIG: OnceLock<std::result::Result<Arc<rustls::ClientConfig>, String>> =
        OnceLock::new();
    CONFIG
        .get_or_init(build_tls_config)
        .clone()
        .map_err(|why| Error::new(ErrorKind::InvalidArgument, why))
}

fn build_tls_config() -> std::result::Result<Arc<rustls::ClientConfig>, String> {
    #[allow(unused_mut)]
    let mut roots = rustls::RootCertStore::empty();
    #[cfg(feature = "webpki-roots")]
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    #[cfg(feature = "native-roots")]
    {
        let loaded = rustls_native_certs::load_native_certs();
        for cert in loaded.certs {
            let _ = roots.add(cert);
        }
    }
    if roots.is_empty() {
        return Err("no root certificates for wss://: enable the `webpki-roots` or \
                    `native-roots` feature, or pass DialOptions::tls_config"
            .to_owned());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("rustls configuration: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
