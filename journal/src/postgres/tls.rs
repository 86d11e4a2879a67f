//! TLS to PostgreSQL, as the URL asks for it, with libpq's meaning of `sslmode`.
//!
//! `tokio-postgres` parses `sslmode=disable|prefer|require` only and leaves certificate
//! checks to the TLS connector; ordo reads `sslmode` and `sslrootcert` itself so a URL
//! means what it means to `psql`:
//!
//! | `sslmode` | TLS | certificate checked |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (the default) | if the server offers it | no |
//! | `require` | always | no; against `sslrootcert` if given (as `verify-ca`) |
//! | `verify-ca` | always | signed by `sslrootcert` (else the Mozilla roots) |
//! | `verify-full` | always | as `verify-ca`, and issued for the host name |
//!
//! The connector is rustls with the `ring` provider (pure Rust: nothing to install).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::Error;

/// A database to connect to: `tokio-postgres`'s configuration and the TLS connector its
/// URL asked for.
#[derive(Clone)]
pub(crate) struct Target {
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
}

impl std::ops::Deref for Target {
    type Target = tokio_postgres::Config;

    fn deref(&self) -> &tokio_postgres::Config {
        &self.config
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target").finish_non_exhaustive()
    }
}

impl Target {
    /// Reads `url` (a `postgres://` URL or a `key=value` string), taking out what
    /// `tokio-postgres` does not know (`sslmode=verify-ca|verify-full`, `sslrootcert`).
    pub(crate) fn parse(url: &str) -> Result<Target, Error> {
        let (rest, mode, root) = take_tls_options(url)?;
        let mut config: tokio_postgres::Config = rest.parse().map_err(|err| {
            let cause = std::error::Error::source(&err)
                .map(|cause| format!(": {cause}"))
                .unwrap_or_default();
            Error::Database(format!("bad PostgreSQL URL: {err}{cause}"))
        })?;
        let mode = match mode {
            Some(mode) => mode,
            None => match config.get_ssl_mode() {
                SslMode::Disable => Mode::Disable,
                SslMode::Require => Mode::Require,
                _ => Mode::Prefer,
            },
        };
        config.ssl_mode(match mode {
            Mode::Disable => SslMode::Disable,
            Mode::Prefer => SslMode::Prefer,
            Mode::Require | Mode::VerifyCa | Mode::VerifyFull => SslMode::Require,
        });
        let tls = MakeRustlsConnect::new(client_config(mode, root.as_ref())?);
        Ok(Target { config, tls })
    }

    /// Connects once.
    pub(crate) async fn connect(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<
                tokio_postgres::Socket,
                <MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<
                    tokio_postgres::Socket,
                >>::Stream,
            >,
        ),
        tokio_postgres::Error,
    > {
        self.config.connect(self.tls.clone()).await
    }
}

/// `sslmode`, as libpq reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// Splits `sslmode` and `sslrootcert` off `url`: what is left for `tokio-postgres`,
/// the mode if given, the root certificate file if given.
fn take_tls_options(url: &str) -> Result<(String, Option<Mode>, Option<PathBuf>), Error> {
    let mut mode = None;
    let mut root = None;
    let mut take = |key: &str, value: &str| -> Result<bool, Error> {
        match key {
            "sslmode" => {
                mode = Some(match value {
                    "disable" | "allow" => Mode::Disable,
                    "prefer" => Mode::Prefer,
                    "require" => Mode::Require,
                    "verify-ca" => Mode::VerifyCa,
                    "verify-full" => Mode::VerifyFull,
                    other => {
                        return Err(Error::Database(format!(
                            "bad PostgreSQL URL: sslmode {other:?} is not one of disable, \
                             prefer, require, verify-ca, verify-full"
                        )))
                    }
                });
                Ok(true)
            }
            "sslrootcert" => {
                root = Some(PathBuf::from(value));
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    if let Some((head, query)) = url.split_once("://").and_then(|_| url.split_once('?')) {
        let mut kept = Vec::new();
        for pair in query.split('&') {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key, &percent_decode(value))? {
                kept.push(pair);
            }
        }
        let rest = if kept.is_empty() {
            head.to_string()
        } else {
            format!("{head}?{}", kept.join("&"))
        };
        return Ok((rest, mode, root));
    }
    if url.contains("://") {
        return Ok((url.to_string(), None, None));
    }
    let mut kept = Vec::new();
    for word in url.split_whitespace() {
        let (key, value) = word.split_once('=').unwrap_or((word, ""));
        if !take(key.trim(), value.trim().trim_matches('\''))? {
            kept.push(word);
        }
    }
    Ok((kept.join(" "), mode, root))
}

/// `%XX` escapes of a URL query value decoded (anything else kept as it is).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&value[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rustls configuration for `mode`.
fn client_config(mode: Mode, root: Option<&PathBuf>) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|err| Error::Database(format!("TLS setup: {err}")))?;
    // libpq's `require` with a root certificate file checks the chain, like verify-ca.
    let check = match (mode, root) {
        (Mode::VerifyFull, _) => Some(true),
        (Mode::VerifyCa, _) | (Mode::Require, Some(_)) => Some(false),
        _ => None,
    };
    let checked = match check {
        None => None,
        Some(check_name) => Some((roots(root)?, check_name)),
    };
    let verifier = match checked {
        None => Verifier {
            provider,
            webpki: None,
            check_name: false,
        },
        Some((roots, check_name)) => Verifier {
            webpki: Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                    .build()
                    .map_err(|err| Error::Database(format!("TLS setup: {err}")))?,
            ),
            provider,
            check_name,
        },
    };
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// The certificates of `sslrootcert`, or the Mozilla roots without one.
fn roots(root: Option<&PathBuf>) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    let Some(path) = root else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let unreadable = |err: &dyn std::fmt::Display| {
        Error::Database(format!("cannot read sslrootcert {}: {err}", path.display()))
    };
    for cert in CertificateDer::pem_file_iter(path).map_err(|err| unreadable(&err))? {
        let cert = cert.map_err(|err| unreadable(&err))?;
        roots.add(cert).map_err(|err| {
            Error::Database(format!(
                "sslrootcert {} holds a certificate rustls refuses: {err}",
                path.display()
            ))
        })?;
    }
    Ok(roots)
}

/// The server's certificate check. Without `webpki` (`prefer`, `require`): encrypted,
/// the certificate not checked (libpq's meaning). With it: the chain (`verify-ca`),
/// and the host name too if `check_name` (`verify-full`).
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
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
            &self.provider.signature_verification_algorithms,
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
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_tls_options_are_taken_out_of_urls_and_strings() {
        let (rest, mode, root) = take_tls_options(
            "postgres://u@h/db?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x",
        )
        .unwrap_or_default();
        assert_eq!(rest, "postgres://u@h/db?application_name=x");
        assert_eq!(mode, Some(Mode::VerifyFull));
        assert_eq!(root, Some(PathBuf::from("/tmp/ca.pem")));
        let (rest, mode, root) =
            take_tls_options("host=h dbname=db sslmode=require sslrootcert=/ca.pem")
                .unwrap_or_default();
        assert_eq!(rest, "host=h dbname=db");
        assert_eq!(mode, Some(Mode::Require));
        assert_eq!(root, Some(PathBuf::from("/ca.pem")));
        let (rest, mode, _) = take_tls_options("postgres://u@h/db").unwrap_or_default();
        assert_eq!((rest.as_str(), mode), ("postgres://u@h/db", None));
        assert!(take_tls_options("postgres://h/db?sslmode=sometimes").is_err());
    }
}
