//! Task tokens (`$$.Task.Token`) that cannot be forged.
//!
//! A token is its attempt's idempotency token (`<execution ARN>/<state>/<event>/<attempt>`),
//! hex-encoded so that it names its execution, then `.` and a tag: the first 16 bytes of
//! HMAC-SHA256 of that text under a key made with the store (kept in it, so tokens stay the same
//! across a resume). Whoever can guess an ARN can write the first part; only the store's owner
//! can write the tag. A callback's token is matched whole against the token the task waits for,
//! so a wrong tag matches no task.

use sha2::{Digest, Sha256};

/// A key for task tokens: 32 random bytes.
pub type TokenKey = [u8; 32];

/// The token of the attempt named `idempotency` under `key`.
pub(crate) fn task_token(key: &TokenKey, idempotency: &str) -> String {
    let mut token = hex(idempotency.as_bytes());
    token.push('.');
    token.push_str(&hex(&hmac_sha256(key, idempotency.as_bytes())[..16]));
    token
}

/// A new random key (from the operating system's generator).
pub fn random_key() -> TokenKey {
    use std::io::Read;
    let mut key = [0u8; 32];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut key));
    if read.is_err() {
        // No /dev/urandom: std's per-process random hasher seeds, mixed with the time.
        use std::hash::{BuildHasher, Hasher};
        for (i, chunk) in key.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_usize(i);
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            chunk.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    key
}

/// The key of executions that have no store: made once per process (their tokens are only
/// answered in it).
pub(crate) fn process_key() -> TokenKey {
    static KEY: std::sync::OnceLock<TokenKey> = std::sync::OnceLock::new();
    *KEY.get_or_init(random_key)
}

/// A UUID-shaped name (8-4-4-4-12 hex digits, version 4 and variant bits set) worked out from
/// `seed`: the same seed, the same name, as a resumed execution needs (a Map Run's id).
pub(crate) fn uuid_from(seed: &[u8]) -> String {
    let mut b: [u8; 16] = Sha256::digest(seed)[..16]
        .try_into()
        .expect("a SHA-256 digest has 16 bytes and more");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// HMAC-SHA256 (RFC 2104) of `message` under `key` (32 bytes: shorter than SHA-256's block, so
/// used as it is, padded with zeros).
fn hmac_sha256(key: &TokenKey, message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(key);
    let inner_key: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let outer_key: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&inner_key)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&outer_key)
        .chain_update(inner)
        .finalize()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_is_rfc_4231s() {
        // RFC 4231, test case 2 has a 4-byte key; this one (case 1's data under a 32-byte key
        // of 0x0b) was computed with Python's hmac module.
        let key = [0x0bu8; 32];
        let tag = hmac_sha256(&key, b"Hi There");
        assert_eq!(
            hex(&tag),
            "198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"
        );
    }

    #[test]
    fn tokens_name_their_attempt_and_differ_by_key() {
        let names = "arn:aws:states:us-east-1:123456789012:execution:m:e/Wait/5/0";
        let (a, b) = (random_key(), random_key());
        assert_ne!(a, b);
        let token = task_token(&a, names);
        assert_eq!(token, task_token(&a, names), "stable under one key");
        assert_ne!(token, task_token(&b, names));
        assert_eq!(crate::token_names(&token).as_deref(), Some(names));
    }
}
