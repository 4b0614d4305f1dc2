//! The image tier's harness: containers of the project's images, run by the local Docker engine
//! through testcontainers (async runner, on the test's tokio runtime).
//!
//! testcontainers is pinned to 0.28.0 (docs/dependencies.md): its Docker client, bollard 0.21,
//! sends request paths without an API version (it builds `/v1.53/...` and then joins the absolute
//! path over it), so Debian bookworm's docker.io 20.10 answers them at its own version, 1.41.
//! What `docker run` flags did, a host config modifier does: the network mode `container:NAME`
//! (`with_network` would try to create a network of that name), the IPv6 sysctl, and no
//! published ports (an engine refuses publishing into another container's namespace).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use testcontainers::bollard::query_parameters::RemoveContainerOptionsBuilder;
use testcontainers::bollard::Docker;
use testcontainers::core::client::docker_client_instance;
use testcontainers::core::logs::LogFrame;
use testcontainers::core::ExecCommand;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, ContainerRequest, GenericImage, Image, ImageExt};

use crate::skip;

/// The tag `make docker-images` gives both images: the workspace version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The local bookworm base (`make docker-base`): `ip`, `iptables-save` of both backends, a shell
/// and perl, for the containers that stand in for a Pod's pause container and for a proxy.
pub fn base_image() -> GenericImage {
    GenericImage::new("apiserver-proxy-base", "bookworm")
}

pub fn sidecar_image() -> GenericImage {
    GenericImage::new("apiserver-proxy", VERSION)
}

pub fn webhook_image() -> GenericImage {
    GenericImage::new("apiserver-proxy-pod-webhook", VERSION)
}

/// `name:tag`, as the engine and the messages name an image.
fn reference(image: &GenericImage) -> String {
    format!("{}:{}", image.name(), image.tag())
}

/// The engine testcontainers talks to, if it answers.
async fn engine() -> Option<Docker> {
    let docker = docker_client_instance().await.ok()?;
    docker.ping().await.ok()?;
    Some(docker)
}

/// Whether an engine answers and the images are built; if not, the test is skipped loudly (a
/// failure with `REQUIRE_PRIVILEGED=1`).
pub async fn images_ready(test: &str) -> bool {
    let Some(docker) = engine().await else {
        skip(
            test,
            "no Docker engine answers (as root: make docker-engine)",
        );
        return false;
    };
    for image in [sidecar_image(), webhook_image(), base_image()] {
        let image = reference(&image);
        if docker.inspect_image(&image).await.is_err() {
            skip(
                test,
                &format!("image {image} is missing (make docker-images builds it)"),
            );
            return false;
        }
    }
    true
}

/// Removes the container `name` and its anonymous volumes, if there is one.
async fn remove(name: &str) {
    if let Some(docker) = engine().await {
        let options = RemoveContainerOptionsBuilder::new()
            .force(true)
            .v(true)
            .build();
        let _ = docker.remove_container(name, Some(options)).await;
    }
}

/// A running container, removed (with its anonymous volumes) when dropped, pass or fail; if
/// dropped by a failing test, it first prints what it logged.
#[derive(Debug)]
pub struct Container {
    pub name: String,
    /// Its stdout and stderr as they arrive, in arrival order.
    log: Arc<Mutex<Vec<u8>>>,
    container: ContainerAsync<GenericImage>,
}

impl Container {
    /// Starts `request` as `apiserver-proxy-test-<role>-<process id>-<counter>` (unique, so
    /// tests run in parallel) in the network namespace `network` (`none`, `host`, or
    /// [`Container::network`]), with `sysctls` set in it.
    pub async fn start(
        role: &str,
        request: ContainerRequest<GenericImage>,
        network: &str,
        sysctls: &[(&str, &str)],
    ) -> Self {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "apiserver-proxy-test-{role}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
        // A container left over from a killed earlier run of the same process id.
        remove(&name).await;
        let network = network.to_owned();
        let sysctls: HashMap<String, String> = sysctls
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        let request = request
            .with_container_name(&name)
            .with_log_consumer(move |frame: &LogFrame| {
                sink.lock()
                    .expect("the log buffer")
                    .extend_from_slice(frame.bytes());
            })
            .with_host_config_modifier(move |host| {
                host.network_mode = Some(network.clone());
                host.publish_all_ports = Some(false);
                host.port_bindings = None;
                if !sysctls.is_empty() {
                    host.sysctls = Some(sysctls.clone());
                }
            });
        match request.start().await {
            Ok(container) => Self {
                name,
                log,
                container,
            },
            Err(error) => {
                // testcontainers removes only what it started: a container the engine created
                // but could not start (a refused sysctl, say) would stay behind.
                remove(&name).await;
                panic!("starting {name}: {error}")
            }
        }
    }

    /// The network mode `container:<name>`: another container in this one's network
    /// namespace, as the containers of a Pod share the pause container's.
    pub fn network(&self) -> String {
        format!("container:{}", self.name)
    }

    /// Runs `command` in the container: (success, stdout, stderr).
    pub async fn exec(&self, command: &[&str]) -> (bool, String, String) {
        let mut exec = self
            .container
            .exec(ExecCommand::new(command.iter().copied()))
            .await
            .unwrap_or_else(|error| panic!("exec {command:?} in {}: {error}", self.name));
        // Both streams end when the command exits.
        let stdout = exec.stdout_to_vec().await.expect("the command's stdout");
        let stderr = exec.stderr_to_vec().await.expect("the command's stderr");
        // The engine records the exit code just after the streams close; the bound (10 s) only
        // keeps a broken engine from hanging the test.
        let mut ticks = tokio::time::interval(Duration::from_millis(5));
        for _ in 0..2000 {
            ticks.tick().await;
            if let Some(code) = exec.exit_code().await.expect("the exec's state") {
                return (
                    code == 0,
                    String::from_utf8_lossy(&stdout).into_owned(),
                    String::from_utf8_lossy(&stderr).into_owned(),
                );
            }
        }
        panic!(
            "{command:?} in {}: no exit code 10 s after its output ended",
            self.name
        )
    }

    /// Runs `command`, which must succeed: its stdout.
    pub async fn sh(&self, command: &[&str]) -> String {
        let (ok, stdout, stderr) = self.exec(command).await;
        assert!(ok, "{command:?} in {}: {stderr}", self.name);
        stdout
    }

    /// What the container wrote to stdout and stderr so far (as far as the engine has
    /// streamed it).
    pub fn logs(&self) -> String {
        let log = self
            .log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        String::from_utf8_lossy(&log).into_owned()
    }

    /// The process id of the container's main process, as the host sees it.
    pub async fn pid(&self) -> i64 {
        let inspect = self.inspect().await;
        inspect.state.and_then(|state| state.pid).expect("a pid")
    }

    /// Whether the container runs `--privileged`.
    pub async fn privileged(&self) -> bool {
        let inspect = self.inspect().await;
        inspect
            .host_config
            .and_then(|host| host.privileged)
            .expect("the privileged flag")
    }

    async fn inspect(&self) -> testcontainers::bollard::models::ContainerInspectResponse {
        let docker = engine().await.expect("the engine answers");
        docker
            .inspect_container(self.container.id(), None)
            .await
            .unwrap_or_else(|error| panic!("inspect {}: {error}", self.name))
    }

    /// `docker stop` (SIGTERM, then SIGKILL after 10 s): the exit code.
    pub async fn stop(&self) -> i64 {
        self.container
            .stop_with_timeout(Some(10))
            .await
            .unwrap_or_else(|error| panic!("stop {}: {error}", self.name));
        self.container
            .exit_code()
            .await
            .expect("the container's state")
            .expect("an exit code once stopped")
    }
}

impl Drop for Container {
    /// A failing test says what its containers logged; testcontainers then removes them.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- {} logged:\n{}--- end of {}",
                self.name,
                self.logs(),
                self.name
            );
        }
    }
}
