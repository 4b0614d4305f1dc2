//! The rule, whole, in the shape of kube's `mutate()`: which reviews are considered, which Pods
//! are left alone, which containers get `KUBERNETES_SERVICE_HOST`, and the JSON Patch operations
//! that add it. It reads a [`Request`]: the facts serde decodes from the body (only the fields
//! read here), kept with the JSON type found wherever a field has an unexpected one. Writing the
//! patch out is [`super::answer`]'s job.

use std::borrow::Cow;
use std::fmt;

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer};

use super::json::{AnyOf, AnyText, Expected, Flag, JsonType, List, Shaped};

/// The variable the webhook sets; client-go's in-cluster config reads it.
pub const ENV_NAME: &str = "KUBERNETES_SERVICE_HOST";

/// A Pod labelled with this key and a false-like value is left alone.
pub const OPT_OUT_LABEL: &str = "apiserver-proxy.networking.gardener.cloud/inject";

/// The values that opt a Pod out: those of the clusters' `objectSelector`, plus `disable`.
pub const FALSE_LIKE: [&str; 7] = ["false", "False", "FALSE", "f", "F", "0", "disable"];

/// The annotation the kubelet puts on the mirror of a static Pod.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The longest `initContainers`, `containers` or `env` list patched. Kubernetes sets no limit,
/// but the API server stores at most about 1.5 MiB per object, and real Pods have tens of
/// containers and env entries, not thousands. Past it the Pod is allowed without a patch (and
/// with a warning): decoding keeps no more than this many elements of a list, and the answer
/// holds at most two lists' operations, so no review costs more than a few MiB however long
/// its lists (docs/webhook.md has the figures).
pub const MAX_ITEMS: usize = 1024;

/// The decision on one decodable review. Every outcome answers `allowed: true`: the webhook never
/// denies a Pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Some containers lacked the variable: the answer carries a patch.
    Patched { containers: usize },
    /// Every container sets the variable already.
    Unchanged,
    /// The Pod carries the opt-out label with a false-like value.
    OptedOut { value: String },
    /// The mirror of a static Pod: the kubelet runs the static Pod's own manifest, so a patch
    /// here would only make the API show a variable the containers do not have.
    MirrorPod,
    /// Not the CREATE of a core/v1 Pod: nothing to do (a Pod's env cannot change after creation,
    /// so a patch on UPDATE would only make the update fail).
    NotAPodCreate { kind: String, operation: String },
    /// The Pod's JSON is not shaped like a Pod: let it through untouched, the API server's own
    /// validation will say what is wrong with it.
    PodUnreadable { reason: PodError },
    /// A list of the Pod is longer than any real Pod's; patching it would cost memory in
    /// proportion. Allowed without a patch, with a warning in the answer.
    TooLarge { path: String, len: usize },
}

/// Why a Pod's JSON cannot be read. The review still answers `allowed: true`: this says why
/// nothing was patched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path} is {found}: expected {expected}")]
pub struct PodError {
    /// Where in the Pod, as a jq-like path (`.spec.containers[1].env`).
    pub path: String,
    /// The JSON type found there.
    pub found: &'static str,
    pub expected: &'static str,
}

impl PodError {
    fn new(path: impl Into<String>, found: JsonType, expected: &'static str) -> Self {
        Self {
            path: path.into(),
            found: found.as_str(),
            expected,
        }
    }
}

/// One RFC 6902 operation; this webhook only ever adds the variable to a container's `env`:
/// a new `env` holding just the variable (`add /spec/containers/1/env`), or the variable at the
/// end of an existing one (`add /spec/containers/1/env/-`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddOperation {
    /// `initContainers` or `containers`.
    pub list: &'static str,
    pub index: usize,
    /// Whether the container has an `env` already, to which the variable is appended.
    pub append: bool,
}

/// Decides on one review: what was decided, and the operations to send (none unless
/// [`Outcome::Patched`]).
pub fn mutate(request: &Request) -> (Outcome, Vec<AddOperation>) {
    if let Some(outcome) = not_a_pod_create(request) {
        return (outcome, Vec::new());
    }
    match pod_patch(request) {
        Ok(patch) if patch.is_empty() => (Outcome::Unchanged, patch),
        Ok(patch) => (
            Outcome::Patched {
                containers: patch.len(),
            },
            patch,
        ),
        Err(outcome) => (outcome, Vec::new()),
    }
}

/// Only the CREATE of a core/v1 Pod, not of a subresource such as `binding`, is considered.
fn not_a_pod_create(request: &Request) -> Option<Outcome> {
    let gvk = &request.kind;
    let is_pod = gvk.group.is_empty() && &*gvk.version == "v1" && &*gvk.kind == "Pod";
    let subresource = request.sub_resource.as_deref().unwrap_or_default();
    if is_pod && &*request.operation == "CREATE" && subresource.is_empty() {
        return None;
    }
    let kind = match (&*gvk.group, subresource) {
        ("", "") => format!("{}/{}", gvk.version, gvk.kind),
        ("", sub) => format!("{}/{} subresource {sub}", gvk.version, gvk.kind),
        (group, _) => format!("{group}/{}/{}", gvk.version, gvk.kind),
    };
    Some(Outcome::NotAPodCreate {
        kind,
        operation: request.operation.to_string(),
    })
}

/// The operations for a Pod, or the outcome that leaves it alone. The first thing found wrong,
/// in the order read here, is the one reported.
fn pod_patch(request: &Request) -> Result<Vec<AddOperation>, Outcome> {
    let unreadable = |reason| Outcome::PodUnreadable { reason };
    let pod = request
        .object
        .0
        .as_ref()
        .map_err(|found| unreadable(PodError::new("the Pod", *found, "an object")))?;
    // Metadata that is not an object has no labels or annotations to read; the API server's
    // validation refuses the Pod anyway.
    if let Ok(metadata) = &pod.metadata.0 {
        let labels = read(&metadata.labels, || ".metadata.labels".into(), "an object")
            .map_err(unreadable)?;
        let value = labels.and_then(|labels| labels.opt_out.as_deref());
        if let Some(value) = value.filter(|value| FALSE_LIKE.contains(value)) {
            return Err(Outcome::OptedOut {
                value: value.to_owned(),
            });
        }
        let annotations = read(
            &metadata.annotations,
            || ".metadata.annotations".into(),
            "an object",
        )
        .map_err(unreadable)?;
        if annotations.is_some_and(|annotations| annotations.mirror.is_some()) {
            return Err(Outcome::MirrorPod);
        }
    }
    let spec = pod
        .spec
        .0
        .as_ref()
        .map_err(|found| unreadable(PodError::new(".spec", *found, "an object")))?;
    // Init containers first, as the original webhook ordered its patch. Ephemeral containers
    // are never patched: a Pod cannot have any when it is created (docs/webhook.md).
    let lists = [
        ("initContainers", &spec.init_containers),
        ("containers", &spec.containers),
    ];
    let mut patch = Vec::new();
    for (list, containers) in lists {
        // Paths are written out only for a message: a review that needs none allocates none.
        let path = || format!(".spec.{list}");
        let Some(containers) = read(containers, path, "an array").map_err(unreadable)? else {
            continue;
        };
        let containers = complete(containers.complete(), containers.len, path)?;
        for (index, container) in containers.iter().enumerate() {
            let path = || format!("{}[{index}]", path());
            let container = container
                .0
                .as_ref()
                .map_err(|found| unreadable(PodError::new(path(), *found, "an object")))?;
            let path = || format!("{}.env", path());
            let append = match read(&container.env, path, "an array").map_err(unreadable)? {
                None => false,
                // The Pod's author set it, with `value`, `valueFrom` or neither (an empty
                // value): the webhook keeps out.
                Some(env) if complete(env.complete(), env.len, path)? => continue,
                Some(_) => true,
            };
            patch.push(AddOperation {
                list,
                index,
                append,
            });
        }
    }
    Ok(patch)
}

/// What a field holds: `None` when it is missing or null (as the API server reads them), or
/// where it has an unexpected type.
fn read<'v, T>(
    field: &'v Shaped<T>,
    path: impl FnOnce() -> String,
    expected: &'static str,
) -> Result<Option<&'v T>, PodError> {
    match &field.0 {
        Ok(value) => Ok(Some(value)),
        Err(JsonType::Null) => Ok(None),
        Err(found) => Err(PodError::new(path(), *found, expected)),
    }
}

/// What a list says, unless it is longer than any real Pod's (see [`MAX_ITEMS`]).
fn complete<T>(read: Option<T>, len: usize, path: impl FnOnce() -> String) -> Result<T, Outcome> {
    read.ok_or_else(|| Outcome::TooLarge { path: path(), len })
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Patched { containers } => {
                write!(f, "added the variable to {containers} container(s)")
            }
            Outcome::Unchanged => f.write_str("every container sets the variable already"),
            Outcome::OptedOut { value } => {
                write!(f, "the Pod opted out with label {OPT_OUT_LABEL}={value}")
            }
            Outcome::MirrorPod => write!(
                f,
                "the Pod is the mirror of a static Pod ({MIRROR_ANNOTATION}): \
                 the kubelet runs the static Pod's own manifest"
            ),
            Outcome::NotAPodCreate { kind, operation } => {
                write!(f, "{operation} of {kind} is not the creation of a Pod")
            }
            Outcome::PodUnreadable { reason } => {
                write!(
                    f,
                    "allowed without a patch: the Pod cannot be read: {reason}"
                )
            }
            Outcome::TooLarge { path, len } => write!(
                f,
                "allowed without {ENV_NAME}: {path} has {len} elements, more than the \
                 {MAX_ITEMS} this webhook patches"
            ),
        }
    }
}

// === The facts ===
//
// The request as the rule reads it, decoded by serde straight from the body: strings are
// borrowed, and every field not named here is skipped without a copy. A field the rule reads
// that has an unexpected type is kept as that type ([`Shaped`]): a review of any object is
// answered. serde refuses a repeated field; the API server never repeats one (Go's
// encoding/json cannot). serde borrows a `Cow<str>` but copies one inside an `Option`: four
// small copies per review (12 allocations instead of 8 for the seed's sample), which measured
// no slower than a hand-written borrowing visitor, so the plain types stay.

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Request<'a> {
    #[serde(borrow)]
    pub uid: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: GroupVersionKind<'a>,
    #[serde(borrow)]
    pub operation: Cow<'a, str>,
    #[serde(default, borrow)]
    pub sub_resource: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub object: Shaped<Pod<'a>>,
}

#[derive(Debug, Deserialize)]
pub struct GroupVersionKind<'a> {
    #[serde(borrow)]
    pub group: Cow<'a, str>,
    #[serde(borrow)]
    pub version: Cow<'a, str>,
    #[serde(borrow)]
    pub kind: Cow<'a, str>,
}

#[derive(Debug, Deserialize)]
pub struct Pod<'a> {
    #[serde(default, borrow)]
    pub metadata: Shaped<Metadata<'a>>,
    #[serde(default)]
    pub spec: Shaped<Spec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata<'a> {
    #[serde(default, borrow)]
    pub name: AnyText<'a>,
    #[serde(default, borrow)]
    pub generate_name: AnyText<'a>,
    #[serde(default, borrow)]
    pub labels: Shaped<Labels<'a>>,
    #[serde(default)]
    pub annotations: Shaped<Annotations>,
}

#[derive(Debug, Deserialize)]
pub struct Labels<'a> {
    /// [`OPT_OUT_LABEL`] (serde's `rename` takes only a literal).
    #[serde(
        rename = "apiserver-proxy.networking.gardener.cloud/inject",
        default,
        borrow
    )]
    pub opt_out: AnyText<'a>,
}

#[derive(Debug, Deserialize)]
pub struct Annotations {
    /// [`MIRROR_ANNOTATION`], whatever its value: the kubelet's own test is the key's presence.
    #[serde(rename = "kubernetes.io/config.mirror", default)]
    pub mirror: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    #[serde(default)]
    pub init_containers: Shaped<List<Shaped<Container>, MAX_ITEMS>>,
    #[serde(default)]
    pub containers: Shaped<List<Shaped<Container>, MAX_ITEMS>>,
}

#[derive(Debug, Deserialize)]
pub struct Container {
    /// Whether any entry is named [`ENV_NAME`].
    #[serde(default)]
    pub env: Shaped<AnyOf<Shaped<EnvVar>, MAX_ITEMS>>,
}

/// An `env` entry, as whether it is named [`ENV_NAME`].
#[derive(Debug, Deserialize)]
pub struct EnvVar {
    #[serde(rename = "name", default, deserialize_with = "names_ours")]
    pub sets_ours: bool,
}

/// An entry that is not an object, or whose name is not a string, names no variable.
impl Flag for Shaped<EnvVar> {
    fn is_set(&self) -> bool {
        self.0.as_ref().is_ok_and(|var| var.sets_ours)
    }
}

fn names_ours<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    Ok(AnyText::deserialize(deserializer)?.as_deref() == Some(ENV_NAME))
}

/// Every struct the rule reads is read from a JSON object.
macro_rules! read_from_objects {
    ($($fact:ty),*) => {
        $(impl Expected for $fact {
            const TYPE: JsonType = JsonType::Object;
        })*
    };
}

read_from_objects!(
    Pod<'_>,
    Metadata<'_>,
    Labels<'_>,
    Annotations,
    Spec,
    Container,
    EnvVar
);

#[cfg(test)]
mod long_env_tests;
#[cfg(test)]
mod tests;
