//! The few facts about a reviewed object that the rule and the log need, read in the same pass
//! as the review and borrowed from its body: names, the opt-out label, and whether each
//! container's `env` sets the variable.
//!
//! Reading never fails on the object's shape: a review of any kind of object must be answered
//! `allowed: true`, and only the rule knows whether a wrong shape matters (for a Pod it does,
//! and says where). So where the rule expects an object or an array, the view keeps either what
//! it read or the JSON type it found instead; everything else is skipped without a copy. A
//! repeated key is read each time, so the last one wins, as in serde_json's `Value`.

use std::borrow::Cow;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess};

use super::json::{for_each_element, for_each_field, AnyText, FromJson, JsonType, OneOf, Shaped};
use super::pod_patch::{ENV_NAME, FALSE_LIKE, OPT_OUT_LABEL};

/// The object under review, as far as the rule reads it. `Default` is a missing object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodView<'a>(Shaped<Pod<'a>>);

impl<'a> PodView<'a> {
    /// The Pod, or the type found when the object is not a JSON object.
    pub(super) fn pod(&self) -> Result<&Pod<'a>, JsonType> {
        self.0 .0.as_ref().map_err(|found| *found)
    }

    /// `.metadata.name`, when it is a string.
    pub fn name(&self) -> Option<&str> {
        self.pod().ok()?.metadata.name.as_deref()
    }

    /// `.metadata.generateName`, when it is a string.
    pub fn generate_name(&self) -> Option<&str> {
        self.pod().ok()?.metadata.generate_name.as_deref()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for PodView<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Shaped::deserialize(deserializer).map(PodView)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pod<'a> {
    /// Empty when `.metadata` is not an object: then it has no labels or names to read, and
    /// the API server's own validation refuses the Pod.
    pub metadata: Metadata<'a>,
    pub spec: Result<Spec, JsonType>,
}

impl<'de: 'a, 'a> FromJson<'de> for Pod<'a> {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        let mut metadata = Metadata::default();
        let mut spec = Shaped::default();
        for_each_field(map, &["metadata", "spec"], |name, map| {
            match name {
                "metadata" => {
                    metadata = map.next_value::<Shaped<Metadata>>()?.0.unwrap_or_default()
                }
                _ => spec = map.next_value()?,
            }
            Ok(())
        })?;
        Ok(Some(Pod {
            metadata,
            spec: spec.0,
        }))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Metadata<'a> {
    pub name: Option<Cow<'a, str>>,
    pub generate_name: Option<Cow<'a, str>>,
    /// The opt-out label's value when it is one of [`FALSE_LIKE`] (the only values the rule
    /// acts on, so nothing is copied), or the type found when `.labels` is not an object.
    pub labels: Result<Option<&'static str>, JsonType>,
}

impl Default for Metadata<'_> {
    fn default() -> Self {
        Metadata {
            name: None,
            generate_name: None,
            labels: Ok(None),
        }
    }
}

impl<'de: 'a, 'a> FromJson<'de> for Metadata<'a> {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        let mut metadata = Metadata::default();
        for_each_field(map, &["name", "generateName", "labels"], |name, map| {
            match name {
                "name" => metadata.name = map.next_value::<AnyText>()?.0,
                "generateName" => metadata.generate_name = map.next_value::<AnyText>()?.0,
                _ => {
                    metadata.labels = match map.next_value::<Shaped<Labels>>()?.0 {
                        Ok(Labels(opt_out)) => Ok(opt_out),
                        Err(JsonType::Null) => Ok(None),
                        Err(found) => Err(found),
                    }
                }
            }
            Ok(())
        })?;
        Ok(Some(metadata))
    }
}

/// The opt-out label's false-like value, if any.
struct Labels(Option<&'static str>);

impl<'de> FromJson<'de> for Labels {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        let mut opt_out = None;
        for_each_field(map, &[OPT_OUT_LABEL], |_, map| {
            opt_out = map.next_value_seed(OneOf(&FALSE_LIKE))?;
            Ok(())
        })?;
        Ok(Some(Labels(opt_out)))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Spec {
    /// Empty when absent or null, as the API server reads them.
    pub init_containers: Result<Vec<Container>, JsonType>,
    pub containers: Result<Vec<Container>, JsonType>,
}

impl<'de> FromJson<'de> for Spec {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        let mut init_containers = Ok(Vec::new());
        let mut containers = Ok(Vec::new());
        for_each_field(map, &["initContainers", "containers"], |name, map| {
            let list = match map.next_value::<Shaped<Containers>>()?.0 {
                Ok(Containers(list)) => Ok(list),
                Err(JsonType::Null) => Ok(Vec::new()),
                Err(found) => Err(found),
            };
            match name {
                "initContainers" => init_containers = list,
                _ => containers = list,
            }
            Ok(())
        })?;
        Ok(Some(Spec {
            init_containers,
            containers,
        }))
    }
}

struct Containers(Vec<Container>);

impl<'de> FromJson<'de> for Containers {
    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Option<Self>, A::Error> {
        let mut list = Vec::new();
        for_each_element(seq, |container: Shaped<ContainerEnv>| {
            list.push(container.0.map(|ContainerEnv(env)| env))
        })?;
        Ok(Some(Containers(list)))
    }
}

/// A container's `env`, or the type found when the container is not an object.
pub(super) type Container = Result<Env, JsonType>;

/// What a container's `env` says about the variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Env {
    /// No `env`, or `env: null`.
    Missing,
    /// A list with an entry named [`ENV_NAME`].
    SetsVariable,
    /// A list without one.
    LacksVariable,
    /// Not a list.
    Not(JsonType),
}

struct ContainerEnv(Env);

impl<'de> FromJson<'de> for ContainerEnv {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        let mut env = Env::Missing;
        for_each_field(map, &["env"], |_, map| {
            env = match map.next_value::<Shaped<EnvList>>()?.0 {
                Ok(EnvList {
                    sets_variable: true,
                }) => Env::SetsVariable,
                Ok(EnvList { .. }) => Env::LacksVariable,
                Err(JsonType::Null) => Env::Missing,
                Err(found) => Env::Not(found),
            };
            Ok(())
        })?;
        Ok(Some(ContainerEnv(env)))
    }
}

struct EnvList {
    sets_variable: bool,
}

impl<'de> FromJson<'de> for EnvList {
    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Option<Self>, A::Error> {
        let mut sets_variable = false;
        // An entry that is not an object, or whose name is not a string, names no variable.
        for_each_element(seq, |entry: Shaped<EnvEntry>| {
            sets_variable |= entry.0.is_ok_and(|entry| entry.names_variable)
        })?;
        Ok(Some(EnvList { sets_variable }))
    }
}

struct EnvEntry {
    names_variable: bool,
}

impl<'de> FromJson<'de> for EnvEntry {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        let mut names_variable = false;
        for_each_field(map, &["name"], |_, map| {
            names_variable = map.next_value_seed(OneOf(&[ENV_NAME]))?.is_some();
            Ok(())
        })?;
        Ok(Some(EnvEntry { names_variable }))
    }
}
