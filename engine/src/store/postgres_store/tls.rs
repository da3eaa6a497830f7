//! TLS to PostgreSQL, as libpq's `sslmode` and `sslrootcert` say it (in the URL's query), with
//! rustls on ring (the AWS SDK's HTTPS uses the same):
//!
//! | `sslmode` | what it does |
//! |---|---|
//! | `disable` | plain TCP |
//! | `prefer` (libpq's default) | TLS if the server offers it, else plain; the certificate is not checked |
//! | `require` | TLS or no connection; the certificate is not checked (as libpq, without `sslrootcert`) |
//! | `verify-ca` | TLS, with a certificate signed by a trusted authority (`sslrootcert`, a PEM file; else the system's) |
//! | `verify-full` | `verify-ca`, and the certificate names the host connected to |
//!
//! As libpq, `require` with an `sslrootcert` verifies as `verify-ca` does. The client library
//! knows only `disable`, `prefer` and `require`: the verifying modes and `sslrootcert` are taken
//! out of the URL here and given to the TLS configuration.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// What a URL asks of TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Tls {
    mode: Mode,
    /// `sslrootcert`: the authorities trusted, instead of the system's.
    root_cert: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Disable,
    /// TLS without checking the certificate; `required`: no plain fallback.
    Encrypt {
        required: bool,
    },
    /// TLS with a certificate from a trusted authority; `hostname`: naming the host.
    Verify {
        hostname: bool,
    },
}

/// `url` without what only this module reads (`sslrootcert`; a verifying `sslmode`, which
/// becomes `require`), and what it asks of TLS. What the URL does not say, `PGSSLMODE` and
/// `PGSSLROOTCERT` say, as libpq reads them.
pub(super) fn split(url: &str) -> Result<(String, Tls), String> {
    split_with(url, |name| std::env::var(name).ok())
}

/// [`split`], with the environment read through `env`.
fn split_with(url: &str, env: impl Fn(&str) -> Option<String>) -> Result<(String, Tls), String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, query),
        None => (url, ""),
    };
    let mut mode = None;
    let mut root_cert = None;
    let mut kept: Vec<&str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "sslrootcert" => root_cert = Some(PathBuf::from(percent_decoded(value)?)),
            "sslmode" => mode = Some(mode_of(value)?),
            _ => kept.push(pair),
        }
    }
    let mut mode = match (mode, env("PGSSLMODE")) {
        (Some(mode), _) => mode,
        (None, Some(value)) => mode_of(&value)?,
        // libpq's default.
        (None, None) => Mode::Encrypt { required: false },
    };
    if root_cert.is_none() {
        root_cert = env("PGSSLROOTCERT").map(PathBuf::from);
    }
    // libpq: `require` with a root certificate verifies the authority.
    if mode == (Mode::Encrypt { required: true }) && root_cert.is_some() {
        mode = Mode::Verify { hostname: false };
    }
    let sslmode = match mode {
        Mode::Disable => "disable",
        Mode::Encrypt { required: false } => "prefer",
        Mode::Encrypt { required: true } | Mode::Verify { .. } => "require",
    };
    kept.push(match sslmode {
        "disable" => "sslmode=disable",
        "prefer" => "sslmode=prefer",
        _ => "sslmode=require",
    });
    Ok((
        format!("{base}?{}", kept.join("&")),
        Tls { mode, root_cert },
    ))
}

fn mode_of(value: &str) -> Result<Mode, String> {
    Ok(match value {
        "disable" => Mode::Disable,
        "prefer" | "allow" => Mode::Encrypt { required: false },
        "require" => Mode::Encrypt { required: true },
        "verify-ca" => Mode::Verify { hostname: false },
        "verify-full" => Mode::Verify { hostname: true },
        other => {
            return Err(format!(
                "sslmode={other}: expected disable, prefer, require, verify-ca or verify-full"
            ));
        }
    })
}

fn percent_decoded(text: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.as_bytes();
    while let Some((&first, tail)) = rest.split_first() {
        if first == b'%' {
            let hex = tail
                .get(..2)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("'{text}': a bad %-escape"))?;
            bytes.push(hex);
            rest = &tail[2..];
        } else {
            bytes.push(first);
            rest = tail;
        }
    }
    String::from_utf8(bytes).map_err(|_| format!("'{text}' is not UTF-8 once decoded"))
}

/// Connects with `config` as `tls` says.
pub(super) fn connect(config: &postgres::Config, tls: &Tls) -> Result<postgres::Client, String> {
    let reason = |e: postgres::Error| match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => crate::source_chain(&e),
    };
    if tls.mode == Mode::Disable {
        return config.connect(postgres::NoTls).map_err(reason);
    }
    let connector = tokio_postgres_rustls::MakeRustlsConnect::new(client_config(tls)?);
    config.connect(connector).map_err(reason)
}

fn client_config(tls: &Tls) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let chain = match tls.mode {
        Mode::Verify { hostname } => {
            let roots = Arc::new(roots(tls.root_cert.as_deref())?);
            let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots,
                provider.clone(),
            )
            .build()
            .map_err(|e| format!("TLS: {e}"))?;
            Some((webpki, hostname))
        }
        _ => None,
    };
    let verifier = Arc::new(Verifier { chain, provider });
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The authorities trusted: those of `file` (PEM), or the system's.
fn roots(file: Option<&std::path::Path>) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certificates: Vec<CertificateDer<'static>> = match file {
        Some(path) => CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect())
            .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?,
        None => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                return Err(format!(
                    "no trusted certificate authorities found on this system ({} errors): give \
                     sslrootcert=FILE",
                    found.errors.len()
                ));
            }
            found.certs
        }
    };
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(match file {
            Some(path) => format!("sslrootcert {}: no certificate in it", path.display()),
            None => "no usable certificate authority on this system".into(),
        });
    }
    Ok(roots)
}

/// What is checked of the server's certificate: its chain, from a trusted authority, and its
/// name (`verify-ca`: the chain only), or (`prefer`, `require`: libpq's behaviour, which a
/// server with a self-signed certificate relies on) neither. The handshake's signatures are
/// checked in every mode: the connection is encrypted with the key the certificate holds.
#[derive(Debug)]
struct Verifier {
    /// The chain's verifier and whether the name counts; `None`: not checked.
    chain: Option<(Arc<rustls::client::WebPkiServerVerifier>, bool)>,
    provider: Arc<rustls::crypto::CryptoProvider>,
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
        let Some((webpki, hostname)) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !hostname => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
        rustls::crypto::verify_tls13_signature(
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
    fn the_modes_the_client_library_does_not_know_are_taken_out_of_the_url() {
        let no_env = |_: &str| None;
        let (url, tls) = split_with("postgres://u@h/db", no_env).unwrap();
        assert_eq!(url, "postgres://u@h/db?sslmode=prefer");
        assert_eq!(tls.mode, Mode::Encrypt { required: false });
        let (url, tls) = split_with(
            "postgres://u@h/db?connect_timeout=3&sslmode=verify-full&sslrootcert=%2Fca.pem",
            no_env,
        )
        .unwrap();
        assert_eq!(url, "postgres://u@h/db?connect_timeout=3&sslmode=require");
        assert_eq!(tls.mode, Mode::Verify { hostname: true });
        assert_eq!(
            tls.root_cert.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        // libpq: `require` with a root certificate checks the authority.
        let (_, tls) =
            split_with("postgres://h/db?sslmode=require&sslrootcert=ca.pem", no_env).unwrap();
        assert_eq!(tls.mode, Mode::Verify { hostname: false });
        let (url, tls) = split_with("postgres://h/db?sslmode=disable", no_env).unwrap();
        assert_eq!(url, "postgres://h/db?sslmode=disable");
        assert_eq!(tls.mode, Mode::Disable);
        let refused = split_with("postgres://h/db?sslmode=sometimes", no_env).unwrap_err();
        assert!(refused.contains("verify-full"), "{refused}");
    }

    #[test]
    fn the_environment_says_what_the_url_does_not() {
        let env = |name: &str| match name {
            "PGSSLMODE" => Some("verify-full".to_owned()),
            "PGSSLROOTCERT" => Some("/etc/ca.pem".to_owned()),
            _ => None,
        };
        let (url, tls) = split_with("postgres://h/db", env).unwrap();
        assert_eq!(url, "postgres://h/db?sslmode=require");
        assert_eq!(tls.mode, Mode::Verify { hostname: true });
        assert_eq!(
            tls.root_cert.as_deref(),
            Some(std::path::Path::new("/etc/ca.pem"))
        );
        // The URL wins.
        let (_, tls) =
            split_with("postgres://h/db?sslmode=disable&sslrootcert=a.pem", env).unwrap();
        assert_eq!(tls.mode, Mode::Disable);
        assert_eq!(
            tls.root_cert.as_deref(),
            Some(std::path::Path::new("a.pem"))
        );
    }
}
