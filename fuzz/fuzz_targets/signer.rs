//! The signed cookie value (`SESSION_USE_SIGNER`): `Signer::unsign` accepts a value only if
//! it is exactly what `Signer::sign` makes of the id it returns, and `sign` then `unsign`
//! gives back any id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use session_core::Signer;

// Input: `secret\nsid\ncookie\nposition`, the position picking the byte to tamper with.
fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let (secret, sid, cookie) = (
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
        parts.next().unwrap_or(""),
    );
    let position: usize = parts
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or(0);
    let signer = Signer::new(secret);

    // Any cookie, as sent by a client.
    check(&signer, cookie);

    // Round trip: the id comes back whole, whatever it contains (dots included).
    let signed = signer.sign(sid);
    assert_eq!(signer.unsign(&signed), Some(sid));
    check(&signer, &signed);

    // Tampered: one ASCII byte changed (so the text stays UTF-8), or cut short.
    let mut bytes = signed.clone().into_bytes();
    let at = position % bytes.len();
    if bytes[at].is_ascii() {
        bytes[at] ^= 1;
        let tampered = String::from_utf8(bytes).expect("an ASCII byte swapped for another");
        assert_eq!(signer.unsign(&tampered), None, "one byte changed at {at}");
        check(&signer, &tampered);
    }
    if signed.is_char_boundary(at) {
        assert_eq!(signer.unsign(&signed[..at]), None, "cut at {at}");
    }
});

/// The invariant of `unsign`: whatever it accepts is the signature of the id it returns
/// (trailing `=` padding aside), and that id is the start of the value.
fn check(signer: &Signer, cookie: &str) {
    if let Some(sid) = signer.unsign(cookie) {
        assert!(cookie.starts_with(sid));
        assert_eq!(cookie.trim_end_matches('='), signer.sign(sid));
    }
}
