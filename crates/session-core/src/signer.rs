//! The cookie signer of `SESSION_USE_SIGNER`, byte-compatible with Flask-Session's
//! itsdangerous `Signer(secret, salt="flask-session", key_derivation="hmac")`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

const SALT: &[u8] = b"flask-session";

/// Signs session ids as `sid.signature` and verifies them in constant time.
#[derive(Clone)]
pub struct Signer {
    derived_key: [u8; 20],
}

impl Signer {
    /// A signer for `secret_key` (Flask's `SECRET_KEY`).
    pub fn new(secret_key: &str) -> Signer {
        // itsdangerous "hmac" key derivation: HMAC(secret, salt).
        let mut mac = HmacSha1::new_from_slice(secret_key.as_bytes()).expect("HMAC takes any key");
        mac.update(SALT);
        Signer {
            derived_key: mac.finalize().into_bytes().into(),
        }
    }

    fn mac(&self) -> HmacSha1 {
        HmacSha1::new_from_slice(&self.derived_key).expect("HMAC takes any key")
    }

    /// The cookie value for `sid`: `sid + "." + base64url(HMAC-SHA1(derived key, sid))`.
    pub fn sign(&self, sid: &str) -> String {
        let mut mac = self.mac();
        mac.update(sid.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{sid}.{signature}")
    }

    /// The sid inside a signed cookie value, or `None` when the signature is missing or wrong.
    pub fn unsign<'a>(&self, value: &'a str) -> Option<&'a str> {
        let (sid, signature) = value.rsplit_once('.')?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature.trim_end_matches('='))
            .ok()?;
        let mut mac = self.mac();
        mac.update(sid.as_bytes());
        mac.verify_slice(&signature).ok()?;
        Some(sid)
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
}
