//! The unpickler: a stack machine over an arena of Python values, then one bounded walk
//! that turns the result into a msgpack value.
//!
//! Objects live in an arena and the stack and memo hold indices into it, so shared and
//! memoised objects are shared as in Python (a dict memoised before its items are set sees
//! them), nothing is copied while reading, and the arena grows by at most one object per
//! opcode. Cycles and exponential sharing are caught by the final walk, which stops at
//! [`MAX_DEPTH`] and at an expansion budget proportional to the input's length.

use std::collections::HashMap;

use rmpv::Value;

use super::ext;
use super::py::{Date, DateTime, Delta, Zone};
use super::{PickleError, MAX_DEPTH};

type Id = usize;

/// A Python object the machine built.
#[derive(Debug)]
enum Node {
    None,
    Bool(bool),
    Int(i128),
    /// An int wider than 128 bits: shortest little-endian two's complement.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    List(Vec<Id>),
    Tuple(Vec<Id>),
    Dict(Vec<(Id, Id)>),
    Set(Vec<Id>),
    FrozenSet(Vec<Id>),
    /// A class or function named by GLOBAL / STACK_GLOBAL: only ever called by REDUCE.
    Global(Global),
    DateTime(DateTime),
    Date(Date),
    Delta(Delta),
    Zone(Zone),
}

/// The only callables a session pickle may name. They are never looked up: REDUCE builds
/// their result as data.
#[derive(Clone, Copy, Debug)]
enum Global {
    Set,
    FrozenSet,
    /// `bytes()`: protocol 2's empty bytes.
    Bytes,
    /// `_codecs.encode(text, "latin1")`: protocol 2's non-empty bytes.
    Encode,
    DateTime,
    Date,
    TimeDelta,
    TimeZone,
}

/// Expansion budget: units of one per value plus one per byte of text, per input byte,
/// plus a fixed allowance. Python shares only objects that are one object (a string used
/// as a key in many dicts, a value stored twice), which stays far below this.
const BUDGET_PER_INPUT_BYTE: usize = 16;
const BUDGET_FLOOR: usize = 1 << 20;

mod op {
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const POP: u8 = b'0';
    pub const POP_MARK: u8 = b'1';
    pub const DUP: u8 = b'2';
    pub const BINFLOAT: u8 = b'G';
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const NONE: u8 = b'N';
    pub const REDUCE: u8 = b'R';
    pub const BINUNICODE: u8 = b'X';
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const EMPTY_LIST: u8 = b']';
    pub const APPEND: u8 = b'a';
    pub const APPENDS: u8 = b'e';
    pub const LIST: u8 = b'l';
    pub const GLOBAL: u8 = b'c';
    pub const DICT: u8 = b'd';
    pub const EMPTY_DICT: u8 = b'}';
    pub const SETITEM: u8 = b's';
    pub const SETITEMS: u8 = b'u';
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const TUPLE: u8 = b't';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const PROTO: u8 = 0x80;
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
    pub const LONG4: u8 = 0x8b;
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES8: u8 = 0x8e;
    pub const EMPTY_SET: u8 = 0x8f;
    pub const ADDITEMS: u8 = 0x90;
    pub const FROZENSET: u8 = 0x91;
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const MEMOIZE: u8 = 0x94;
    pub const FRAME: u8 = 0x95;
}

pub(super) fn loads(input: &[u8]) -> Result<Value, PickleError> {
    let mut machine = Machine {
        input,
        pos: 0,
        op_pos: 0,
        nodes: Vec::new(),
        stack: Vec::new(),
        metastack: Vec::new(),
        memo: HashMap::new(),
    };
    let root = machine.run()?;
    let mut budget = input
        .len()
        .saturating_mul(BUDGET_PER_INPUT_BYTE)
        .saturating_add(BUDGET_FLOOR);
    machine.value(root, 0, &mut budget)
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    /// Offset of the opcode being run, for error messages.
    op_pos: usize,
    nodes: Vec<Node>,
    stack: Vec<Id>,
    /// The stacks saved by MARK, as in Python's unpickler.
    metastack: Vec<Vec<Id>>,
    memo: HashMap<u32, Id>,
}

impl<'a> Machine<'a> {
    fn error(&self, message: impl std::fmt::Display) -> PickleError {
        PickleError::at(self.op_pos, message)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let input: &'a [u8] = self.input;
        match input.get(self.pos..).filter(|rest| rest.len() >= n) {
            Some(rest) => {
                self.pos += n;
                Ok(&rest[..n])
            }
            None => Err(self.error("truncated input")),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        let bytes = self.take(N)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A length field: never trusted beyond the bytes actually left.
    fn length(&mut self, raw: u64) -> Result<usize, PickleError> {
        let left = self.input.len() - self.pos;
        match usize::try_from(raw) {
            Ok(n) if n <= left => Ok(n),
            _ => Err(self.error("length runs past the end of the input")),
        }
    }

    fn line(&mut self) -> Result<&'a str, PickleError> {
        let input: &'a [u8] = self.input;
        let rest = &input[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.error("unterminated GLOBAL name"))?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| self.error("GLOBAL name is not UTF-8"))
    }

    fn push(&mut self, node: Node) {
        self.nodes.push(node);
        self.stack.push(self.nodes.len() - 1);
    }

    fn pop(&mut self) -> Result<Id, PickleError> {
        self.stack
            .pop()
            .ok_or_else(|| self.error("stack underflow"))
    }

    fn top(&self) -> Result<Id, PickleError> {
        self.stack
            .last()
            .copied()
            .ok_or_else(|| self.error("stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>, PickleError> {
        let saved = self
            .metastack
            .pop()
            .ok_or_else(|| self.error("no MARK to pop to"))?;
        Ok(std::mem::replace(&mut self.stack, saved))
    }

    fn memo_get(&mut self, index: u32) -> Result<(), PickleError> {
        let id = *self
            .memo
            .get(&index)
            .ok_or_else(|| self.error("memo key not found"))?;
        self.stack.push(id);
        Ok(())
    }

    fn memo_put(&mut self, index: u32) -> Result<(), PickleError> {
        let id = self.top()?;
        self.memo.insert(index, id);
        Ok(())
    }

    fn text(&mut self, n: usize) -> Result<(), PickleError> {
        let bytes = self.take(n)?;
        // Python writes lone surrogates with "surrogatepass"; they are not Rust strings.
        let text = std::str::from_utf8(bytes)
            .map_err(|_| self.error("string is not valid UTF-8 (lone surrogate?)"))?;
        self.push(Node::Str(text.to_owned()));
        Ok(())
    }

    fn bytes(&mut self, n: usize) -> Result<(), PickleError> {
        let bytes = self.take(n)?.to_vec();
        self.push(Node::Bytes(bytes));
        Ok(())
    }

    fn long(&mut self, n: usize) -> Result<(), PickleError> {
        let bytes = self.take(n)?;
        self.push(long_from_le(bytes));
        Ok(())
    }

    fn run(&mut self) -> Result<Id, PickleError> {
        self.op_pos = 0;
        if self.u8()? != op::PROTO {
            return Err(self.error("not a pickle of protocol 2 or later (no PROTO opcode)"));
        }
        let version = self.u8()?;
        if !(2..=5).contains(&version) {
            return Err(self.error(format!("unsupported pickle protocol {version}")));
        }
        loop {
            self.op_pos = self.pos;
            let code = self.u8()?;
            match code {
                op::STOP => {
                    let root = self.pop()?;
                    if !self.stack.is_empty() || !self.metastack.is_empty() {
                        return Err(self.error("values left on the stack at STOP"));
                    }
                    if self.pos != self.input.len() {
                        return Err(self.error("trailing bytes after STOP"));
                    }
                    return Ok(root);
                }
                op::FRAME => {
                    // Frames only group opcodes for buffered reading; their length must
                    // merely fit in the input.
                    let raw = u64::from_le_bytes(self.array()?);
                    self.length(raw)?;
                }
                op::PROTO => return Err(self.error("PROTO in the middle of a pickle")),
                op::MARK => {
                    let stack = std::mem::take(&mut self.stack);
                    self.metastack.push(stack);
                }
                op::POP => {
                    if self.stack.pop().is_none() {
                        self.pop_mark()?;
                    }
                }
                op::POP_MARK => {
                    self.pop_mark()?;
                }
                op::DUP => {
                    let top = self.top()?;
                    self.stack.push(top);
                }
                op::BINPUT => {
                    let index = self.u8()?;
                    self.memo_put(u32::from(index))?;
                }
                op::LONG_BINPUT => {
                    let index = self.u32()?;
                    self.memo_put(index)?;
                }
                op::MEMOIZE => {
                    let index =
                        u32::try_from(self.memo.len()).map_err(|_| self.error("memo too large"))?;
                    self.memo_put(index)?;
                }
                op::BINGET => {
                    let index = self.u8()?;
                    self.memo_get(u32::from(index))?;
                }
                op::LONG_BINGET => {
                    let index = self.u32()?;
                    self.memo_get(index)?;
                }
                op::NONE => self.push(Node::None),
                op::NEWTRUE => self.push(Node::Bool(true)),
                op::NEWFALSE => self.push(Node::Bool(false)),
                op::BININT => {
                    let n = i32::from_le_bytes(self.array()?);
                    self.push(Node::Int(i128::from(n)));
                }
                op::BININT1 => {
                    let n = self.u8()?;
                    self.push(Node::Int(i128::from(n)));
                }
                op::BININT2 => {
                    let n = u16::from_le_bytes(self.array()?);
                    self.push(Node::Int(i128::from(n)));
                }
                op::LONG1 => {
                    let n = usize::from(self.u8()?);
                    self.long(n)?;
                }
                op::LONG4 => {
                    let raw = i32::from_le_bytes(self.array()?);
                    let raw = u64::try_from(raw).map_err(|_| self.error("negative LONG4 size"))?;
                    let n = self.length(raw)?;
                    self.long(n)?;
                }
                op::BINFLOAT => {
                    let f = f64::from_be_bytes(self.array()?);
                    self.push(Node::Float(f));
                }
                op::SHORT_BINUNICODE => {
                    let n = usize::from(self.u8()?);
                    self.text(n)?;
                }
                op::BINUNICODE => {
                    let raw = self.u32()?;
                    let n = self.length(u64::from(raw))?;
                    self.text(n)?;
                }
                op::BINUNICODE8 => {
                    let raw = u64::from_le_bytes(self.array()?);
                    let n = self.length(raw)?;
                    self.text(n)?;
                }
                op::SHORT_BINBYTES => {
                    let n = usize::from(self.u8()?);
                    self.bytes(n)?;
                }
                op::BINBYTES => {
                    let raw = self.u32()?;
                    let n = self.length(u64::from(raw))?;
                    self.bytes(n)?;
                }
                op::BINBYTES8 => {
                    let raw = u64::from_le_bytes(self.array()?);
                    let n = self.length(raw)?;
                    self.bytes(n)?;
                }
                op::EMPTY_LIST => self.push(Node::List(Vec::new())),
                op::EMPTY_TUPLE => self.push(Node::Tuple(Vec::new())),
                op::EMPTY_DICT => self.push(Node::Dict(Vec::new())),
                op::EMPTY_SET => self.push(Node::Set(Vec::new())),
                op::LIST => {
                    let items = self.pop_mark()?;
                    self.push(Node::List(items));
                }
                op::TUPLE => {
                    let items = self.pop_mark()?;
                    self.push(Node::Tuple(items));
                }
                op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                    let n = usize::from(code - op::TUPLE1 + 1);
                    let start = self
                        .stack
                        .len()
                        .checked_sub(n)
                        .ok_or_else(|| self.error("stack underflow"))?;
                    let items = self.stack.split_off(start);
                    self.push(Node::Tuple(items));
                }
                op::FROZENSET => {
                    let items = self.pop_mark()?;
                    self.push(Node::FrozenSet(items));
                }
                op::DICT => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(&items).ok_or_else(|| self.error("odd number of items"))?;
                    self.push(Node::Dict(pairs));
                }
                op::APPEND => {
                    let item = self.pop()?;
                    let list = self.top()?;
                    self.extend(list, &[item], op::APPEND)?;
                }
                op::APPENDS => {
                    let items = self.pop_mark()?;
                    let list = self.top()?;
                    self.extend(list, &items, op::APPENDS)?;
                }
                op::ADDITEMS => {
                    let items = self.pop_mark()?;
                    let set = self.top()?;
                    self.extend(set, &items, op::ADDITEMS)?;
                }
                op::SETITEM => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    let dict = self.top()?;
                    self.extend(dict, &[key, value], op::SETITEM)?;
                }
                op::SETITEMS => {
                    let items = self.pop_mark()?;
                    let dict = self.top()?;
                    self.extend(dict, &items, op::SETITEMS)?;
                }
                op::GLOBAL => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let global = self.global(module, name)?;
                    self.push(Node::Global(global));
                }
                op::STACK_GLOBAL => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Node::Str(module), Node::Str(name)) =
                        (&self.nodes[module], &self.nodes[name])
                    else {
                        return Err(self.error("STACK_GLOBAL names are not strings"));
                    };
                    let global = self.global(module, name)?;
                    self.push(Node::Global(global));
                }
                op::REDUCE => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let Node::Global(global) = self.nodes[callable] else {
                        return Err(self.error("REDUCE of something that is not a known class"));
                    };
                    let Node::Tuple(args) = &self.nodes[args] else {
                        return Err(self.error("REDUCE arguments are not a tuple"));
                    };
                    let node = self
                        .reduce(global, args)
                        .map_err(|message| self.error(message))?;
                    self.push(node);
                }
                other => {
                    return Err(self.error(format!(
                    "unsupported opcode 0x{other:02x} (only the types of a Flask session are read)"
                )))
                }
            }
        }
    }

    /// APPEND(S), ADDITEMS, SETITEM(S): adds `items` to the container `target`.
    fn extend(&mut self, target: Id, items: &[Id], code: u8) -> Result<(), PickleError> {
        match (&mut self.nodes[target], code) {
            (Node::List(list), op::APPEND | op::APPENDS) => list.extend_from_slice(items),
            (Node::Set(set), op::ADDITEMS) => set.extend_from_slice(items),
            (Node::Dict(dict), op::SETITEM | op::SETITEMS) => match pairs(items) {
                Some(new) => dict.extend(new),
                None => return Err(self.error("odd number of items for SETITEMS")),
            },
            _ => return Err(self.error(format!("opcode 0x{code:02x} on the wrong type"))),
        }
        Ok(())
    }

    fn global(&self, module: &str, name: &str) -> Result<Global, PickleError> {
        Ok(match (module, name) {
            // Protocol 2 spells the builtins module as in Python 2.
            ("builtins" | "__builtin__", "set") => Global::Set,
            ("builtins" | "__builtin__", "frozenset") => Global::FrozenSet,
            ("builtins" | "__builtin__", "bytes") => Global::Bytes,
            ("_codecs", "encode") => Global::Encode,
            ("datetime", "datetime") => Global::DateTime,
            ("datetime", "date") => Global::Date,
            ("datetime", "timedelta") => Global::TimeDelta,
            ("datetime", "timezone") => Global::TimeZone,
            _ => {
                return Err(self.error(format!(
                    "refusing the global {}.{} (only the classes of a Flask session are read)",
                    printable(module),
                    printable(name)
                )))
            }
        })
    }

    /// The value a known class builds from `args`, as data.
    fn reduce(&self, global: Global, args: &[Id]) -> Result<Node, String> {
        let arg = |i: usize| args.get(i).map(|&id| &self.nodes[id]);
        let items = |node: Option<&Node>| match node {
            Some(
                Node::List(items) | Node::Tuple(items) | Node::Set(items) | Node::FrozenSet(items),
            ) => Ok(items.clone()),
            _ => Err("set() of something that is not a list"),
        };
        Ok(match (global, args.len()) {
            (Global::Set, 0) => Node::Set(Vec::new()),
            (Global::Set, 1) => Node::Set(items(arg(0))?),
            (Global::FrozenSet, 0) => Node::FrozenSet(Vec::new()),
            (Global::FrozenSet, 1) => Node::FrozenSet(items(arg(0))?),
            (Global::Bytes, 0) => Node::Bytes(Vec::new()),
            (Global::Encode, 2) => match (arg(0), arg(1)) {
                (Some(Node::Str(text)), Some(Node::Str(codec)))
                    if matches!(codec.as_str(), "latin1" | "latin-1") =>
                {
                    Node::Bytes(
                        text.chars()
                            .map(|c| u8::try_from(u32::from(c)))
                            .collect::<Result<_, _>>()
                            .map_err(|_| "latin1 text with a character above U+00FF")?,
                    )
                }
                _ => return Err("_codecs.encode other than protocol 2's bytes".into()),
            },
            (Global::DateTime, 1 | 2) => {
                let zone = match arg(1) {
                    None | Some(Node::None) => None,
                    Some(Node::Zone(zone)) => Some(zone.clone()),
                    Some(_) => return Err("datetime tzinfo is not a datetime.timezone".into()),
                };
                match arg(0) {
                    Some(Node::Bytes(state)) => Node::DateTime(DateTime::from_state(state, zone)?),
                    _ => return Err("datetime state is not bytes".into()),
                }
            }
            (Global::Date, 1) => match arg(0) {
                Some(Node::Bytes(state)) => Node::Date(Date::from_state(state)?),
                _ => return Err("date state is not bytes".into()),
            },
            (Global::TimeDelta, 3) => match (arg(0), arg(1), arg(2)) {
                (Some(Node::Int(days)), Some(Node::Int(seconds)), Some(Node::Int(micros))) => {
                    let small =
                        |n: &i128| i64::try_from(*n).map_err(|_| "timedelta field too large");
                    Node::Delta(Delta::new(small(days)?, small(seconds)?, small(micros)?)?)
                }
                _ => return Err("timedelta arguments are not three ints".into()),
            },
            (Global::TimeZone, 1 | 2) => {
                let name = match arg(1) {
                    None => None,
                    Some(Node::Str(name)) => Some(name.clone()),
                    Some(_) => return Err("timezone name is not a str".into()),
                };
                match arg(0) {
                    Some(Node::Delta(offset)) => Node::Zone(Zone::new(*offset, name)?),
                    _ => return Err("timezone offset is not a timedelta".into()),
                }
            }
            (global, n) => return Err(format!("{global:?} called with {n} arguments")),
        })
    }

    /// The msgpack value of `id`: depth-limited (which also stops cycles) and charged
    /// against `budget`.
    fn value(&self, id: Id, depth: usize, budget: &mut usize) -> Result<Value, PickleError> {
        if depth > MAX_DEPTH {
            return Err(PickleError::new(format!(
                "pickle nests deeper than {MAX_DEPTH} levels (or holds a cycle)"
            )));
        }
        let node = &self.nodes[id];
        charge(budget, 1 + text_len(node))?;
        let list = |items: &[Id], budget: &mut usize| {
            items
                .iter()
                .map(|&item| self.value(item, depth + 1, budget))
                .collect::<Result<Vec<_>, _>>()
        };
        let hashable_list = |items: &[Id], budget: &mut usize| {
            for &item in items {
                self.check_hashable(item, depth + 1, budget)?;
            }
            list(items, budget)
        };
        Ok(match node {
            Node::None => Value::Nil,
            Node::Bool(b) => Value::Boolean(*b),
            Node::Int(n) => int_value(*n),
            Node::BigInt(bytes) => Value::Ext(ext::BIGINT, bytes.clone()),
            Node::Float(f) => Value::F64(*f),
            Node::Str(text) => Value::from(text.as_str()),
            Node::Bytes(bytes) => Value::Binary(bytes.clone()),
            Node::List(items) => Value::Array(list(items, budget)?),
            Node::Tuple(items) => packed(ext::TUPLE, list(items, budget)?, budget)?,
            Node::Set(items) => packed(ext::SET, hashable_list(items, budget)?, budget)?,
            Node::FrozenSet(items) => {
                packed(ext::FROZENSET, hashable_list(items, budget)?, budget)?
            }
            Node::Dict(pairs) => {
                let mut entries = Vec::with_capacity(pairs.len());
                for &(key, value) in pairs {
                    self.check_hashable(key, depth + 1, budget)?;
                    entries.push((
                        self.value(key, depth + 1, budget)?,
                        self.value(value, depth + 1, budget)?,
                    ));
                }
                Value::Map(entries)
            }
            Node::DateTime(dt) => dt.to_value(),
            Node::Date(date) => date.to_value(),
            Node::Delta(delta) => delta.to_value(),
            Node::Zone(zone) => zone.to_value(),
            Node::Global(_) => {
                return Err(PickleError::new(
                    "a class where a value belongs (only instances are read)",
                ))
            }
        })
    }

    /// Python refuses unhashable dict keys and set items; so do we.
    fn check_hashable(&self, id: Id, depth: usize, budget: &mut usize) -> Result<(), PickleError> {
        if depth > MAX_DEPTH {
            return Err(PickleError::new(format!(
                "pickle nests deeper than {MAX_DEPTH} levels (or holds a cycle)"
            )));
        }
        charge(budget, 1)?;
        match &self.nodes[id] {
            Node::List(_) | Node::Dict(_) | Node::Set(_) => Err(PickleError::new(
                "a list, dict or set used as a dict key or set item",
            )),
            Node::Tuple(items) => items
                .iter()
                .try_for_each(|&item| self.check_hashable(item, depth + 1, budget)),
            _ => Ok(()),
        }
    }
}

/// `items` packed as an ext value, the packed bytes charged too: each level of nested
/// tuples or sets re-encodes everything below it, so without the charge a thousand bytes
/// of nested tuples took seconds and hundreds of megabytes (found by the `pickle` target).
fn packed(code: i8, items: Vec<Value>, budget: &mut usize) -> Result<Value, PickleError> {
    let value = ext::pack(code, items);
    if let Value::Ext(_, payload) = &value {
        charge(budget, payload.len())?;
    }
    Ok(value)
}

fn charge(budget: &mut usize, cost: usize) -> Result<(), PickleError> {
    *budget = budget.checked_sub(cost).ok_or_else(|| {
        PickleError::new("pickle expands far beyond its size (shared references repeated)")
    })?;
    Ok(())
}

fn text_len(node: &Node) -> usize {
    match node {
        Node::Str(text) => text.len(),
        Node::Bytes(bytes) | Node::BigInt(bytes) => bytes.len(),
        _ => 0,
    }
}

fn pairs(items: &[Id]) -> Option<Vec<(Id, Id)>> {
    items
        .len()
        .is_multiple_of(2)
        .then(|| items.chunks_exact(2).map(|kv| (kv[0], kv[1])).collect())
}

/// msgpack's int when it fits, this crate's big-int ext otherwise.
fn int_value(n: i128) -> Value {
    if let Ok(unsigned) = u64::try_from(n) {
        Value::from(unsigned)
    } else if let Ok(signed) = i64::try_from(n) {
        Value::from(signed)
    } else {
        Value::Ext(ext::BIGINT, shortest_le(n.to_le_bytes().to_vec()))
    }
}

/// A LONG1/LONG4 payload: little-endian two's complement of any width.
fn long_from_le(bytes: &[u8]) -> Node {
    let bytes = shortest_le(bytes.to_vec());
    if bytes.len() <= 16 {
        let fill = if bytes.last().is_some_and(|b| b & 0x80 != 0) {
            0xff
        } else {
            0
        };
        let mut wide = [fill; 16];
        wide[..bytes.len()].copy_from_slice(&bytes);
        Node::Int(i128::from_le_bytes(wide))
    } else {
        Node::BigInt(bytes)
    }
}

/// Drops sign-extension bytes that do not change the value (Python's own encoding is
/// already this short).
pub(super) fn shortest_le(mut bytes: Vec<u8>) -> Vec<u8> {
    while let [.., second, last] = bytes[..] {
        let redundant = (last == 0 && second & 0x80 == 0) || (last == 0xff && second & 0x80 != 0);
        if !redundant {
            break;
        }
        bytes.pop();
    }
    bytes
}

/// A name from the input, shortened and escaped for an error message.
fn printable(name: &str) -> String {
    let short: String = name.chars().take(64).collect();
    short.escape_debug().to_string()
}
