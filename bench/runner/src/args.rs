//! A minimal `--name value` parser: the runner passes flags between its own processes and
//! needs nothing more.

use std::collections::HashMap;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context as _};

/// Parsed flags: `--name value` pairs and bare `--switch`es.
pub struct Args {
    values: HashMap<String, String>,
    switches: Vec<String>,
}

impl Args {
    /// Parses `args`; `switches` names the flags that take no value.
    pub fn parse(args: &[String], switches: &[&str]) -> anyhow::Result<Args> {
        let mut values = HashMap::new();
        let mut found = Vec::new();
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let Some(name) = arg.strip_prefix("--") else {
                bail!("unexpected argument {arg:?} (see --help)");
            };
            if switches.contains(&name) {
                found.push(name.to_owned());
                continue;
            }
            let value = iter
                .next()
                .ok_or_else(|| anyhow!("--{name} needs a value"))?;
            values.insert(name.to_owned(), value.clone());
        }
        Ok(Args {
            values,
            switches: found,
        })
    }

    /// The value of `--name` parsed as `T`, or `default` when absent.
    pub fn get_or<T: FromStr>(&self, name: &str, default: T) -> anyhow::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.values.get(name) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|error| anyhow!("invalid --{name} {value:?}: {error}")),
        }
    }

    /// The value of a mandatory `--name`, parsed as `T`.
    pub fn required<T: FromStr>(&self, name: &str) -> anyhow::Result<T>
    where
        T::Err: std::fmt::Display,
    {
        let value = self
            .values
            .get(name)
            .with_context(|| format!("--{name} is required"))?;
        value
            .parse()
            .map_err(|error| anyhow!("invalid --{name} {value:?}: {error}"))
    }

    /// The raw value of `--name`, if given.
    pub fn string(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether the switch `--name` was given.
    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }
}
