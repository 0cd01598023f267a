//! `--web.config.file`: the web configuration most Prometheus exporters share (exporter-toolkit's
//! format, YAML): TLS with optional client certificates, Basic auth against bcrypt hashes, extra
//! response headers and a rate limit. Read once at start, before the agent gives up its
//! privileges (the key is usually readable by root only); a change takes a restart.
//!
//! Where rustls cannot do what Go's TLS does, the file is refused with a line saying so rather
//! than served differently: TLS 1.0 and 1.1, CBC and RSA key-exchange suites, the P-521 curve,
//! the client-auth types that accept certificates without verifying them, and
//! `client_allowed_sans`. `http2` is accepted and ignored (the exporter speaks HTTP/1.1).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{anyhow, bail, Context, Result};
use hyper::header::{HeaderName, HeaderValue};
use rustls::{
    crypto::{ring as provider, CryptoProvider, SupportedKxGroup},
    server::WebPkiClientVerifier,
    RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion,
};
use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tls_server_config: Option<TlsFile>,
    #[serde(default)]
    http_server_config: HttpFile,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
    #[serde(default)]
    rate_limit: Option<RateLimitFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsFile {
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpFile {
    /// Accepted for compatibility: the exporter speaks HTTP/1.1 only.
    #[allow(dead_code)]
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RateLimitFile {
    /// A Go duration ("100ms", "1s"); 0 turns the limit off.
    interval: String,
    burst: u32,
}

/// What the server takes from the file.
#[derive(Default)]
pub struct WebConfig {
    pub tls: Option<Arc<ServerConfig>>,
    /// user -> bcrypt hash; empty: no authentication.
    pub users: BTreeMap<String, String>,
    /// Added to every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Requests of all clients together: (one more every, burst).
    pub rate_limit: Option<(Duration, u32)>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("headers", &self.headers)
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

/// Reads and checks the file at `path`; relative paths in it are relative to its directory.
pub fn load(path: &Path) -> Result<WebConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the web configuration {}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, dir).with_context(|| format!("in the web configuration {}", path.display()))
}

fn parse(text: &str, dir: &Path) -> Result<WebConfig> {
    // An empty file is a valid, empty configuration, as in exporter-toolkit.
    let file: File = if text.trim().is_empty() {
        File::default()
    } else {
        serde_norway::from_str(text)?
    };
    for (user, hash) in &file.basic_auth_users {
        // A plain password here would never match; say so now, not at the first scrape.
        hash.parse::<bcrypt::HashParts>().map_err(|e| {
            anyhow!("basic_auth_users: the password of {user:?} is not a bcrypt hash ({e})")
        })?;
    }
    let rate_limit = match &file.rate_limit {
        None => None,
        Some(limit) => {
            let interval = go_duration(&limit.interval)
                .with_context(|| format!("rate_limit: interval {:?}", limit.interval))?;
            (!interval.is_zero()).then_some((interval, limit.burst))
        }
    };
    let tls = match &file.tls_server_config {
        Some(tls) if tls_wanted(tls) => Some(Arc::new(server_config(tls, dir)?)),
        Some(tls) if tls.client_auth_type.is_some() || has_client_ca(tls) => {
            bail!("tls_server_config: client certificates need cert_file and key_file too")
        }
        _ => None,
    };
    Ok(WebConfig {
        tls,
        users: file.basic_auth_users,
        headers: headers(&file.http_server_config.headers)?,
        rate_limit,
    })
}

fn tls_wanted(tls: &TlsFile) -> bool {
    tls.cert.is_some() || tls.cert_file.is_some() || tls.key.is_some() || tls.key_file.is_some()
}

fn has_client_ca(tls: &TlsFile) -> bool {
    tls.client_ca.is_some() || tls.client_ca_file.is_some()
}

/// The PEM text of `what`, given inline or as a file (not both).
fn pem(
    inline: &Option<String>,
    file: &Option<PathBuf>,
    dir: &Path,
    what: &str,
) -> Result<Option<Vec<u8>>> {
    match (inline, file) {
        (Some(_), Some(_)) => bail!("tls_server_config: give {what} or {what}_file, not both"),
        (Some(text), None) => Ok(Some(text.as_bytes().to_vec())),
        (None, Some(file)) => {
            let file = dir.join(file);
            std::fs::read(&file)
                .with_context(|| format!("reading {what}_file {}", file.display()))
                .map(Some)
        }
        (None, None) => Ok(None),
    }
}

fn server_config(tls: &TlsFile, dir: &Path) -> Result<ServerConfig> {
    if tls.cert.is_none() && tls.cert_file.is_none() {
        bail!("tls_server_config: cert_file (or cert) is missing");
    }
    if tls.key.is_none() && tls.key_file.is_none() {
        bail!("tls_server_config: key_file (or key) is missing");
    }
    // What is chosen is checked before any file is read.
    let versions = versions(tls)?;
    let client_auth = client_auth(tls)?;
    let mut crypto: CryptoProvider = provider::default_provider();
    if let Some(names) = &tls.cipher_suites {
        crypto.cipher_suites = cipher_suites(names)?;
    }
    if let Some(names) = &tls.curve_preferences {
        crypto.kx_groups = curves(names)?;
    }
    let crypto = Arc::new(crypto);
    let cert = pem(&tls.cert, &tls.cert_file, dir, "cert")?
        .ok_or_else(|| anyhow!("tls_server_config: cert_file (or cert) is missing"))?;
    let key = pem(&tls.key, &tls.key_file, dir, "key")?
        .ok_or_else(|| anyhow!("tls_server_config: key_file (or key) is missing"))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("tls_server_config: reading the certificate: {e}"))?;
    if chain.is_empty() {
        bail!("tls_server_config: no certificate in cert_file");
    }
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|e| anyhow!("tls_server_config: reading the key: {e}"))?;

    let builder = ServerConfig::builder_with_provider(crypto.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| {
            anyhow!(
                "tls_server_config: the versions and cipher suites leave nothing to agree on: {e}"
            )
        })?;

    let client_ca = pem(&tls.client_ca, &tls.client_ca_file, dir, "client_ca")?;
    let roots = || -> Result<Arc<RootCertStore>> {
        let pem = client_ca
            .as_ref()
            .ok_or_else(|| anyhow!("tls_server_config: client certificates need client_ca_file"))?;
        let mut store = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| anyhow!("tls_server_config: reading client_ca: {e}"))?;
            store
                .add(cert)
                .map_err(|e| anyhow!("tls_server_config: a client CA: {e}"))?;
        }
        if store.is_empty() {
            bail!("tls_server_config: no certificate in client_ca_file");
        }
        Ok(Arc::new(store))
    };
    let verifier = |optional: bool| -> Result<_> {
        let builder = WebPkiClientVerifier::builder_with_provider(roots()?, crypto.clone());
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder
            .build()
            .map_err(|e| anyhow!("tls_server_config: client certificates: {e}"))
    };
    let builder = match client_auth {
        ClientAuth::None => {
            if client_ca.is_some() {
                bail!(
                    "tls_server_config: client_ca_file is given but client_auth_type is \
                     NoClientCert: say RequireAndVerifyClientCert or VerifyClientCertIfGiven"
                );
            }
            builder.with_no_client_auth()
        }
        ClientAuth::Required => builder.with_client_cert_verifier(verifier(false)?),
        ClientAuth::IfGiven => builder.with_client_cert_verifier(verifier(true)?),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| anyhow!("tls_server_config: the certificate and the key: {e}"))?;
    config.ignore_client_order = tls.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Whether clients show certificates, verified against `client_ca_file`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientAuth {
    None,
    Required,
    IfGiven,
}

fn client_auth(tls: &TlsFile) -> Result<ClientAuth> {
    let auth_type = tls.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let auth = match auth_type {
        "" | "NoClientCert" => ClientAuth::None,
        "RequireAndVerifyClientCert" => ClientAuth::Required,
        "VerifyClientCertIfGiven" => ClientAuth::IfGiven,
        // Go's "ask for (or require) a certificate, verify nothing": exporter-toolkit itself
        // calls them insecure, and they authenticate no one.
        "RequestClientCert" | "RequireAnyClientCert" => bail!(
            "tls_server_config: client_auth_type {auth_type} accepts certificates without \
             verifying them and is not supported: use RequireAndVerifyClientCert with \
             client_ca_file"
        ),
        other => bail!(
            "tls_server_config: unknown client_auth_type {other:?} (NoClientCert, \
             VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
        ),
    };
    if tls.client_allowed_sans.is_some() {
        bail!(
            "tls_server_config: client_allowed_sans is not supported: give the allowed clients \
             certificates of a CA of their own (client_ca_file)"
        );
    }
    Ok(auth)
}

/// `min_version`..=`max_version` (default TLS12..=TLS13).
fn versions(tls: &TlsFile) -> Result<Vec<&'static SupportedProtocolVersion>> {
    let parse = |text: &str, field: &str| -> Result<u8> {
        match text {
            "TLS12" => Ok(12),
            "TLS13" => Ok(13),
            "TLS10" | "TLS11" => bail!(
                "tls_server_config: {field} {text}: TLS 1.0 and 1.1 are not offered (rustls \
                 has neither; both are deprecated, RFC 8996): use TLS12 or TLS13"
            ),
            other => bail!("tls_server_config: unknown {field} {other:?} (TLS12 or TLS13)"),
        }
    };
    let min = parse(tls.min_version.as_deref().unwrap_or("TLS12"), "min_version")?;
    let max = parse(tls.max_version.as_deref().unwrap_or("TLS13"), "max_version")?;
    if min > max {
        bail!("tls_server_config: min_version is above max_version");
    }
    let mut versions = Vec::new();
    if min <= 12 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= 13 {
        versions.push(&rustls::version::TLS13);
    }
    Ok(versions)
}

/// Go's names of the TLS 1.2 suites. As in Go, the list does not concern TLS 1.3, whose suites
/// are always offered (their Go names are accepted and change nothing).
fn cipher_suites(names: &[String]) -> Result<Vec<SupportedCipherSuite>> {
    use provider::cipher_suite as suite;
    let tls12 = [
        (
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        ),
        (
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
            suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        ),
        (
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
            suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ),
    ];
    let mut chosen = vec![
        suite::TLS13_AES_256_GCM_SHA384,
        suite::TLS13_AES_128_GCM_SHA256,
        suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    for name in names {
        // Go also knows the ChaCha20 suites by their older names, without "_SHA256".
        let name = match name.strip_suffix("_CHACHA20_POLY1305") {
            Some(_) => format!("{name}_SHA256"),
            None => name.clone(),
        };
        if let Some((_, found)) = tls12.iter().find(|(known, _)| *known == name) {
            chosen.push(*found);
        } else if !matches!(
            name.as_str(),
            "TLS_AES_128_GCM_SHA256" | "TLS_AES_256_GCM_SHA384" | "TLS_CHACHA20_POLY1305_SHA256"
        ) {
            bail!(
                "tls_server_config: cipher suite {name} is unknown or not offered (no CBC, RSA \
                 key-exchange or 3DES suites)"
            );
        }
    }
    Ok(chosen)
}

fn curves(names: &[String]) -> Result<Vec<&'static dyn SupportedKxGroup>> {
    names
        .iter()
        .map(|name| match name.as_str() {
            "X25519" => Ok(provider::kx_group::X25519),
            "CurveP256" => Ok(provider::kx_group::SECP256R1),
            "CurveP384" => Ok(provider::kx_group::SECP384R1),
            "CurveP521" => bail!("tls_server_config: curve CurveP521 is not offered"),
            other => {
                bail!("tls_server_config: unknown curve {other:?} (X25519, CurveP256 or CurveP384)")
            }
        })
        .collect()
}

/// The headers exporter-toolkit lets a configuration set, with the values it allows.
fn headers(headers: &BTreeMap<String, String>) -> Result<Vec<(HeaderName, HeaderValue)>> {
    const ALLOWED: [(&str, &[&str]); 5] = [
        ("Content-Security-Policy", &[]),
        ("X-Frame-Options", &["deny", "sameorigin"]),
        ("X-Content-Type-Options", &["nosniff"]),
        ("X-XSS-Protection", &[]),
        ("Strict-Transport-Security", &[]),
    ];
    let mut out = Vec::new();
    for (name, value) in headers {
        let Some((_, values)) = ALLOWED.iter().find(|(allowed, _)| allowed == name) else {
            bail!(
                "http_server_config: header {name:?} cannot be set (only {})",
                ALLOWED.map(|(n, _)| n).join(", ")
            );
        };
        if value.is_empty() {
            continue;
        }
        if !values.is_empty() && !values.contains(&value.to_ascii_lowercase().as_str()) {
            bail!("http_server_config: {name} is one of {values:?}, not {value:?}");
        }
        out.push((
            name.parse()
                .map_err(|e| anyhow!("http_server_config: {name}: {e}"))?,
            value
                .parse()
                .map_err(|e| anyhow!("http_server_config: {name}: {e}"))?,
        ));
    }
    Ok(out)
}

/// Go's `time.ParseDuration` for what a rate limit uses: "0", or numbers with units (ns, us,
/// µs, ms, s, m, h), "1m30s".
fn go_duration(text: &str) -> Result<Duration> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        bail!("empty");
    }
    let mut seconds = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| anyhow!("a unit is missing (ms, s, m, h)"))?;
        let value: f64 = rest[..digits]
            .parse()
            .map_err(|_| anyhow!("not a number"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            other => bail!("unknown unit {other:?} (ms, s, m, h)"),
        };
        seconds += value * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(seconds).map_err(|e| anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> String {
        format!("{:#}", parse(text, Path::new("/nonexistent")).unwrap_err())
    }

    #[test]
    fn an_empty_file_is_plain_http_without_auth() {
        let config = parse("", Path::new(".")).unwrap();
        assert!(config.tls.is_none() && config.users.is_empty() && config.headers.is_empty());
        let config = parse("tls_server_config: {}\n", Path::new(".")).unwrap();
        assert!(config.tls.is_none());
    }

    #[test]
    fn users_headers_and_rate_limit() {
        let config = parse(
            "basic_auth_users:\n  prometheus: $2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG\n\
             http_server_config:\n  http2: false\n  headers:\n    X-Content-Type-Options: nosniff\n    X-Frame-Options: deny\n\
             rate_limit:\n  interval: 100ms\n  burst: 5\n",
            Path::new("."),
        )
        .unwrap();
        assert_eq!(config.users.keys().collect::<Vec<_>>(), ["prometheus"]);
        assert_eq!(config.headers.len(), 2);
        assert_eq!(config.rate_limit, Some((Duration::from_millis(100), 5)));
    }

    #[test]
    fn mistakes_are_one_clear_line() {
        for (text, needle) in [
            (
                "basic_auth_users:\n  a: s3cret\n",
                "the password of \"a\" is not a bcrypt hash",
            ),
            (
                "tls_server_config:\n  cert_fil: x\n",
                "unknown field `cert_fil`",
            ),
            ("nonsense: 1\n", "unknown field `nonsense`"),
            (
                "tls_server_config:\n  cert_file: a.crt\n",
                "key_file (or key) is missing",
            ),
            (
                "tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n",
                "client certificates need cert_file and key_file too",
            ),
            (
                "tls_server_config:\n  cert: x\n  cert_file: y\n  key: z\n",
                "give cert or cert_file, not both",
            ),
            (
                "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n",
                "reading cert_file /nonexistent/a.crt",
            ),
            (
                "rate_limit:\n  interval: 5parsecs\n  burst: 1\n",
                "unknown unit",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireAnyClientCert\n",
                "accepts certificates without verifying them",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Sometimes\n",
                "unknown client_auth_type \"Sometimes\"",
            ),
            (
                "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_allowed_sans: [x]\n",
                "client_allowed_sans is not supported",
            ),
            (
                "http_server_config:\n  headers:\n    Server: x\n",
                "header \"Server\" cannot be set",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: always\n",
                "X-Frame-Options is one of",
            ),
        ] {
            let message = error(text);
            assert!(message.contains(needle), "{text:?}: {message}");
        }
    }

    fn tls_file(extra: &str) -> TlsFile {
        serde_norway::from_str(&format!("cert_file: a\nkey_file: b\n{extra}")).unwrap()
    }

    #[test]
    fn tls_versions_are_rustls_ones() {
        let both = versions(&tls_file("")).unwrap();
        assert_eq!(both.len(), 2);
        let only13 = versions(&tls_file("min_version: TLS13\n")).unwrap();
        assert_eq!(only13, [&rustls::version::TLS13]);
        let only12 = versions(&tls_file("max_version: TLS12\n")).unwrap();
        assert_eq!(only12, [&rustls::version::TLS12]);
        for (extra, needle) in [
            ("min_version: TLS10\n", "TLS 1.0 and 1.1 are not offered"),
            ("min_version: TLS11\n", "TLS 1.0 and 1.1 are not offered"),
            ("min_version: TLS14\n", "unknown min_version"),
            (
                "min_version: TLS13\nmax_version: TLS12\n",
                "above max_version",
            ),
        ] {
            let message = versions(&tls_file(extra)).unwrap_err().to_string();
            assert!(message.contains(needle), "{extra:?}: {message}");
        }
    }

    #[test]
    fn go_cipher_suite_and_curve_names() {
        let suites = cipher_suites(&[
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256".into(),
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305".into(),
            "TLS_AES_128_GCM_SHA256".into(),
        ])
        .unwrap();
        // The three TLS 1.3 suites, then the two TLS 1.2 ones named.
        assert_eq!(suites.len(), 5);
        let message = cipher_suites(&["TLS_RSA_WITH_AES_128_CBC_SHA".into()])
            .unwrap_err()
            .to_string();
        assert!(message.contains("not offered"), "{message}");
        assert_eq!(
            curves(&["X25519".into(), "CurveP256".into()])
                .unwrap()
                .len(),
            2
        );
        assert!(curves(&["CurveP521".into()]).is_err());
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(go_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(go_duration("1.5h").unwrap(), Duration::from_secs(5400));
        for bad in ["", "10", "ms", "1d", "-1s"] {
            assert!(go_duration(bad).is_err(), "{bad:?}");
        }
    }
}
