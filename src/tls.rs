//! TLS with rustls (ring): the public listener's settings (HTTP/2 and
//! HTTP/1.1 offered by ALPN) and the connector towards an `https` upstream,
//! verified against the system's CA certificates unless the operator
//! switched verification off.

use std::sync::Arc;

use anyhow::Context;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::ServerConfig;
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_rustls::TlsConnector;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why `server.tls` cannot be used, under the config key to fix.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct TlsFilesError {
    pub key: &'static str,
    pub message: String,
}

fn refused(key: &'static str, message: String) -> TlsFilesError {
    TlsFilesError { key, message }
}

/// The listener's TLS settings from `server.tls`: the certificate chain and
/// key in PEM. Built once, by the config validation, so `check-config`
/// finds a key that does not fit too.
pub fn server_config(cert: &str, key: &str) -> Result<Arc<ServerConfig>, TlsFilesError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            refused(
                "server.tls.cert",
                format!("cannot read certificates from {cert}: {e}"),
            )
        })?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        refused(
            "server.tls.key",
            format!("cannot read a private key from {key}: {e}"),
        )
    })?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| refused("server.tls", format!("TLS protocol versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            refused(
                "server.tls",
                format!("the key in {key} does not fit the certificate in {cert}: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Whether a TLS connection agreed on HTTP/2.
pub fn is_h2(conn: &rustls::ServerConnection) -> bool {
    conn.alpn_protocol() == Some(b"h2")
}

/// The connector for an `https` upstream, speaking HTTP/1.1.
pub fn upstream_connector(verify: bool) -> anyhow::Result<TlsConnector> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let mut config = if verify {
        let found = rustls_native_certs::load_native_certs();
        let mut roots = rustls::RootCertStore::empty();
        let (added, _ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            anyhow::bail!(
                "upstream.url is https but this system has no CA certificates to verify it \
                 (install the ca-certificates package, or set upstream.tls_verify = false)"
            );
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// `upstream.tls_verify = false`: any certificate is accepted, while the
/// handshake signatures are still checked.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
