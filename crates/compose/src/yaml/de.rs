//! Binding a [`Node`] tree to typed structs with serde.
//!
//! Lenient where Compose is: after interpolation a value such as
//! `replicas: "${N}"` is the string "3", and the reference loader casts it to
//! the number the field wants; so do we (strings to numbers and booleans,
//! scalars to strings). Errors carry the place and the path of the value.

use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use super::{Map, Node, Value, format_float};
use crate::diag::Span;

/// A binding error with the place and path of the offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError {
    pub message: String,
    pub span: Option<Span>,
    /// Keys and indexes from the root of the bound node to the value.
    pub path: Vec<String>,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            span: None,
            path: Vec::new(),
        }
    }
}

impl DeError {
    fn at(mut self, span: Span, segment: Option<String>) -> Self {
        if self.span.is_none() {
            self.span = Some(span);
        }
        if let Some(s) = segment {
            self.path.insert(0, s);
        }
        self
    }
}

/// Binds a node to `T`.
///
/// # Errors
/// The first value that does not fit `T`, with its place and path.
pub fn from_node<'a, T: de::Deserialize<'a>>(node: &'a Node) -> Result<T, DeError> {
    T::deserialize(NodeDeserializer { node }).map_err(|e| e.at(node.span, None))
}

/// A serde deserializer over one node.
#[derive(Debug, Clone, Copy)]
pub struct NodeDeserializer<'a> {
    node: &'a Node,
}

impl<'a> NodeDeserializer<'a> {
    fn mismatch(&self, expected: &str) -> DeError {
        DeError {
            message: format!(
                "must be {expected}, not {}",
                super::with_article(self.node.type_name())
            ),
            span: Some(self.node.span),
            path: Vec::new(),
        }
    }

    fn int<T: TryFrom<i64>>(&self, expected: &str) -> Result<T, DeError> {
        let n: Option<i64> = match &self.node.value {
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        };
        n.and_then(|n| T::try_from(n).ok())
            .ok_or_else(|| self.mismatch(expected))
    }

    fn float(&self) -> Result<f64, DeError> {
        match &self.node.value {
            Value::Int(i) => Ok(*i as f64),
            Value::Float(f) => Ok(*f),
            Value::Str(s) => s.trim().parse().map_err(|_| self.mismatch("a number")),
            _ => Err(self.mismatch("a number")),
        }
    }
}

/// The spellings of booleans the Compose loader accepts in string fields.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "yes" | "y" | "on" => Some(true),
        "false" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

macro_rules! int_method {
    ($method:ident, $visit:ident, $ty:ty, $what:expr) => {
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            visitor.$visit(self.int::<$ty>($what)?)
        }
    };
}

impl<'de> de::Deserializer<'de> for NodeDeserializer<'de> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Seq(items) => visitor.visit_seq(Seq { items, index: 0 }),
            Value::Map(m) => visitor.visit_map(Entries::new(m)),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Str(s) => match parse_bool(s) {
                Some(b) => visitor.visit_bool(b),
                None => Err(self.mismatch("a boolean")),
            },
            _ => Err(self.mismatch("a boolean")),
        }
    }

    int_method!(deserialize_i8, visit_i8, i8, "a small integer");
    int_method!(deserialize_i16, visit_i16, i16, "an integer");
    int_method!(deserialize_i32, visit_i32, i32, "an integer");
    int_method!(deserialize_i64, visit_i64, i64, "an integer");
    int_method!(deserialize_u8, visit_u8, u8, "an integer from 0 to 255");
    int_method!(
        deserialize_u16,
        visit_u16,
        u16,
        "an integer from 0 to 65535"
    );
    int_method!(deserialize_u32, visit_u32, u32, "a non-negative integer");
    int_method!(deserialize_u64, visit_u64, u64, "a non-negative integer");

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_f32(self.float()? as f32)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_f64(self.float()?)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Str(s) => visitor.visit_borrowed_str(s),
            Value::Int(i) => visitor.visit_string(i.to_string()),
            Value::Float(f) => visitor.visit_string(format_float(*f)),
            Value::Bool(b) => visitor.visit_string(b.to_string()),
            _ => Err(self.mismatch("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Null => visitor.visit_unit(),
            _ => Err(self.mismatch("null")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Seq(items) => visitor.visit_seq(Seq { items, index: 0 }),
            _ => Err(self.mismatch("a sequence")),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Map(m) => visitor.visit_map(Entries::new(m)),
            _ => Err(self.mismatch("a mapping")),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Value::Map(m) if m.len() == 1 => {
                let (key, entry) = m.iter().next().ok_or_else(|| self.mismatch("a variant"))?;
                visitor.visit_enum(Variant {
                    key,
                    value: &entry.value,
                })
            }
            _ => Err(self.mismatch("one of the allowed values")),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct Seq<'a> {
    items: &'a [Node],
    index: usize,
}

impl<'de> SeqAccess<'de> for Seq<'de> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.get(self.index) else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(NodeDeserializer { node })
            .map(Some)
            .map_err(|e| e.at(node.span, Some(index.to_string())))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.index)
    }
}

struct Entries<'a> {
    iter: indexmap::map::Iter<'a, String, super::Entry>,
    current: Option<(&'a String, &'a Node)>,
}

impl<'a> Entries<'a> {
    fn new(map: &'a Map) -> Self {
        Entries {
            iter: map.iter(),
            current: None,
        }
    }
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some((key, entry)) = self.iter.next() else {
            return Ok(None);
        };
        self.current = Some((key, &entry.value));
        seed.deserialize(key.as_str().into_deserializer())
            .map(Some)
            .map_err(|e: DeError| e.at(entry.key_span, Some(key.clone())))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let Some((key, node)) = self.current.take() else {
            return Err(de::Error::custom("value without a key"));
        };
        seed.deserialize(NodeDeserializer { node })
            .map_err(|e| e.at(node.span, Some(key.clone())))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct Variant<'a> {
    key: &'a str,
    value: &'a Node,
}

impl<'de> de::EnumAccess<'de> for Variant<'de> {
    type Error = DeError;
    type Variant = VariantValue<'de>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), DeError> {
        let key: de::value::StrDeserializer<'_, DeError> = self.key.into_deserializer();
        let v = seed.deserialize(key)?;
        Ok((v, VariantValue { node: self.value }))
    }
}

struct VariantValue<'a> {
    node: &'a Node,
}

impl<'de> de::VariantAccess<'de> for VariantValue<'de> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(NodeDeserializer { node: self.node })
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(NodeDeserializer { node: self.node }, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_map(NodeDeserializer { node: self.node }, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::FileId;
    use crate::yaml::{ParseLimits, parse_documents};
    use serde::Deserialize;

    fn node(text: &str) -> Node {
        parse_documents(text, FileId(0), ParseLimits::default())
            .unwrap()
            .remove(0)
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct S {
        n: u32,
        b: bool,
        s: String,
        f: f64,
        o: Option<String>,
        v: Vec<u16>,
    }

    #[test]
    fn strings_cast_to_what_the_field_wants() {
        let n = node("n: \"3\"\nb: \"yes\"\ns: 42\nf: \"0.5\"\no: null\nv: [\"80\", 443]\n");
        let s: S = from_node(&n).unwrap();
        assert_eq!(
            s,
            S {
                n: 3,
                b: true,
                s: "42".into(),
                f: 0.5,
                o: None,
                v: vec![80, 443]
            }
        );
    }

    #[test]
    fn errors_carry_place_and_path() {
        let n = node("n: 1\nb: true\ns: x\nf: 1\no: x\nv: [1, 99999]\n");
        let err = from_node::<S>(&n).unwrap_err();
        assert_eq!(err.path, vec!["v".to_string(), "1".to_string()]);
        let span = err.span.unwrap();
        assert_eq!((span.line, span.column), (6, 8));
        assert_eq!(
            err.message,
            "must be an integer from 0 to 65535, not an integer"
        );
    }

    #[test]
    fn unknown_fields_point_at_the_key() {
        let n = node("n: 1\nb: true\ns: x\nf: 1\no: x\nv: []\nzz: 1\n");
        let err = from_node::<S>(&n).unwrap_err();
        assert_eq!(err.span.unwrap().line, 7);
        assert!(err.message.contains("unknown field `zz`"));
    }
}
