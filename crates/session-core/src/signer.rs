//! The cookie signer of `SESSION_USE_SIGNER`, byte-compatible with Flask-Session's
//! itsdangerous `Signer(secret, salt="flask-session", key_derivation="hmac")`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

const SALT: &[u8] = b"flask-session";

/// Signs session ids as `sid.signature` and verifies them in constant time.
///
/// With key fallbacks (Flask 3.1's `SECRET_KEY_FALLBACKS`), a value signed with any of the
/// old keys still verifies; new values are always signed with the current key. That is
/// how the key is rotated without logging anyone out: make the old key a fallback, then
/// drop it once every cookie signed with it has expired.
#[derive(Clone)]
pub struct Signer {
    /// The current key first, then the fallbacks in order.
    derived_keys: Vec<[u8; 20]>,
}

impl Signer {
    /// A signer for `secret_key` (Flask's `SECRET_KEY`).
    pub fn new(secret_key: &str) -> Signer {
        Signer::with_fallbacks(secret_key, &[] as &[&str])
    }

    /// A signer for `secret_key` that also accepts values signed with each of `fallbacks`.
    pub fn with_fallbacks(secret_key: &str, fallbacks: &[impl AsRef<str>]) -> Signer {
        let derive = |key: &str| -> [u8; 20] {
            // itsdangerous "hmac" key derivation: HMAC(secret, salt).
            let mut mac = HmacSha1::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
            mac.update(SALT);
            mac.finalize().into_bytes().into()
        };
        let keys = std::iter::once(secret_key).chain(fallbacks.iter().map(AsRef::as_ref));
        Signer {
            derived_keys: keys.map(derive).collect(),
        }
    }

    fn mac(derived_key: &[u8; 20]) -> HmacSha1 {
        HmacSha1::new_from_slice(derived_key).expect("HMAC takes any key")
    }

    /// The cookie value for `sid`: `sid + "." + base64url(HMAC-SHA1(derived key, sid))`,
    /// with the current key.
    pub fn sign(&self, sid: &str) -> String {
        let mut mac = Self::mac(&self.derived_keys[0]);
        mac.update(sid.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{sid}.{signature}")
    }

    /// The sid inside a signed cookie value, or `None` when the signature is missing or
    /// matches neither the current key nor a fallback.
    pub fn unsign<'a>(&self, value: &'a str) -> Option<&'a str> {
        let (sid, signature) = value.rsplit_once('.')?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature.trim_end_matches('='))
            .ok()?;
        self.derived_keys.iter().find_map(|key| {
            let mut mac = Self::mac(key);
            mac.update(sid.as_bytes());
            mac.verify_slice(&signature).ok().map(|()| sid)
        })
    }
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer { .. }")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VECTOR: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.-CU4y57lSf7hbP4joRoay155OlE";

    #[test]
    fn flask_session_test_vector_signs_and_verifies() {
        let signer = Signer::new("test-secret-key");
        let sid = "A".repeat(43);
        assert_eq!(signer.sign(&sid), VECTOR);
        assert_eq!(signer.unsign(VECTOR), Some(sid.as_str()));
    }

    #[test]
    fn tampered_or_unsigned_values_are_rejected() {
        let signer = Signer::new("test-secret-key");
        assert_eq!(signer.unsign(&"A".repeat(43)), None);
        assert_eq!(signer.unsign(&VECTOR.replace("-CU4", "-CU5")), None);
        assert_eq!(signer.unsign(&VECTOR.replacen('A', "B", 1)), None);
        assert_eq!(signer.unsign("AAAA.!!!!"), None);
        assert_eq!(Signer::new("other-key").unsign(VECTOR), None);
    }

    #[test]
    fn fallbacks_verify_and_the_current_key_signs() {
        let rotated = Signer::with_fallbacks("new-key", &["older-key", "test-secret-key"]);
        let sid = "A".repeat(43);
        assert_eq!(rotated.unsign(VECTOR), Some(sid.as_str()));
        let signed = rotated.sign(&sid);
        assert_ne!(signed, VECTOR);
        assert_eq!(Signer::new("new-key").unsign(&signed), Some(sid.as_str()));
        assert_eq!(Signer::new("test-secret-key").unsign(&signed), None);
        assert_eq!(
            Signer::with_fallbacks("new-key", &["unrelated"]).unsign(VECTOR),
            None
        );
    }
}
