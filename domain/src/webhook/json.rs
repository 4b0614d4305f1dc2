//! Reading JSON straight from the request body without building a tree: strings borrowed from the
//! body, keys matched without copying them, and values of an unexpected type recorded instead of
//! refused. A review is answered on the hot path of every Pod creation, so decoding allocates
//! only for what the answer keeps.
//!
//! Like serde_json's own skipping, this leaves skipped values and compared keys unchecked for
//! UTF-8 (a tree checked every string); the API server sends only UTF-8, as Go's encoding/json
//! replaces invalid bytes.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// The type of a JSON value, named as error messages read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl JsonType {
    pub fn as_str(self) -> &'static str {
        match self {
            JsonType::Null => "missing or null",
            JsonType::Boolean => "a boolean",
            JsonType::Number => "a number",
            JsonType::String => "a string",
            JsonType::Array => "an array",
            JsonType::Object => "an object",
        }
    }
}

/// A string that must be one: borrowed from the body, copied only when it holds escapes (serde's
/// own `Option<Cow<str>>` always copies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl std::ops::Deref for Text<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor).map(Text)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// A string if the value is one, and `None` for any other value, which is skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnyText<'a>(pub Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for AnyText<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(AnyText(read_any(deserializer, TextReader)?.ok()))
    }
}

struct TextReader;

impl<'de> Reader<'de> for TextReader {
    type Value = Cow<'de, str>;

    fn string(self, v: &str) -> Option<Self::Value> {
        Some(Cow::Owned(v.to_owned()))
    }

    fn borrowed_string(self, v: &'de str) -> Option<Self::Value> {
        Some(Cow::Borrowed(v))
    }
}

/// Reads a string and says which of the names it is, or `None` for any other string or value,
/// which is skipped: the values the rule compares with constants. Matches an escaped string too,
/// without copying it.
#[derive(Debug, Clone, Copy)]
pub struct OneOf(pub &'static [&'static str]);

impl<'de> DeserializeSeed<'de> for OneOf {
    type Value = Option<&'static str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        Ok(read_any(deserializer, self)?.ok())
    }
}

impl Reader<'_> for OneOf {
    type Value = &'static str;

    fn string(self, v: &str) -> Option<Self::Value> {
        self.0.iter().copied().find(|name| *name == v)
    }
}

/// A value read from the one JSON type it can be read from (an object or an array, by which of
/// [`FromJson`]'s methods it implements); any other value is skipped and its type kept, so that
/// the caller decides whether that is an error, and says where. Fails only on invalid JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaped<T>(pub Result<T, JsonType>);

impl<T> Default for Shaped<T> {
    /// An absent field reads as a `null` one.
    fn default() -> Self {
        Shaped(Err(JsonType::Null))
    }
}

/// How a [`Shaped`] value is read from an object or from an array. A type implements the one it
/// is read from; the other keeps its default, which skips the value.
pub trait FromJson<'de>: Sized {
    /// `None` when `Self` is not read from an object.
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        IgnoredAny.visit_map(map).map(|_| None)
    }

    /// `None` when `Self` is not read from an array.
    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Option<Self>, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| None)
    }
}

impl<'de, T: FromJson<'de>> Deserialize<'de> for Shaped<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        read_any(deserializer, PhantomData::<T>).map(Shaped)
    }
}

impl<'de, T: FromJson<'de>> Reader<'de> for PhantomData<T> {
    type Value = T;

    fn object<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
        T::from_map(map)
    }

    fn array<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<T>, A::Error> {
        T::from_seq(seq)
    }
}

/// Reads every map key, gives each of `names` to `value` (which must read the value) and skips
/// the others. A repeated key is read each time, so the last one wins, as in serde_json's
/// `Value`.
pub fn for_each_field<'de, A: MapAccess<'de>>(
    mut map: A,
    names: &'static [&'static str],
    mut value: impl FnMut(&'static str, &mut A) -> Result<(), A::Error>,
) -> Result<(), A::Error> {
    while let Some(key) = map.next_key_seed(Key(names))? {
        match key {
            Some(name) => value(name, &mut map)?,
            None => {
                map.next_value::<IgnoredAny>()?;
            }
        }
    }
    Ok(())
}

/// A map key, as one of the names the caller reads or `None`, escaped or not. Read as a string,
/// not as bytes: serde_json's bytes path skips the checks for control characters and UTF-8, so
/// a body that is not JSON would be answered (found by fuzzing).
struct Key(&'static [&'static str]);

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Option<&'static str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for Key {
    type Value = Option<&'static str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.iter().copied().find(|name| *name == v))
    }
}

/// Reads every element of an array as a `T`, and hands each to `each`.
pub fn for_each_element<'de, A: SeqAccess<'de>, T: Deserialize<'de>>(
    mut seq: A,
    mut each: impl FnMut(T),
) -> Result<(), A::Error> {
    while let Some(element) = seq.next_element::<T>()? {
        each(element);
    }
    Ok(())
}

// === impl Reader ===

/// What to read from each JSON type. Each default skips the value and reads nothing, so that a
/// value of another type is recorded by [`read_any`] rather than refused.
trait Reader<'de>: Sized {
    type Value;

    fn object<A: MapAccess<'de>>(self, map: A) -> Result<Option<Self::Value>, A::Error> {
        IgnoredAny.visit_map(map).map(|_| None)
    }

    fn array<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<Self::Value>, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| None)
    }

    /// A string with escapes, decoded into a buffer that does not outlive the call.
    fn string(self, _: &str) -> Option<Self::Value> {
        None
    }

    /// A string without escapes, borrowed from the body.
    fn borrowed_string(self, v: &'de str) -> Option<Self::Value> {
        self.string(v)
    }
}

/// Reads any JSON value with `reader`: its value, or the type found when the reader reads
/// nothing from that type.
fn read_any<'de, D: Deserializer<'de>, R: Reader<'de>>(
    deserializer: D,
    reader: R,
) -> Result<Result<R::Value, JsonType>, D::Error> {
    // `deserialize_any`, never `deserialize_struct`: serde reads a struct from an array too.
    deserializer.deserialize_any(AnyValue(reader))
}

struct AnyValue<R>(R);

impl<'de, R: Reader<'de>> Visitor<'de> for AnyValue<R> {
    type Value = Result<R::Value, JsonType>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        Ok(self.0.object(map)?.ok_or(JsonType::Object))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Ok(self.0.array(seq)?.ok_or(JsonType::Array))
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(self.0.borrowed_string(v).ok_or(JsonType::String))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(self.0.string(v).ok_or(JsonType::String))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Err(JsonType::Boolean))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Err(JsonType::Number))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(Err(JsonType::Number))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Err(JsonType::Number))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err(JsonType::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Err(JsonType::Null))
    }
}
