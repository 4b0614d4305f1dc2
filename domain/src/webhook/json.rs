//! The few JSON leaves serde's derive does not provide, for the facts in [`super::rule`]: values
//! of an unexpected type kept as that type instead of refused, and arrays whose cost is bounded
//! whatever their length. Everything else is plain `#[derive(Deserialize)]`.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
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

/// A string if the value is one, and `None` for any other value, which is skipped: names the
/// log reads and label values, which the API server has validated already. Borrowed from the
/// body unless it holds escapes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnyText<'a>(pub Option<Cow<'a, str>>);

impl AnyText<'_> {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for AnyText<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AnyTextVisitor).map(AnyText)
    }
}

struct AnyTextVisitor;

impl<'de> Visitor<'de> for AnyTextVisitor {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(v.to_owned())))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map).map(|_| None)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| None)
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Which JSON type a value is read from: an object for a derived struct, an array for a list.
pub trait Expected {
    const TYPE: JsonType;
}

/// A `T` read from the one JSON type it is read from ([`Expected`]); any other value is skipped
/// and its type kept, so that the rule decides whether that matters and says where. Absent
/// reads as `null`. Fails only on invalid JSON, or on a `T` that fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shaped<T>(pub Result<T, JsonType>);

impl<T> Default for Shaped<T> {
    fn default() -> Self {
        Shaped(Err(JsonType::Null))
    }
}

impl<'de, T: Deserialize<'de> + Expected> Deserialize<'de> for Shaped<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `deserialize_any`, never `deserialize_struct`: serde reads a struct from an array too.
        deserializer
            .deserialize_any(ShapedVisitor(PhantomData))
            .map(Shaped)
    }
}

struct ShapedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de> + Expected> Visitor<'de> for ShapedVisitor<T> {
    type Value = Result<T, JsonType>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        if T::TYPE == JsonType::Object {
            T::deserialize(MapAccessDeserializer::new(map)).map(Ok)
        } else {
            IgnoredAny.visit_map(map).map(|_| Err(JsonType::Object))
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        if T::TYPE == JsonType::Array {
            T::deserialize(SeqAccessDeserializer::new(seq)).map(Ok)
        } else {
            IgnoredAny.visit_seq(seq).map(|_| Err(JsonType::Array))
        }
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(Err(JsonType::String))
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
}

/// A JSON array of which the first `MAX` elements are kept and the rest only counted (and
/// skipped unread), so that what a long array costs is bounded by `MAX`, not by its length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List<T, const MAX: usize> {
    pub items: Vec<T>,
    /// Every element, kept or not.
    pub len: usize,
}

impl<T, const MAX: usize> List<T, MAX> {
    /// The elements, when every one was kept.
    pub fn complete(&self) -> Option<&[T]> {
        (self.len == self.items.len()).then_some(&self.items[..])
    }
}

impl<T, const MAX: usize> Expected for List<T, MAX> {
    const TYPE: JsonType = JsonType::Array;
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Deserialize<'de> for List<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(BoundedVisitor(PhantomData))
    }
}

impl<'de, T: Deserialize<'de>, const MAX: usize> Bounded<'de> for List<T, MAX> {
    type Element = T;
    const MAX: usize = MAX;

    fn empty() -> Self {
        List {
            items: Vec::new(),
            len: 0,
        }
    }

    fn read(&mut self, element: T) {
        self.items.push(element);
    }

    fn counted(self, len: usize) -> Self {
        List { len, ..self }
    }
}

/// A yes or no read from one element of an [`AnyOf`].
pub trait Flag {
    fn is_set(&self) -> bool;
}

/// A JSON array asked one question: whether any element is set ([`Flag`]). Each of the first
/// `MAX` elements is read as a `T` and dropped, the rest only counted (and skipped unread), so a
/// long array costs no memory. (Read as a [`List`], every container's `env` cost allocations:
/// 374 instead of 12 for the benchmark's 50-container review.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnyOf<T, const MAX: usize> {
    any: bool,
    pub len: usize,
    element: PhantomData<T>,
}

impl<T, const MAX: usize> AnyOf<T, MAX> {
    /// Whether any element is set, when every one was read.
    pub fn complete(&self) -> Option<bool> {
        (self.len <= MAX).then_some(self.any)
    }
}

impl<T, const MAX: usize> Expected for AnyOf<T, MAX> {
    const TYPE: JsonType = JsonType::Array;
}

impl<'de, T: Deserialize<'de> + Flag, const MAX: usize> Deserialize<'de> for AnyOf<T, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_seq(BoundedVisitor(PhantomData))
    }
}

impl<'de, T: Deserialize<'de> + Flag, const MAX: usize> Bounded<'de> for AnyOf<T, MAX> {
    type Element = T;
    const MAX: usize = MAX;

    fn empty() -> Self {
        AnyOf {
            any: false,
            len: 0,
            element: PhantomData,
        }
    }

    fn read(&mut self, element: T) {
        self.any |= element.is_set();
    }

    fn counted(self, len: usize) -> Self {
        AnyOf { len, ..self }
    }
}

/// An array whose cost is bounded by `MAX` elements: the first `MAX` are read as `Element`s, the
/// rest only counted (and skipped unread). [`List`] keeps what it reads, [`AnyOf`] keeps one
/// answer; [`BoundedVisitor`] walks the array for both.
trait Bounded<'de> {
    type Element: Deserialize<'de>;
    const MAX: usize;

    /// Before the first element.
    fn empty() -> Self;

    /// One of the first `MAX` elements.
    fn read(&mut self, element: Self::Element);

    /// With the number of elements, read or skipped.
    fn counted(self, len: usize) -> Self;
}

struct BoundedVisitor<B>(PhantomData<B>);

impl<'de, B: Bounded<'de>> Visitor<'de> for BoundedVisitor<B> {
    type Value = B;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut bounded = B::empty();
        let mut len = 0;
        while len < B::MAX {
            match seq.next_element()? {
                Some(element) => bounded.read(element),
                None => return Ok(bounded.counted(len)),
            }
            len += 1;
        }
        while seq.next_element::<IgnoredAny>()?.is_some() {
            len += 1;
        }
        Ok(bounded.counted(len))
    }
}
