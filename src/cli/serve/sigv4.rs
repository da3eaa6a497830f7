//! Verifying AWS Signature Version 4, so that `serve` can listen beyond loopback: a request is
//! answered only when it is signed with one of the access keys given in `--credentials`, as AWS
//! checks it. Clients need nothing but those keys (the SDKs and the AWS CLI sign every request);
//! the secret never crosses the network.
//!
//! The rules followed (AWS's "Create a signed AWS API request"): the canonical request is the
//! method, the URI path, the query sorted by name, each signed header as `name:value` (names in
//! lower case, values trimmed and inner runs of spaces collapsed), the signed header names, and
//! the hex SHA-256 of the body; the string to sign is `AWS4-HMAC-SHA256`, the `X-Amz-Date`, the
//! credential scope `date/region/service/aws4_request` and the hex SHA-256 of the canonical
//! request; the key is HMAC-SHA256 chained over `"AWS4" + secret`, date, region, service and
//! `aws4_request`. A request dated more than 15 minutes from the server's clock is refused, as
//! AWS refuses it.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// The access keys whose signatures are accepted: access key ID to secret.
pub(crate) struct Credentials(BTreeMap<String, String>);

/// Why a request is refused: the `__type` AWS answers, and its message.
#[derive(Debug, PartialEq)]
pub(crate) struct Refused {
    pub(crate) kind: &'static str,
    pub(crate) message: String,
}

fn refused(kind: &'static str, message: impl Into<String>) -> Refused {
    Refused {
        kind,
        message: message.into(),
    }
}

/// How far a request's date may be from the server's clock.
const MAX_SKEW_SECONDS: i64 = 15 * 60;

impl Credentials {
    /// Reads an AWS shared-credentials file (`aws_access_key_id` and `aws_secret_access_key` in
    /// each `[section]`). The file must be readable by its owner only, as a secret's file is.
    pub(crate) fn load(path: &std::path::Path) -> Result<Credentials, String> {
        let shown = path.display();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| format!("--credentials {shown}: {e}"))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(format!(
                    "--credentials {shown}: the file holds secrets but other users may read it (mode {:o}); chmod 600 it",
                    mode & 0o777
                ));
            }
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("--credentials {shown}: {e}"))?;
        Credentials::parse(&text).map_err(|e| format!("--credentials {shown}: {e}"))
    }

    fn parse(text: &str) -> Result<Credentials, String> {
        let mut keys = BTreeMap::new();
        let (mut id, mut secret) = (None::<String>, None::<String>);
        let mut keep =
            |id: &mut Option<String>, secret: &mut Option<String>| match (id.take(), secret.take())
            {
                (Some(i), Some(s)) => {
                    keys.insert(i, s);
                    Ok(())
                }
                (None, None) => Ok(()),
                _ => Err(
                    "a section has an access key ID without a secret, or a secret without an ID"
                        .to_owned(),
                ),
            };
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                keep(&mut id, &mut secret)?;
            } else if let Some((name, value)) = line.split_once('=') {
                let value = value.trim().to_owned();
                match name.trim() {
                    "aws_access_key_id" => id = Some(value),
                    "aws_secret_access_key" => secret = Some(value),
                    _ => {}
                }
            }
        }
        keep(&mut id, &mut secret)?;
        if keys.is_empty() {
            return Err("no aws_access_key_id and aws_secret_access_key in it".into());
        }
        Ok(Credentials(keys))
    }

    /// Checks the signature of a request whose parts are given; `now` in seconds since the
    /// epoch.
    pub(crate) fn verify(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &hyper::HeaderMap,
        body: &[u8],
        now: i64,
    ) -> Result<(), Refused> {
        let authorization = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                refused(
                    "MissingAuthenticationTokenException",
                    "Missing Authentication Token: sign the request with one of the keys given to --credentials",
                )
            })?;
        let fields = authorization
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or_else(|| {
                refused(
                    "IncompleteSignatureException",
                    "Only AWS4-HMAC-SHA256 signatures are accepted",
                )
            })?;
        let field = |name: &str| {
            fields
                .split(',')
                .filter_map(|f| f.trim().split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v)
                .ok_or_else(|| {
                    refused(
                        "IncompleteSignatureException",
                        format!("The Authorization header has no {name}"),
                    )
                })
        };
        let (credential, signed_headers, signature) = (
            field("Credential")?,
            field("SignedHeaders")?,
            field("Signature")?,
        );
        let (key_id, scope) = credential.split_once('/').ok_or_else(|| {
            refused(
                "IncompleteSignatureException",
                "The Credential has no scope",
            )
        })?;
        let Some(secret) = self.0.get(key_id) else {
            return Err(refused(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        };
        let scope_parts: Vec<&str> = scope.split('/').collect();
        let [date, region, service, "aws4_request"] = scope_parts[..] else {
            return Err(refused(
                "IncompleteSignatureException",
                format!("The credential scope '{scope}' is not date/region/service/aws4_request"),
            ));
        };
        let amz_date = headers
            .get("x-amz-date")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                refused(
                    "IncompleteSignatureException",
                    "The request has no X-Amz-Date header",
                )
            })?;
        let when = parse_amz_date(amz_date).ok_or_else(|| {
            refused(
                "IncompleteSignatureException",
                format!("X-Amz-Date '{amz_date}' is not of the form 20261206T120000Z"),
            )
        })?;
        if !amz_date.starts_with(date) {
            return Err(refused(
                "InvalidSignatureException",
                "The credential scope's date is not the date of X-Amz-Date",
            ));
        }
        if (now - when).abs() > MAX_SKEW_SECONDS {
            return Err(refused(
                "InvalidSignatureException",
                format!(
                    "Signature expired: {amz_date} is more than 15 minutes from the server's time"
                ),
            ));
        }
        let mut canonical_headers = String::new();
        for name in signed_headers.split(';') {
            let values: Vec<&str> = headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            if values.is_empty() {
                return Err(refused(
                    "IncompleteSignatureException",
                    format!("The signed header '{name}' is not in the request"),
                ));
            }
            let value = values
                .iter()
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect::<Vec<_>>()
                .join(",");
            canonical_headers.push_str(&format!("{name}:{value}\n"));
        }
        let payload = match headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
        {
            Some(given) if given != "UNSIGNED-PAYLOAD" => {
                let actual = hex(&Sha256::digest(body));
                if given != actual {
                    return Err(refused(
                        "InvalidSignatureException",
                        "X-Amz-Content-Sha256 is not the hash of the body",
                    ));
                }
                actual
            }
            Some(unsigned) => unsigned.to_owned(),
            None => hex(&Sha256::digest(body)),
        };
        let canonical_request = format!(
            "{method}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{payload}",
            if path.is_empty() { "/" } else { path },
            canonical_query(query)
        );
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex(&Sha256::digest(canonical_request.as_bytes()))
        );
        let mut key = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
        for part in [region, service, "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        let expected = hex(&hmac(&key, string_to_sign.as_bytes()));
        if !same(expected.as_bytes(), signature.as_bytes()) {
            return Err(refused(
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.",
            ));
        }
        Ok(())
    }
}

/// The query as signed: its `name=value` pairs sorted (clients send them encoded already).
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `20261206T120000Z` as seconds since the epoch.
fn parse_amz_date(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        std::str::from_utf8(&b[range]).ok()?.parse().ok()
    };
    let (y, m, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hh, mm, ss) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// HMAC-SHA256 (RFC 2104): 64-byte blocks, the key hashed first when longer.
fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equality that takes as long whatever the first difference (no timing hint at the signature).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex(&hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than a block.
        assert_eq!(
            hex(&hmac(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn dates_are_read_as_utc() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz_date("2015-08-30T12:36"), None);
        assert_eq!(parse_amz_date("20151330T123600Z"), None);
    }

    /// AWS's own example: the signing key and signature from the documentation's worked
    /// example (IAM ListUsers, 20150830T123600Z, us-east-1, secret
    /// wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY).
    #[test]
    fn the_documented_example_verifies_and_a_changed_one_does_not() {
        let credentials =
            Credentials::parse("[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n")
                .unwrap();
        let mut headers = hyper::HeaderMap::new();
        headers.insert(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8"
                .parse()
                .unwrap(),
        );
        headers.insert("host", "iam.amazonaws.com".parse().unwrap());
        headers.insert("x-amz-date", "20150830T123600Z".parse().unwrap());
        headers.insert("authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7".parse().unwrap());
        let now = parse_amz_date("20150830T123600Z").unwrap();
        let verify = |headers: &hyper::HeaderMap, query: &str, now: i64| {
            credentials.verify("GET", "/", query, headers, b"", now)
        };
        assert_eq!(
            verify(&headers, "Action=ListUsers&Version=2010-05-08", now),
            Ok(())
        );
        // Another query, another time, another key, no signature at all.
        assert_eq!(
            verify(&headers, "Action=DeleteUser&Version=2010-05-08", now)
                .unwrap_err()
                .kind,
            "InvalidSignatureException"
        );
        assert!(
            verify(&headers, "Action=ListUsers&Version=2010-05-08", now + 3600)
                .unwrap_err()
                .message
                .starts_with("Signature expired")
        );
        let mut other = headers.clone();
        other.insert("authorization", "AWS4-HMAC-SHA256 Credential=AKIDOTHER/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7".parse().unwrap());
        assert_eq!(
            verify(&other, "Action=ListUsers&Version=2010-05-08", now)
                .unwrap_err()
                .kind,
            "UnrecognizedClientException"
        );
        other.remove("authorization");
        assert_eq!(
            verify(&other, "", now).unwrap_err().kind,
            "MissingAuthenticationTokenException"
        );
    }

    #[test]
    fn a_credentials_file_needs_both_halves_of_a_key() {
        assert!(Credentials::parse("[a]\naws_access_key_id = X\n").is_err());
        assert!(Credentials::parse("# nothing\n").is_err());
        let two = Credentials::parse(
            "[a]\naws_access_key_id=A\naws_secret_access_key=1\n[b]\naws_access_key_id = B\naws_secret_access_key = 2\n",
        )
        .unwrap();
        assert_eq!(two.0.len(), 2);
    }
}
