//! `wss://` against a local rustls server whose self-signed certificate is generated at test
//! time: a custom `ClientConfig` trusts it; the default configuration refuses it.

use std::sync::Arc;

use isosock::{accept, dial, AcceptOptions, DialOptions, ErrorKind, Message, StatusCode};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;

use crate::util::bounded;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Starts a TLS echo server for `names`; returns its port and the certificate to trust.
pub async fn tls_echo_server(names: &[&str]) -> (u16, CertificateDer<'static>) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let ck = rcgen::generate_simple_self_signed(names).expect("self-signed certificate");
    let cert = ck.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(conn) = accept(tls, &AcceptOptions::new()).await {
                    let _ = crate::echo_server::echo(&conn).await;
                }
            });
        }
    });
    (port, cert)
}

pub fn trusting(cert: CertificateDer<'static>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).expect("add root");
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

#[tokio::test]
async fn wss_with_custom_client_config() {
    bounded(async {
        let (port, cert) = tls_echo_server(&["localhost"]).await;
        let opts = DialOptions::new().tls_config(trusting(cert));
        let (conn, _) = dial(&format!("wss://localhost:{port}/"), &opts)
            .await
            .expect("wss dial");
        conn.write("over TLS").await.expect("write");
        assert_eq!(conn.read().await.expect("read"), Message::text("over TLS"));
        conn.close(StatusCode::NORMAL_CLOSURE, "")
            .await
            .expect("close");
    })
    .await;
}

#[cfg(any(feature = "webpki-roots", feature = "native-roots"))]
#[tokio::test]
async fn wss_self_signed_refused_by_default() {
    bounded(async {
        let (port, _) = tls_echo_server(&["localhost"]).await;
        let err = dial(&format!("wss://localhost:{port}/"), &DialOptions::new())
            .await
            .expect_err("untrusted certificate");
        assert_eq!(err.kind(), ErrorKind::Connect, "{err:?}");
        assert!(err.to_string().contains("TLS"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn wss_wrong_host_refused() {
    bounded(async {
        let (port, cert) = tls_echo_server(&["other.example"]).await;
        let opts = DialOptions::new().tls_config(trusting(cert));
        let err = dial(&format!("wss://localhost:{port}/"), &opts)
            .await
            .expect_err("certificate for another host");
        assert_eq!(err.kind(), ErrorKind::Connect, "{err:?}");
    })
    .await;
}

/// Without a root-certificate feature and without `tls_config`, `wss://` fails with a clear
/// message instead of a rustls panic.
#[cfg(not(any(feature = "webpki-roots", feature = "native-roots")))]
#[tokio::test]
async fn wss_without_roots_explains_itself() {
    bounded(async {
        let (port, _) = tls_echo_server(&["localhost"]).await;
        let err = dial(&format!("wss://localhost:{port}/"), &DialOptions::new())
            .await
            .expect_err("no roots");
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err:?}");
        assert!(err.to_string().contains("webpki-roots"), "{err}");
    })
    .await;
}
