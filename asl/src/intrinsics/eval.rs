//! Evaluating intrinsic calls, with Step Functions' edge cases (checked against the
//! conformance corpus): `MathAdd` rounds each operand half up (Java's `Math.round`),
//! `StringSplit` splits on any of the delimiter's characters and drops empty parts, `Format`
//! renders objects the way Java prints a map (`{a=1, b=[]}`), `StringToJson` of a blank string
//! is `null`, `ArrayRange` includes its end and stops at 1,000 elements.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::{Arg, Call, FormatPiece, Function};
use crate::eval::{Env, Error};

/// The most elements `States.ArrayRange` may produce.
pub const ARRAY_RANGE_MAX: usize = 1000;

/// The items of `items` without repeats, first occurrences in order. Items are grouped by a
/// hash that agrees with JSON equality (objects compare without regard to key order), so the
/// cost is linear, not quadratic, in the number of items.
fn unique(items: &[Value]) -> Vec<Value> {
    use std::collections::HashMap;
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::with_capacity(items.len());
    let mut kept: Vec<&Value> = Vec::new();
    for item in items {
        let same_hash = seen.entry(content_hash(item)).or_default();
        if same_hash.iter().any(|&k| kept[k] == item) {
            continue;
        }
        same_hash.push(kept.len());
        kept.push(item);
    }
    kept.into_iter().cloned().collect()
}

/// A hash of `value` under which equal JSON values are equal: an object's fields are combined
/// without regard to their order, numbers by their value as f64 (`1` and `1.0` hash alike,
/// and are then told apart by `==`).
fn content_hash(value: &Value) -> u64 {
    use std::hash::{Hash, Hasher};
    fn one(v: &impl Hash) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        v.hash(&mut h);
        h.finish()
    }
    match value {
        Value::Null => 1,
        Value::Bool(b) => one(&(2u8, *b)),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or(0.0);
            one(&(3u8, if f == 0.0 { 0 } else { f.to_bits() }))
        }
        Value::String(s) => one(&(4u8, s)),
        Value::Array(items) => {
            let hashes: Vec<u64> = items.iter().map(content_hash).collect();
            one(&(5u8, hashes))
        }
        Value::Object(map) => {
            let fields = map
                .iter()
                .map(|(k, v)| one(&(k, content_hash(v))))
                .fold(0u64, u64::wrapping_add);
            one(&(6u8, fields))
        }
    }
}

/// Whether `value` takes at most `limit` bytes as JSON text. The count stops as soon as it
/// passes the limit.
fn fits(value: &Value, limit: usize) -> bool {
    struct Budget(usize);
    impl std::io::Write for Budget {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self
                .0
                .checked_sub(buf.len())
                .ok_or(std::io::ErrorKind::FileTooLarge)?;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    serde_json::to_writer(Budget(limit), value).is_ok()
}

impl Call {
    /// Evaluates the call; failures are `States.IntrinsicFailure` (or `States.Runtime` for a
    /// path that reads nothing, `States.DataLimitExceeded` for a value over `env.max_bytes`).
    pub fn evaluate(&self, env: &Env) -> Result<Value, Error> {
        let value = self.evaluate_unchecked(env)?;
        // The functions whose value is built from their arguments, and may be larger; the
        // others make a number, a boolean, a UUID, a digest, a part of an argument, or at
        // most ARRAY_RANGE_MAX numbers.
        let builds = matches!(
            self.function,
            Function::Format
                | Function::StringToJson
                | Function::JsonToString
                | Function::Array
                | Function::ArrayPartition
                | Function::Base64Encode
                | Function::Base64Decode
                | Function::JsonMerge
                | Function::StringSplit
        );
        if builds && !fits(&value, env.max_bytes) {
            return Err(Error {
                error: crate::errors::DATA_LIMIT_EXCEEDED,
                message: format!(
                    "{} made a value larger than {} bytes, the payload limit",
                    self.function, env.max_bytes
                ),
            });
        }
        Ok(value)
    }

    fn evaluate_unchecked(&self, env: &Env) -> Result<Value, Error> {
        let args = self
            .args
            .iter()
            .map(|a| match a {
                Arg::Literal(v) => Ok(v.clone()),
                Arg::Path(p) => env.read(p).ok_or_else(|| {
                    Error::runtime(format!(
                        "The JSONPath '{}' specified in the intrinsic function {} could not be found in the input '{}'",
                        p.as_str(),
                        self.function,
                        env.root(p.root()).map_or_else(|| "null".to_owned(), Value::to_string)
                    ))
                }),
                Arg::Call(c) => c.evaluate(env),
            })
            .collect::<Result<Vec<Value>, Error>>()?;
        let f = self.function;
        let fail = |what: String| Error::intrinsic(format!("Invalid arguments in {f}: {what}"));
        match f {
            Function::Format => {
                let template = match &self.format {
                    Some(pieces) => pieces.clone(),
                    None => pieces(
                        args[0]
                            .as_str()
                            .ok_or_else(|| fail("the template must be a string".into()))?,
                    ),
                };
                let placeholders = template
                    .iter()
                    .filter(|p| **p == FormatPiece::Placeholder)
                    .count();
                if placeholders != args.len() - 1 {
                    return Err(fail(format!(
                        "the template has {placeholders} placeholders but {} arguments follow it",
                        args.len() - 1
                    )));
                }
                let mut out = String::new();
                let mut values = args[1..].iter();
                for piece in &template {
                    match piece {
                        FormatPiece::Text(t) => out.push_str(t),
                        FormatPiece::Placeholder => {
                            java_string(&mut out, values.next().expect("counted"), true)
                        }
                    }
                }
                Ok(Value::String(out))
            }
            Function::StringToJson => {
                let s = string(&args[0], &fail)?;
                if s.trim().is_empty() {
                    return Ok(Value::Null);
                }
                serde_json::from_str(s).map_err(|e| fail(format!("the string is not JSON: {e}")))
            }
            Function::JsonToString => Ok(Value::String(args[0].to_string())),
            Function::Array => Ok(Value::Array(args)),
            Function::ArrayPartition => {
                let items = array(&args[0], &fail)?;
                let size = integer(&args[1], &fail)?;
                if size <= 0 {
                    return Err(fail(format!(
                        "the chunk size must be positive, but is {size}"
                    )));
                }
                Ok(Value::Array(
                    items
                        .chunks(size as usize)
                        .map(|c| Value::Array(c.to_vec()))
                        .collect(),
                ))
            }
            Function::ArrayContains => Ok(Value::Bool(array(&args[0], &fail)?.contains(&args[1]))),
            Function::ArrayRange => {
                let (start, end, step) = (
                    integer(&args[0], &fail)?,
                    integer(&args[1], &fail)?,
                    integer(&args[2], &fail)?,
                );
                if step == 0 {
                    return Err(fail("the step must not be 0".into()));
                }
                let count = if (step > 0 && start > end) || (step < 0 && start < end) {
                    0
                } else {
                    (end - start) / step + 1
                };
                if count as u64 > ARRAY_RANGE_MAX as u64 {
                    return Err(fail(format!(
                        "the range would have {count} elements; at most {ARRAY_RANGE_MAX} are allowed"
                    )));
                }
                Ok(Value::Array(
                    (0..count).map(|i| Value::from(start + i * step)).collect(),
                ))
            }
            Function::ArrayGetItem => {
                let items = array(&args[0], &fail)?;
                let index = integer(&args[1], &fail)?;
                usize::try_from(index)
                    .ok()
                    .and_then(|i| items.get(i))
                    .cloned()
                    .ok_or_else(|| {
                        fail(format!(
                            "index {index} is out of bounds for an array of {} elements",
                            items.len()
                        ))
                    })
            }
            Function::ArrayLength => Ok(Value::from(array(&args[0], &fail)?.len())),
            Function::ArrayUnique => Ok(Value::Array(unique(array(&args[0], &fail)?))),
            Function::Base64Encode => Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(string(&args[0], &fail)?),
            )),
            Function::Base64Decode => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(string(&args[0], &fail)?)
                    .map_err(|e| fail(format!("the string is not base64: {e}")))?;
                String::from_utf8(bytes)
                    .map(Value::String)
                    .map_err(|_| fail("the decoded bytes are not UTF-8".into()))
            }
            Function::Hash => {
                let data = match &args[0] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let algorithm = string(&args[1], &fail)?;
                Ok(Value::String(hash(algorithm, data.as_bytes()).ok_or_else(
                    || fail(format!("unknown algorithm '{algorithm}'")),
                )?))
            }
            Function::JsonMerge => {
                let (Value::Object(a), Value::Object(b)) = (&args[0], &args[1]) else {
                    return Err(fail("both values must be JSON objects".into()));
                };
                let deep = args[2]
                    .as_bool()
                    .ok_or_else(|| fail("the third argument must be a boolean".into()))?;
                let mut merged = a.clone();
                merge(&mut merged, b, deep);
                Ok(Value::Object(merged))
            }
            Function::MathRandom => {
                let start = round_half_up(number(&args[0], &fail)?);
                let end = round_half_up(number(&args[1], &fail)?);
                if start >= end {
                    return Err(fail(format!(
                        "the start ({start}) must be less than the end ({end})"
                    )));
                }
                let draw = match args.get(2) {
                    Some(seed) => splitmix64(integer(seed, &fail)? as u64),
                    None => (env.random)(),
                };
                let span = (end - start) as u64;
                Ok(Value::from(start + (draw % span) as i64))
            }
            Function::MathAdd => {
                let sum = round_half_up(number(&args[0], &fail)?)
                    .checked_add(round_half_up(number(&args[1], &fail)?));
                sum.map(Value::from)
                    .ok_or_else(|| fail("the sum overflows".into()))
            }
            Function::StringSplit => {
                let s = string(&args[0], &fail)?;
                let delimiters: Vec<char> = string(&args[1], &fail)?.chars().collect();
                Ok(Value::Array(
                    s.split(|c| delimiters.contains(&c))
                        .filter(|p| !p.is_empty())
                        .map(|p| Value::String(p.to_owned()))
                        .collect(),
                ))
            }
            Function::Uuid => Ok(Value::String(uuid_v4((env.random)(), (env.random)()))),
        }
    }
}

/// Splits a Format template held in a value (not a literal) at its `{}`s.
fn pieces(template: &str) -> Vec<FormatPiece> {
    let mut out = Vec::new();
    for (i, text) in template.split("{}").enumerate() {
        if i > 0 {
            out.push(FormatPiece::Placeholder);
        }
        if !text.is_empty() {
            out.push(FormatPiece::Text(text.to_owned()));
        }
    }
    out
}

/// How Step Functions (Java) prints a value inside a formatted string: strings bare at the top
/// level, objects as `{key=value, ...}`, arrays as `[a, b]`.
fn java_string(out: &mut String, v: &Value, top: bool) {
    match v {
        Value::String(s) => {
            let _ = top;
            out.push_str(s);
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                java_string(out, item, false);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push('=');
                java_string(out, item, false);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn string<'v>(v: &'v Value, fail: &dyn Fn(String) -> Error) -> Result<&'v str, Error> {
    v.as_str()
        .ok_or_else(|| fail(format!("expected a string, got {v}")))
}

fn array<'v>(v: &'v Value, fail: &dyn Fn(String) -> Error) -> Result<&'v Vec<Value>, Error> {
    v.as_array()
        .ok_or_else(|| fail(format!("expected an array, got {v}")))
}

fn number(v: &Value, fail: &dyn Fn(String) -> Error) -> Result<f64, Error> {
    v.as_f64()
        .ok_or_else(|| fail(format!("expected a number, got {v}")))
}

fn integer(v: &Value, fail: &dyn Fn(String) -> Error) -> Result<i64, Error> {
    match v {
        Value::Number(n) if n.is_i64() => Ok(n.as_i64().expect("is_i64")),
        Value::Number(n)
            if n.as_f64()
                .is_some_and(|x| x.fract() == 0.0 && x.abs() < 9.0e15) =>
        {
            Ok(n.as_f64().expect("f64") as i64)
        }
        other => Err(fail(format!("expected an integer, got {other}"))),
    }
}

/// Java's `Math.round`: halves go up (towards positive infinity).
fn round_half_up(x: f64) -> i64 {
    (x + 0.5).floor() as i64
}

fn merge(into: &mut Map<String, Value>, from: &Map<String, Value>, deep: bool) {
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (Some(Value::Object(a)), Value::Object(b)) if deep => merge(a, b, true),
            _ => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

pub(crate) fn hash(algorithm: &str, data: &[u8]) -> Option<String> {
    use sha2::Digest as _;
    let bytes: Vec<u8> = match algorithm {
        "MD5" => md5::Md5::digest(data).to_vec(),
        "SHA-1" => sha1::Sha1::digest(data).to_vec(),
        "SHA-256" => sha2::Sha256::digest(data).to_vec(),
        "SHA-384" => sha2::Sha384::digest(data).to_vec(),
        "SHA-512" => sha2::Sha512::digest(data).to_vec(),
        _ => return None,
    };
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// SplitMix64: a small, well-mixed generator; one step from `seed`.
pub fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A version-4 UUID from 128 random bits.
pub(crate) fn uuid_v4(hi: u64, lo: u64) -> String {
    let hi = (hi & 0xFFFF_FFFF_FFFF_0FFF) | 0x0000_0000_0000_4000;
    let lo = (lo & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xFFFF,
        hi & 0xFFFF,
        lo >> 48,
        lo & 0xFFFF_FFFF_FFFF
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn eval(text: &str, input: Value) -> Result<Value, Error> {
        let call = Call::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        let vars = Map::new();
        let ctx = json!({"StateMachine": {"Id": "arn:aws:states:us-east-1:111111111111:stateMachine:sm-name", "Name": "sm-name"}});
        let env = Env {
            input: &input,
            context: &ctx,
            variables: &vars,
            random: &|| 0x0123_4567_89AB_CDEF,
            max_bytes: 256 * 1024,
        };
        call.evaluate(&env)
    }

    fn yields(text: &str, input: Value, expected: Value) {
        assert_eq!(
            eval(text, input).unwrap_or_else(|e| panic!("{text}: {e}")),
            expected,
            "{text}"
        );
    }

    fn fails(text: &str, input: Value) -> Error {
        eval(text, input).expect_err(text)
    }

    #[test]
    fn format() {
        yields(
            "States.Format('a {} b {}', $.x, $.y)",
            json!({"x": "s", "y": 1.1}),
            json!("a s b 1.1"),
        );
        yields(
            "States.Format('{}', $.x)",
            json!({"x": null}),
            json!("null"),
        );
        yields(
            "States.Format('{} and {}', $.x, $.x)",
            json!({"x": {"Arg1": 1, "Arg2": []}}),
            json!("{Arg1=1, Arg2=[]} and {Arg1=1, Arg2=[]}"),
        );
        yields(
            "States.Format('{}', $$.StateMachine)",
            json!({}),
            json!("{Id=arn:aws:states:us-east-1:111111111111:stateMachine:sm-name, Name=sm-name}"),
        );
        yields(r"States.Format('\{} {}', 'x')", json!({}), json!("{} x"));
        yields(
            "States.Format($.t, 'x')",
            json!({"t": "<{}>"}),
            json!("<x>"),
        );
        assert_eq!(
            fails("States.Format('{} {}', 'x')", json!({})).error,
            "States.IntrinsicFailure"
        );
    }

    #[test]
    fn json() {
        yields("States.StringToJson($.s)", json!({"s": " "}), json!(null));
        yields(
            "States.StringToJson($.s)",
            json!({"s": "{\"a\": [1]}"}),
            json!({"a": [1]}),
        );
        yields(
            "States.JsonToString($.o)",
            json!({"o": {"Arg1": 1, "Arg2": []}}),
            json!("{\"Arg1\":1,\"Arg2\":[]}"),
        );
        assert_eq!(
            fails("States.StringToJson($.s)", json!({"s": "{"})).error,
            "States.IntrinsicFailure"
        );
        yields(
            "States.JsonMerge($.a, $.b, false)",
            json!({"a": {"x": {"p": 1}, "y": 1}, "b": {"x": {"q": 2}}}),
            json!({"x": {"q": 2}, "y": 1}),
        );
        yields(
            "States.JsonMerge($.a, $.b, true)",
            json!({"a": {"x": {"p": 1}}, "b": {"x": {"q": 2}}}),
            json!({"x": {"p": 1, "q": 2}}),
        );
    }

    #[test]
    fn arrays() {
        yields("States.Array()", json!({}), json!([]));
        yields("States.Array($.a, 1)", json!({"a": null}), json!([null, 1]));
        yields(
            "States.ArrayPartition($.a, 2)",
            json!({"a": [0, 1, 2]}),
            json!([[0, 1], [2]]),
        );
        yields("States.ArrayPartition($.a, 4)", json!({"a": []}), json!([]));
        assert_eq!(
            fails("States.ArrayPartition($.a, 0)", json!({"a": [1]})).error,
            "States.IntrinsicFailure"
        );
        yields(
            "States.ArrayContains($.a, $.b)",
            json!({"a": [[1, 2, 3], 2], "b": [1, 2, 3]}),
            json!(true),
        );
        yields(
            "States.ArrayContains($.a, $.b)",
            json!({"a": [[1, 2, 3], 2], "b": null}),
            json!(false),
        );
        yields(
            "States.ArrayRange(0, 10, 3)",
            json!({}),
            json!([0, 3, 6, 9]),
        );
        yields(
            "States.ArrayRange(1, 9, 2)",
            json!({}),
            json!([1, 3, 5, 7, 9]),
        );
        yields("States.ArrayRange(5, 1, -2)", json!({}), json!([5, 3, 1]));
        yields(
            "States.ArrayRange(1, 999, 1)",
            json!({}),
            Value::Array((1..=999).map(Value::from).collect()),
        );
        assert!(
            fails("States.ArrayRange(0, 1000, 1)", json!({}))
                .message
                .contains("1000")
        );
        yields(
            "States.ArrayGetItem($.a, 5)",
            json!({"a": [1, 2, 3, 4, 5, 6]}),
            json!(6),
        );
        assert_eq!(
            fails("States.ArrayGetItem($.a, 6)", json!({"a": [1]})).error,
            "States.IntrinsicFailure"
        );
        yields("States.ArrayLength($.a)", json!({"a": [1, 2]}), json!(2));
        yields(
            "States.ArrayUnique($.a)",
            json!({"a": [1, 2, 1, {"a": 1}, {"a": 1}]}),
            json!([1, 2, {"a": 1}]),
        );
        // Objects are equal whatever their key order; 1 and 1.0 are not the same JSON number.
        yields(
            "States.ArrayUnique($.a)",
            json!({"a": [{"a": 1, "b": [2]}, {"b": [2], "a": 1}, 1, 1.0, "1", null, null, [1, 2], [2, 1], [1, 2]]}),
            json!([{"a": 1, "b": [2]}, 1, 1.0, "1", null, [1, 2], [2, 1]]),
        );
        // Linear: 200,000 items, half of them repeats, at once (quadratic took minutes).
        let items: Vec<Value> = (0..200_000).map(|i| json!({"n": i % 100_000})).collect();
        assert_eq!(unique(&items).len(), 100_000);
    }

    #[test]
    fn strings_and_encodings() {
        yields(
            "States.Base64Encode($.s)",
            json!({"s": "Data to encode"}),
            json!("RGF0YSB0byBlbmNvZGU="),
        );
        yields(
            "States.Base64Decode($.s)",
            json!({"s": "RGF0YSB0byBlbmNvZGU="}),
            json!("Data to encode"),
        );
        yields("States.Base64Decode($.s)", json!({"s": ""}), json!(""));
        yields(
            "States.StringSplit($.s, ',')",
            json!({"s": ", , ,"}),
            json!([" ", " "]),
        );
        yields(
            "States.StringSplit($.s, ',')",
            json!({"s": ",,,,"}),
            json!([]),
        );
        yields(
            "States.StringSplit($.s, '.+,=')",
            json!({"s": "This.is+a,test=string"}),
            json!(["This", "is", "a", "test", "string"]),
        );
        for (alg, digest) in [
            ("MD5", "812f45842bc6d66ee14572ce20db8e86"),
            ("SHA-1", "aaff4a450a104cd177d28d18d74485e8cae074b7"),
            (
                "SHA-384",
                "d28a7d5cf25a74f11a50a18452b75e04bb3d70c9dd0510d6123aa008c756511b87525bdc835ebb27e1fb9e9374a15562",
            ),
        ] {
            yields(
                &format!("States.Hash($.s, '{alg}')"),
                json!({"s": "input data"}),
                json!(digest),
            );
        }
        let sha256 = eval("States.Hash('input data', 'SHA-256')", json!({})).unwrap();
        assert_eq!(sha256.as_str().unwrap().len(), 64);
        let sha512 = eval("States.Hash('input data', 'SHA-512')", json!({})).unwrap();
        assert_eq!(sha512.as_str().unwrap().len(), 128);
    }

    #[test]
    fn math() {
        for (a, b, sum) in [
            (1.49, 1.5, 3),
            (-1.5, 0.0, -1),
            (0.5, 0.0, 1),
            (2.5, 0.0, 3),
            (-0.5, 0.5, 1),
            (-0.5, 0.0, 0),
            (-3.5, 0.0, -3),
        ] {
            yields(
                "States.MathAdd($.a, $.b)",
                json!({"a": a, "b": b}),
                json!(sum),
            );
        }
        let r = eval("States.MathRandom(0, 999, 3)", json!({})).unwrap();
        assert_eq!(
            r,
            eval("States.MathRandom(0, 999, 3)", json!({})).unwrap(),
            "a seed draws the same number"
        );
        let r = r.as_i64().unwrap();
        assert!((0..999).contains(&r));
        let r = eval("States.MathRandom(-99999, -9999)", json!({}))
            .unwrap()
            .as_i64()
            .unwrap();
        assert!((-99999..-9999).contains(&r));
        assert_eq!(
            fails("States.MathRandom(5, 5)", json!({})).error,
            "States.IntrinsicFailure"
        );
    }

    #[test]
    fn uuid_and_nesting() {
        let u = eval("States.UUID()", json!({})).unwrap();
        let u = u.as_str().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
        yields(
            "States.ArrayGetItem(States.StringSplit($$.StateMachine.Name, '-'), States.MathAdd(States.ArrayLength(States.StringSplit($$.StateMachine.Name, '-')), -1))",
            json!({}),
            json!("name"),
        );
        assert_eq!(
            fails("States.ArrayLength($.nope)", json!({})).error,
            "States.Runtime"
        );
    }

    #[test]
    fn nested_calls_cannot_grow_a_value_past_the_payload_limit() {
        // Each JsonToString doubles the backslashes of the one inside: 40 of them would make
        // terabytes. The call that passes 256 KiB fails, long before.
        let mut text = "$.s".to_owned();
        for _ in 0..40 {
            text = format!("States.JsonToString({text})");
        }
        let e = fails(&text, json!({"s": "\"quoted\""}));
        assert_eq!(e.error, "States.DataLimitExceeded", "{e}");
        assert!(
            e.message
                .contains("States.JsonToString made a value larger than 262144 bytes")
        );
        // Within the limit, the value is whole: {"s": 262140 x's} is 262144 bytes.
        let s = "x".repeat(256 * 1024 - 4);
        yields("States.Array($.s)", json!({"s": s}), json!([s]));
        let s = "x".repeat(256 * 1024 - 3);
        let e = fails("States.Array($.s)", json!({"s": s}));
        assert_eq!(e.error, "States.DataLimitExceeded");
    }
}
