//! Request values the way Vault clients send them: booleans and integers may arrive as strings,
//! durations as `"1h"`. Each type reads every form and writes the plain one (a JSON boolean or
//! number), so a body written by the client reads back as it was meant.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::duration::parse_seconds;

/// A borrowed-when-possible string field.
pub type Text<'a> = Option<Cow<'a, str>>;

/// Vault's weakly typed boolean: `true`, `"true"`, `"1"`, `"t"`, `1` and their negatives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flag(pub bool);

impl<'de> Deserialize<'de> for Flag {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Flag;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flag, E> {
                Ok(Flag(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Flag, E> {
                match v {
                    0 => Ok(Flag(false)),
                    1 => Ok(Flag(true)),
                    _ => Err(E::custom("a boolean must be true, false, 1 or 0")),
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Flag, E> {
                match v {
                    "true" | "True" | "TRUE" | "t" | "T" | "1" => Ok(Flag(true)),
                    "false" | "False" | "FALSE" | "f" | "F" | "0" => Ok(Flag(false)),
                    _ => Err(E::custom("a boolean must be true, false, 1 or 0")),
                }
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Serialize for Flag {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bool(self.0)
    }
}

/// Vault's weakly typed integer: `2` or `"2"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Int(pub i64);

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Int;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int, E> {
                Ok(Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int, E> {
                i64::try_from(v)
                    .map(Int)
                    .map_err(|_| E::custom("integer too large"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Int, E> {
                v.trim()
                    .parse()
                    .map(Int)
                    .map_err(|_| E::custom("not an integer"))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Serialize for Int {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_i64(self.0)
    }
}

impl From<u32> for Int {
    fn from(value: u32) -> Int {
        Int(i64::from(value))
    }
}

impl From<u8> for Int {
    fn from(value: u8) -> Int {
        Int(i64::from(value))
    }
}

/// A duration in seconds: `3600`, `"3600"`, `"1h"`, `"90m"`, `"1d"`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seconds(pub u64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Seconds;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Seconds, E> {
                Ok(Seconds(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Seconds, E> {
                u64::try_from(v)
                    .map(Seconds)
                    .map_err(|_| E::custom("a duration cannot be negative"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Seconds, E> {
                parse_seconds(v)
                    .map(Seconds)
                    .ok_or_else(|| E::custom("not a duration (e.g. 3600, \"1h\", \"30m\", \"7d\")"))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_plainly_read_back_alike() {
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Fields {
            flag: Flag,
            int: Int,
            secs: Seconds,
        }
        let fields = Fields {
            flag: Flag(true),
            int: Int(-3),
            secs: Seconds(3600),
        };
        let text = serde_json::to_string(&fields).unwrap();
        assert_eq!(text, r#"{"flag":true,"int":-3,"secs":3600}"#);
        assert_eq!(serde_json::from_str::<Fields>(&text).unwrap(), fields);
        let lenient: Fields =
            serde_json::from_str(r#"{"flag":"t","int":" 7","secs":"1h"}"#).unwrap();
        assert_eq!(
            (lenient.flag, lenient.int, lenient.secs),
            (Flag(true), Int(7), Seconds(3600))
        );
    }
}
