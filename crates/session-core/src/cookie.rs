//! The HTTP side of a session: finding the id in `Cookie` headers, rendering `Set-Cookie`
//! for a saved or deleted session, and merging `Cookie` into `Vary`. Every header value
//! leaving this module is a [`HeaderText`], valid by construction.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cookie::Cookie;

use crate::config::{SameSite, SessionConfig};
use crate::id::SessionId;
use crate::signer::Signer;

/// A header value that every HTTP library accepts as it is: visible ASCII, spaces and
/// horizontal tabs, nothing else (a subset of `http::HeaderValue::from_bytes`'s rule). The
/// adapters turn it into their framework's header value without a failure path.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HeaderText(Cow<'static, str>);

impl HeaderText {
    /// `text` when every character is allowed in a header value, else `None`.
    pub fn new(text: impl Into<String>) -> Option<HeaderText> {
        let text = text.into();
        text.bytes()
            .all(is_header_byte)
            .then_some(HeaderText(Cow::Owned(text)))
    }

    /// The value.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value, to move into a framework's header value without copying it: a static
    /// text (`HeaderValue::from_static`) or an owned one (`HeaderValue::try_from(String)`).
    pub fn into_cow(self) -> Cow<'static, str> {
        self.0
    }
}

impl std::ops::Deref for HeaderText {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for HeaderText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for HeaderText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A Set-Cookie carries the session id, a credential: never print it.
        write!(f, "HeaderText({} bytes)", self.0.len())
    }
}

fn is_header_byte(b: u8) -> bool {
    (0x20..0x7f).contains(&b) || b == b'\t'
}

/// The latest time an HTTP date can name (9999-12-31 23:59:59 UTC): a longer lifetime
/// expires the cookie then, instead of failing to format.
const LAST_HTTP_DATE: Duration = Duration::from_secs(253_402_300_799);

/// The session cookie's rules for one configuration: its name, the signer, and the
/// rendered constant parts of `Set-Cookie`.
pub(crate) struct Cookies {
    name: String,
    signer: Option<Signer>,
    /// `name=`.
    before_value: String,
    /// `; HttpOnly; SameSite=...; Secure; Path=...; Domain=...`, as configured. Everything
    /// the `cookie` crate renders after the value, except `Expires`, which it renders last
    /// and which is the only part that changes between saves. Rendering the whole cookie
    /// per save cost about 6k instructions (a tenth of a session write); filling in the
    /// template costs a few hundred.
    after_value: String,
    /// The complete deletion cookie: the session cookie's attributes, so that browsers
    /// match and remove the cookie they hold (a `__Host-`, `Secure` or `Partitioned` cookie
    /// is only replaced by one with the same attributes), an empty value, `Max-Age=0` and
    /// an expiry in the past.
    deletion: HeaderText,
}

impl Cookies {
    pub(crate) fn new(config: &SessionConfig) -> Cookies {
        let signer = if config.use_signer() {
            config
                .secret_key()
                .map(|key| Signer::with_fallbacks(key, config.secret_key_fallbacks()))
        } else {
            None
        };
        let rendered = session_cookie(config, "").build().to_string();
        // `cookie` renders `name=value` first, then the attributes.
        let split = config.cookie_name().len() + 1;
        let deletion = session_cookie(config, "")
            .max_age(time::Duration::ZERO)
            .expires(time::OffsetDateTime::UNIX_EPOCH)
            .build()
            .to_string();
        Cookies {
            name: config.cookie_name().to_owned(),
            signer,
            before_value: rendered[..split].to_owned(),
            after_value: rendered[split..].to_owned(),
            // The configuration was validated: every part is a legal header value.
            deletion: HeaderText::new(deletion).unwrap_or_default(),
        }
    }

    /// The session id named by the request's `Cookie` headers: the first cookie with the
    /// configured name wins (as in Werkzeug); a value that is not a well-formed id, or not
    /// correctly signed when the signer is on, is no id at all.
    pub(crate) fn find<'a>(
        &self,
        headers: impl IntoIterator<Item = &'a [u8]>,
    ) -> Option<SessionId> {
        let name = self.name.as_bytes();
        let value = headers
            .into_iter()
            .find_map(|header| find_cookie(header, name))?;
        self.parse(value)
    }

    /// The session id in a cookie value.
    pub(crate) fn parse(&self, value: &str) -> Option<SessionId> {
        let id = match &self.signer {
            Some(signer) => signer.unsign(value)?,
            None => value,
        };
        SessionId::parse(id)
    }

    /// `Set-Cookie` for a saved session; permanent sessions carry `Expires = now + ttl`.
    pub(crate) fn set(&self, id: &SessionId, permanent: bool, ttl: Duration) -> HeaderText {
        let signed;
        let value = match &self.signer {
            Some(signer) => {
                signed = signer.sign(id.as_str());
                signed.as_str()
            }
            None => id.as_str(),
        };
        let expires = permanent.then(|| {
            let last = UNIX_EPOCH + LAST_HTTP_DATE;
            // Whole seconds, as the browser sees them.
            let ttl = Duration::from_secs(ttl.as_secs());
            SystemTime::now()
                .checked_add(ttl)
                .map_or(last, |expires| expires.min(last))
        });
        // Ids are base64url (or signed base64url), dates are HTTP dates: always valid.
        HeaderText(Cow::Owned(self.render(value, expires)))
    }

    /// `Set-Cookie` that removes the session cookie from the browser.
    pub(crate) fn delete(&self) -> HeaderText {
        self.deletion.clone()
    }

    fn render(&self, value: &str, expires: Option<SystemTime>) -> String {
        const EXPIRES: &str = "; Expires=";
        const HTTP_DATE_LEN: usize = 29;
        // Exactly the length (an HTTP date is always 29 characters): http's `HeaderValue`
        // takes a `String` without another allocation only when no capacity is spare.
        let mut cookie = String::with_capacity(
            self.before_value.len()
                + value.len()
                + self.after_value.len()
                + expires.map_or(0, |_| EXPIRES.len() + HTTP_DATE_LEN),
        );
        cookie.push_str(&self.before_value);
        cookie.push_str(value);
        cookie.push_str(&self.after_value);
        if let Some(expires) = expires {
            cookie.push_str(EXPIRES);
            push_http_date(&mut cookie, expires);
        }
        cookie
    }
}

/// Appends the HTTP date of `at` (whole seconds). Each thread keeps the last date it
/// formatted: the saves of one second share their `Expires`, and formatting it cost more
/// than the rest of the cookie.
fn push_http_date(out: &mut String, at: SystemTime) {
    use std::fmt::Write as _;
    thread_local! {
        static LAST: std::cell::RefCell<(u64, String)> = const {
            std::cell::RefCell::new((0, String::new()))
        };
    }
    let second = at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    LAST.with_borrow_mut(|(last_second, text)| {
        if *last_second != second || text.is_empty() {
            text.clear();
            let _ = write!(text, "{}", httpdate::HttpDate::from(at));
            *last_second = second;
        }
        out.push_str(text);
    });
}

/// The session cookie with every configured attribute and no expiry.
fn session_cookie<'c>(config: &SessionConfig, value: &'c str) -> cookie::CookieBuilder<'c> {
    let mut cookie = Cookie::build((config.cookie_name().to_owned(), value))
        .path(config.cookie_path().to_owned())
        .http_only(config.cookie_http_only())
        .secure(config.cookie_secure());
    if let Some(domain) = config.cookie_domain() {
        cookie = cookie.domain(domain.to_owned());
    }
    if let Some(same_site) = config.cookie_same_site() {
        cookie = cookie.same_site(match same_site {
            SameSite::Strict => cookie::SameSite::Strict,
            SameSite::Lax => cookie::SameSite::Lax,
            SameSite::None => cookie::SameSite::None,
        });
    }
    if config.cookie_partitioned() {
        cookie = cookie.partitioned(true);
    }
    cookie
}

/// The value of cookie `name` in one `Cookie` header, quotes removed. The pairs are found
/// with `memchr`: every request's header is searched, and a byte-at-a-time split cost about
/// 10 instructions per byte.
fn find_cookie<'h>(header: &'h [u8], name: &[u8]) -> Option<&'h str> {
    let mut rest = header;
    loop {
        let (pair, next) = match memchr::memchr(b';', rest) {
            Some(end) => (&rest[..end], Some(&rest[end + 1..])),
            None => (rest, None),
        };
        if let Some(value) = pair_value(pair, name) {
            return Some(value);
        }
        rest = next?;
    }
}

/// The value of one `name=value` pair of a `Cookie` header when its name is `name`.
fn pair_value<'h>(pair: &'h [u8], name: &[u8]) -> Option<&'h str> {
    let eq = memchr::memchr(b'=', pair)?;
    if pair[..eq].trim_ascii() != name {
        return None;
    }
    let value = pair[eq + 1..].trim_ascii();
    let value = value
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(value);
    std::str::from_utf8(value).ok()
}

/// The `Vary` value a response needs once it depends on the session: `None` when the
/// handler's `Vary` headers (`existing`) already cover `Cookie` (or `*`), else one value
/// that lists what the handler set, then `Cookie`, to replace them all.
pub(crate) fn vary_with_cookie<'a>(
    existing: impl IntoIterator<Item = &'a [u8]>,
) -> Option<HeaderText> {
    const COOKIE: &str = "Cookie";
    let mut existing = existing.into_iter().peekable();
    let Some(first) = existing.peek() else {
        return Some(HeaderText(Cow::Borrowed(COOKIE)));
    };
    // Exactly the length for the usual single value and `, Cookie`: http's `HeaderValue`
    // takes a `String` without another allocation only when no capacity is spare.
    let mut merged = String::with_capacity(first.len() + 2 + COOKIE.len());
    for value in existing {
        let covered = value.split(|b| *b == b',').any(|token| {
            let token = token.trim_ascii();
            token.eq_ignore_ascii_case(b"cookie") || token == b"*"
        });
        if covered {
            return None;
        }
        // Field names are ASCII tokens; anything else a handler put there cannot be kept in
        // a value every library accepts.
        match std::str::from_utf8(value) {
            Ok(text) if value.iter().all(|&b| is_header_byte(b)) => merged.push_str(text),
            _ => merged.extend(
                value
                    .iter()
                    .copied()
                    .filter(|&b| is_header_byte(b))
                    .map(char::from),
            ),
        }
        merged.push_str(", ");
    }
    merged.push_str(COOKIE);
    Some(HeaderText(Cow::Owned(merged)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The whole cookie as the `cookie` crate renders it: the template must match it byte
    /// for byte.
    fn rendered_by_the_cookie_crate(
        config: &SessionConfig,
        value: &str,
        expires: Option<SystemTime>,
    ) -> String {
        let mut cookie = session_cookie(config, value);
        if let Some(expires) = expires {
            cookie = cookie.expires(time::OffsetDateTime::from(expires));
        }
        cookie.build().to_string()
    }

    fn configs() -> Vec<SessionConfig> {
        vec![
            SessionConfig::default(),
            SessionConfig::builder()
                .cookie_name("sid")
                .cookie_domain("example.com")
                .cookie_path("/app")
                .cookie_http_only(false)
                .cookie_secure(true)
                .cookie_same_site(SameSite::None)
                .cookie_partitioned(true)
                .build()
                .unwrap(),
            SessionConfig::builder()
                .cookie_same_site(SameSite::Strict)
                .build()
                .unwrap(),
            SessionConfig::builder()
                .cookie_same_site(SameSite::Lax)
                .build()
                .unwrap(),
        ]
    }

    #[test]
    fn the_template_renders_what_the_cookie_crate_renders() {
        // Whole seconds, as session cookies carry them; one single-digit day.
        let times = [
            UNIX_EPOCH + Duration::from_secs(1_764_115_200),
            UNIX_EPOCH + Duration::from_secs(1_767_225_599),
        ];
        for config in &configs() {
            let cookies = Cookies::new(config);
            for value in ["abc-DEF_123", "id.signature"] {
                assert_eq!(
                    cookies.render(value, None),
                    rendered_by_the_cookie_crate(config, value, None)
                );
                for expires in times {
                    assert_eq!(
                        cookies.render(value, Some(expires)),
                        rendered_by_the_cookie_crate(config, value, Some(expires))
                    );
                }
            }
        }
    }

    /// http's `HeaderValue` takes a `String` with spare capacity only by allocating a
    /// shared header for it: the texts adapters turn into header values have none.
    #[test]
    fn header_texts_have_no_spare_capacity() {
        fn owned(text: HeaderText) -> String {
            match text.into_cow() {
                Cow::Owned(text) => text,
                Cow::Borrowed(text) => panic!("{text:?} was not built"),
            }
        }
        let id = SessionId::generate(43).unwrap();
        for config in &configs() {
            let cookies = Cookies::new(config);
            for permanent in [true, false] {
                let cookie = owned(cookies.set(&id, permanent, Duration::from_secs(3600)));
                assert_eq!(cookie.capacity(), cookie.len(), "{cookie}");
            }
        }
        let merged = owned(vary_with_cookie([b"Accept".as_slice()]).unwrap());
        assert_eq!((merged.as_str(), merged.capacity()), ("Accept, Cookie", 14));
    }

    #[test]
    fn the_deletion_cookie_keeps_every_attribute() {
        let config = SessionConfig::builder()
            .cookie_name("__Host-sid")
            .cookie_secure(true)
            .cookie_partitioned(true)
            .cookie_same_site(SameSite::None)
            .build()
            .unwrap();
        let deletion = Cookies::new(&config).delete();
        let attributes: Vec<&str> = deletion.split("; ").collect();
        assert_eq!(attributes[0], "__Host-sid=");
        for attribute in [
            "HttpOnly",
            "SameSite=None",
            "Partitioned",
            "Secure",
            "Path=/",
            "Max-Age=0",
            "Expires=Thu, 01 Jan 1970 00:00:00 GMT",
        ] {
            assert!(
                attributes.contains(&attribute),
                "{attribute} missing: {deletion}"
            );
        }
    }

    #[test]
    fn the_remembered_date_changes_with_the_second() {
        let start = UNIX_EPOCH + Duration::from_secs(1_764_115_200);
        let times = [
            UNIX_EPOCH,
            start,
            start + Duration::from_millis(999),
            start + Duration::from_secs(1),
            start,
            start - Duration::from_millis(1),
        ];
        for at in times {
            let mut out = String::from("x");
            push_http_date(&mut out, at);
            assert_eq!(out, format!("x{}", httpdate::fmt_http_date(at)), "{at:?}");
        }
    }

    #[test]
    fn lifetimes_past_year_9999_expire_the_cookie_then() {
        let cookies = Cookies::new(&SessionConfig::default());
        let id = SessionId::generate(32).unwrap();
        let cookie = cookies.set(&id, true, Duration::from_secs(u64::MAX / 2));
        assert!(
            cookie.ends_with("; Expires=Fri, 31 Dec 9999 23:59:59 GMT"),
            "{}",
            cookie.as_str()
        );
    }

    #[test]
    fn cookie_header_parsing() {
        assert_eq!(
            find_cookie(b"a=1; session=abc; b=2", b"session"),
            Some("abc")
        );
        assert_eq!(find_cookie(b"session=\"abc\"", b"session"), Some("abc"));
        assert_eq!(find_cookie(b"sessionx=abc", b"session"), None);
        assert_eq!(find_cookie(b"garbage;;;===", b"session"), None);
        assert_eq!(
            find_cookie(b"session=first; session=second", b"session"),
            Some("first")
        );
        assert_eq!(find_cookie(b"a=1;session=x=y;", b"session"), Some("x=y"));
        assert_eq!(find_cookie(b" session = abc ;", b"session"), Some("abc"));
        assert_eq!(find_cookie(b"session=\xff", b"session"), None);
        assert_eq!(find_cookie(b"", b"session"), None);
        assert_eq!(find_cookie(b"session", b"session"), None);
    }

    /// The split of the `Cookie` header, written the plain way, as the reference.
    fn find_cookie_reference<'h>(header: &'h [u8], name: &[u8]) -> Option<&'h str> {
        header.split(|b| *b == b';').find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|b| *b == b'=')?;
            if pair[..eq].trim_ascii() != name {
                return None;
            }
            let value = pair[eq + 1..].trim_ascii();
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            std::str::from_utf8(value).ok()
        })
    }

    #[test]
    fn cookie_header_parsing_matches_the_plain_split() {
        let pieces: [&[u8]; 10] = [
            b"session", b"=", b";", b" ", b"\"", b"\xff", b"a", b"sess", b"x=1", b"\t",
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..20_000 {
            let header: Vec<u8> = (0..rng.usize(0..12))
                .flat_map(|_| pieces[rng.usize(0..pieces.len())].iter().copied())
                .collect();
            assert_eq!(
                find_cookie(&header, b"session"),
                find_cookie_reference(&header, b"session"),
                "{:?}",
                String::from_utf8_lossy(&header)
            );
        }
    }

    fn vary_after(values: &[&str]) -> Option<String> {
        vary_with_cookie(values.iter().map(|v| v.as_bytes())).map(|value| value.to_string())
    }

    #[test]
    fn vary_is_added_or_merged_once() {
        assert_eq!(vary_after(&[]).as_deref(), Some("Cookie"));
        assert_eq!(
            vary_after(&["Accept-Encoding"]).as_deref(),
            Some("Accept-Encoding, Cookie")
        );
        assert_eq!(
            vary_after(&["Accept-Encoding", "Origin"]).as_deref(),
            Some("Accept-Encoding, Origin, Cookie")
        );
        assert_eq!(vary_after(&["origin, cookie"]), None);
        assert_eq!(vary_after(&["COOKIE"]), None);
        assert_eq!(vary_after(&["*"]), None);
        assert_eq!(vary_after(&["Cookies"]).as_deref(), Some("Cookies, Cookie"));
    }

    #[test]
    fn header_text_is_visible_ascii_space_and_tab() {
        for byte in 0..=127u8 {
            let allowed = HeaderText::new(char::from(byte).to_string()).is_some();
            let expected = byte == b'\t' || (0x20..0x7f).contains(&byte);
            assert_eq!(allowed, expected, "byte {byte:#04x}");
        }
        assert!(HeaderText::new("é").is_none());
        // A handler's Vary with bytes no header may hold cannot smuggle them through.
        let merged = vary_with_cookie([&b"Accept\r\nX-Injected: 1\xff"[..]]).unwrap();
        assert_eq!(merged.as_str(), "AcceptX-Injected: 1, Cookie");
    }
}
