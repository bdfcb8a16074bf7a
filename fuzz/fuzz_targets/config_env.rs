//! Configuration from environment variables (`SessionConfig::from_lookup`): any values under
//! any of the names it reads give `Ok` or a `ConfigError` naming the option, never a panic,
//! and the secret key's value never shows in an error.
#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use session_core::SessionConfig;

/// The names `from_lookup` asks for, learned by asking it, so options added later are
/// fuzzed without touching this file.
fn names() -> &'static [String] {
    static NAMES: OnceLock<Vec<String>> = OnceLock::new();
    NAMES.get_or_init(|| {
        let asked = RefCell::new(Vec::<String>::new());
        let _ = SessionConfig::from_lookup(|name| {
            asked.borrow_mut().push(name.to_owned());
            None
        });
        let mut names = asked.into_inner();
        names.dedup();
        assert!(!names.is_empty(), "from_lookup reads no variables");
        names
    })
}

// Input: `NAME=value` lines. A name `from_lookup` does not read stands for the one its
// bytes pick, so every line sets some option.
fuzz_target!(|data: &[u8]| {
    let names = names();
    let text = String::from_utf8_lossy(data);
    let environment: HashMap<&str, String> = text
        .split('\n')
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| {
            let name = match names.iter().find(|known| known.as_str() == name) {
                Some(known) => known.as_str(),
                None => {
                    let pick = name
                        .bytes()
                        .fold(0usize, |sum, b| sum.wrapping_add(b.into()));
                    names[pick % names.len()].as_str()
                }
            };
            (name, value.to_owned())
        })
        .collect();
    let result = SessionConfig::from_lookup(|name| environment.get(name).cloned());
    let Err(error) = result else {
        return;
    };
    assert!(
        names.iter().any(|name| name == error.option),
        "the error names {:?}, which is not a variable",
        error.option
    );
    assert!(!error.message.is_empty());

    // The same settings with another secret key of the same shape (letters and digits
    // replaced, everything else kept) must fail the same way: an error that changes with
    // the key's letters is one that shows them.
    if let Some(secret) = environment.get("SECRET_KEY") {
        let other: String = secret
            .chars()
            .map(|c| match c {
                'Z' => 'Y',
                c if c.is_ascii_alphanumeric() => 'Z',
                c => c,
            })
            .collect();
        let mut changed = environment.clone();
        changed.insert("SECRET_KEY", other);
        if let Err(again) = SessionConfig::from_lookup(|name| changed.get(name).cloned()) {
            assert_eq!(
                (error.option, &error.message),
                (again.option, &again.message),
                "the error depends on the secret key's text"
            );
        }
    }
});
