//! Cookie values as session ids: `SessionId::parse` accepts exactly the ids Flask-Session
//! could have issued (so nothing else reaches a store key) and every one of those.
#![no_main]

use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use session_core::{SessionId, MAX_ID_CHARS, MAX_ID_LENGTH};

/// base64url without padding, any trailing bits: `parse` checks the alphabet and the
/// length, not that the last character is the canonical one.
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Some(id) = SessionId::parse(&text) {
        // Lets no one in: only base64url text of a length an encoder produces.
        assert_eq!(id.as_str(), text);
        assert!(
            (2..=MAX_ID_CHARS).contains(&text.len()),
            "length {}",
            text.len()
        );
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{text:?}"
        );
        assert!(
            LENIENT.decode(text.as_bytes()).is_ok() || is_uuid(&text),
            "{text:?} is neither base64url nor a uuid"
        );
        assert_eq!(SessionId::parse(id.as_str()).as_ref(), Some(&id));
        // Ids are credentials: their Debug form shows four characters only.
        assert_eq!(
            format!("{id:?}"),
            format!("SessionId({}…)", &text[..text.len().min(4)])
        );
    }
    // Loses no one: every id `secrets.token_urlsafe(n)` can produce is accepted.
    if !data.is_empty() {
        let issued = URL_SAFE_NO_PAD.encode(&data[..data.len().min(MAX_ID_LENGTH)]);
        let parsed = SessionId::parse(&issued);
        assert_eq!(
            parsed.as_ref().map(SessionId::as_str),
            Some(issued.as_str()),
            "an issued id was refused"
        );
    }
});

fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}
