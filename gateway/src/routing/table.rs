//! The routing snapshot: which funkos exist and which instances each one has.
//!
//! A [`RouteTable`] is immutable once built; discovery builds a new one from Docker's state and
//! swaps it in ([`SharedTable`]). What changes between rebuilds, an instance's health and its
//! requests in flight, lives in [`InstanceState`], which a rebuild carries over by container id,
//! so a resync never forgets that an instance was failing.
//!
//! [`build`] turns a Docker container list into a table and is pure, so it is tested without
//! Docker.
//!
//! The table is data: it knows nothing of what observes it. Each funko carries a value of the
//! caller's type `S` (the gateway's metric handles, [`crate::Routes`]), made by the caller
//! once per funko and carried over on rebuilds.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};
use faaso::conventions::{instance_port, parse_instance_name};
use faaso::settings::Settings;
use http::HeaderValue;

use super::instance::docker_health;
pub use super::instance::{DockerHealth, InFlight, Instance, InstanceState, PeerTimeouts};

/// The current snapshot, swapped atomically by discovery and read lock-free by requests.
pub type SharedTable<S> = Arc<ArcSwap<RouteTable<S>>>;

/// All funkos the gateway knows of.
#[derive(Debug)]
pub struct RouteTable<S> {
    /// Looked up on every request: a fast hash (seeded per process) rather than SipHash.
    funkos: HashMap<Box<str>, Arc<Funko<S>>, foldhash::fast::RandomState>,
    /// Custom domains (lowercase) → the funko they are routed to.
    domains: HashMap<Box<str>, Arc<Funko<S>>, foldhash::fast::RandomState>,
    /// Who owns each claimed domain, and the refused claims.
    pub claims: faaso::store::state::DomainClaims,
}

impl<S> Default for RouteTable<S> {
    fn default() -> Self {
        RouteTable {
            funkos: HashMap::default(),
            domains: HashMap::default(),
            claims: Default::default(),
        }
    }
}

/// One funko: its name and its running instances (possibly none: a funko whose containers are
/// stopped, or whose image exists, is known but cannot be served).
#[derive(Debug)]
pub struct Funko<S> {
    pub name: Arc<str>,
    pub instances: Vec<Arc<Instance>>,
    /// The caller's per-funko value (the gateway's metric handles), made once and carried
    /// over on rebuilds.
    pub stats: Arc<S>,
    /// `X-Forwarded-Prefix` values, made once: `/funko/<name>` and `/faaso/<name>`.
    pub forwarded_prefix: [HeaderValue; 2],
    /// Its largest request body (`faaso.limits.max_body`), when it sets one.
    pub max_body: Option<u64>,
    /// Its settings labels that could not be read (left at their defaults).
    pub setting_errors: Vec<String>,
    /// Its in-flight limit and queue (`faaso.limits.max_inflight`), when it sets one.
    pub gate: Option<Arc<crate::routing::gate::Gate>>,
    /// Its settings, from its newest running container, or from its image when none runs.
    pub settings: Settings,
    /// Its cron triggers (`faaso.cron.<id>.*`), from the same labels as its settings.
    pub triggers: Vec<faaso::triggers::Trigger>,
    /// For a funko the gateway scales ([`Settings::scales`]): its requests, counted for the
    /// scaler (carried over on rebuilds).
    pub activity: Option<Arc<Activity>>,
    /// Its per-client rate limit (`faaso.limits.rate`), carried over while the setting stays.
    pub rate: Option<Arc<crate::access::rate::RateLimiter>>,
    /// While a canary runs beside serving instances: how requests are split between them.
    pub canary: Option<CanarySplit>,
}

/// A funko's requests split between its serving instances (`instances[..stable]`) and its
/// canary instances (the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanarySplit {
    /// The canary's share, in percent (1 to 99).
    pub percent: u8,
    /// Each client goes to one release, by a hash of its address.
    pub sticky: bool,
    /// How many instances, from the first, are serving ones.
    pub stable: usize,
}

/// A sticky client's draw (0 to 99): the same address (an IPv6 /64) always gets the same.
pub fn sticky_draw(ip: IpAddr) -> u8 {
    let bits = match ip {
        IpAddr::V4(v4) => u64::from(v4.to_bits()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u64::from(v4.to_bits()),
            None => (v6.to_bits() >> 64) as u64,
        },
    };
    // A fixed mix (splitmix64's finalizer): the same on every worker and after a restart.
    let mut x = bits.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    (x % 100) as u8
}

/// Which of a funko's releases a request goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    Stable,
    Canary,
}

impl Release {
    pub fn other(self) -> Release {
        match self {
            Release::Stable => Release::Canary,
            Release::Canary => Release::Stable,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Release::Stable => "stable",
            Release::Canary => "canary",
        }
    }
}

impl CanarySplit {
    /// The release a request goes to: by `draw` (0 to 99: a random number, or a hash of the
    /// client's address when sticky).
    pub fn release(&self, draw: u8) -> Release {
        if draw < self.percent {
            Release::Canary
        } else {
            Release::Stable
        }
    }

    /// The instances (by position) a request for `release` must not go to, as tried ones.
    pub fn others(&self, release: Release, instances: usize) -> crate::routing::balancer::Tried {
        let mut tried = crate::routing::balancer::Tried::default();
        let range = match release {
            Release::Stable => self.stable..instances,
            Release::Canary => 0..self.stable,
        };
        for index in range {
            tried.insert(index);
        }
        tried
    }
}

/// Requests a scaled funko has had, read by the scaler to tell an idle funko.
#[derive(Debug, Default)]
pub struct Activity {
    requests: AtomicU64,
}

impl Activity {
    /// Counts a request (one relaxed add).
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl<S> crate::routing::gate::Instances for Funko<S> {
    fn instances(&self) -> &[Arc<Instance>] {
        &self.instances
    }
}

impl<S> Funko<S> {
    /// A funko entry; the header values derived from the name are made here, once.
    pub fn new(name: &str, instances: Vec<Arc<Instance>>, stats: Arc<S>) -> Funko<S> {
        // Names come from container and image names that passed the naming rule, so they are
        // valid header text; an empty value is the fallback that can never be sent wrong.
        let prefix = |route: &str| {
            HeaderValue::try_from(format!("/{route}/{name}"))
                .unwrap_or(HeaderValue::from_static(""))
        };
        Funko {
            name: Arc::from(name),
            instances,
            stats,
            forwarded_prefix: [prefix("funko"), prefix("faaso")],
            max_body: None,
            setting_errors: Vec::new(),
            gate: None,
            settings: Settings::default(),
            triggers: Vec::new(),
            activity: None,
            rate: None,
            canary: None,
        }
    }

    /// For a funko in a canary: the release a request goes to (`draw`, 0 to 99, picks it) and
    /// the instances it must skip. When the chosen release has no instance to take the
    /// request, the other one serves it: a split never fails a request.
    pub fn split(&self, draw: u8) -> Option<(Release, crate::routing::balancer::Tried)> {
        let split = self.canary?;
        let chosen = split.release(draw);
        [chosen, chosen.other()].into_iter().find_map(|release| {
            let others = split.others(release, self.instances.len());
            let open = self.instances.iter().enumerate().any(|(index, instance)| {
                !others.contains(index) && crate::routing::balancer::available(instance)
            });
            open.then_some((release, others))
        })
    }

    /// Whether the gateway starts an instance for a request that finds none: the funko allows
    /// scale to zero (`scaling.min: 0`) and has no instance that could take the request (none
    /// running, or only ones being drained or paused).
    pub fn wakes_on_request(&self) -> bool {
        self.settings.scale_min == Some(0)
            && self
                .instances
                .iter()
                .all(|i| i.state.is_draining() || i.state.is_paused())
    }
}

impl<S> RouteTable<S> {
    /// The funko named `name`, if it is known.
    pub fn get(&self, name: &str) -> Option<&Arc<Funko<S>>> {
        self.funkos.get(name)
    }

    pub fn funkos(&self) -> impl Iterator<Item = &Arc<Funko<S>>> {
        self.funkos.values()
    }

    /// Every instance of every funko.
    pub fn instances(&self) -> impl Iterator<Item = &Arc<Instance>> {
        self.funkos.values().flat_map(|f| f.instances.iter())
    }

    /// The funko a custom domain (a lowercase host name) goes to.
    pub fn by_domain(&self, host: &str) -> Option<&Arc<Funko<S>>> {
        self.domains.get(host)
    }

    /// Whether any funko has a custom domain (requests skip the host lookup when none has).
    pub fn has_domains(&self) -> bool {
        !self.domains.is_empty()
    }

    /// Number of funkos.
    pub fn len(&self) -> usize {
        self.funkos.len()
    }

    pub fn is_empty(&self) -> bool {
        self.funkos.is_empty()
    }
}

/// The inputs of a rebuild besides the container list.
pub struct BuildInput<'a, S> {
    /// The network instances are reached on.
    pub network: &'a str,
    /// Funkos known from their images (`faaso-<name>`), with the labels of their `:latest`
    /// image (their settings when no instance runs).
    pub image_funkos: &'a [ImageFunko],
    /// Containers being stopped: no new requests go to them.
    pub stopping: &'a HashSet<String>,
    /// The table being replaced, whose instance states and funko values are carried over.
    pub previous: &'a RouteTable<S>,
    /// Makes the value of a funko that is new in this table.
    pub new_stats: &'a dyn Fn(&str) -> S,
    /// Connection settings of the instances' peers.
    pub timeouts: PeerTimeouts,
    /// Who held each domain before the gateway started (what it recorded), for domains the
    /// previous table does not route.
    pub held_domains: &'a std::collections::BTreeMap<String, String>,
}

/// A funko known from its images.
#[derive(Debug, Clone, Default)]
pub struct ImageFunko {
    pub name: String,
    /// The labels of `faaso-<name>:latest`, if that tag exists.
    pub labels: Option<HashMap<String, String>>,
}

/// Builds a table from Docker's container list (`all=true`, so stopped containers still make
/// their funko known).
pub fn build<S>(containers: &[ContainerSummary], input: &BuildInput<'_, S>) -> RouteTable<S> {
    let previous_states: HashMap<&str, &Arc<InstanceState>> = input
        .previous
        .instances()
        .map(|i| (i.id.as_str(), &i.state))
        .collect();
    let mut instances: HashMap<&str, Vec<Arc<Instance>>> = HashMap::new();
    // Each funko's settings, from the labels of its newest running container (Docker merges
    // the image's labels with the container's own).
    type Labels = HashMap<String, String>;
    let mut newest: HashMap<&str, (i64, Option<&Labels>)> = HashMap::new();
    let mut image_labels: HashMap<&str, &HashMap<String, String>> = HashMap::new();
    for image in input.image_funkos {
        instances.entry(image.name.as_str()).or_default();
        if let Some(labels) = &image.labels {
            image_labels.insert(image.name.as_str(), labels);
        }
    }
    for container in containers {
        let Some((funko, instance)) = instance_of(container, input, &previous_states) else {
            continue;
        };
        let list = instances.entry(funko).or_default();
        if let Some(instance) = instance {
            list.push(Arc::new(instance));
            let created = container.created.unwrap_or_default();
            if newest.get(funko).is_none_or(|(at, _)| created > *at) {
                newest.insert(funko, (created, container.labels.as_ref()));
            }
        }
    }
    let funkos = instances
        .into_iter()
        .map(|(name, mut instances)| {
            // A stable order makes balancing and debugging predictable across rebuilds; serving
            // instances first, then the canary's.
            instances
                .sort_by(|a, b| (a.canary.is_some(), &a.name).cmp(&(b.canary.is_some(), &b.name)));
            let stable = instances.iter().filter(|i| i.canary.is_none()).count();
            let split = instances
                .get(stable)
                .and_then(|i| i.canary)
                .filter(|_| stable > 0)
                .map(|(percent, sticky)| CanarySplit {
                    percent,
                    sticky,
                    stable,
                });
            let stats = match input.previous.get(name) {
                Some(previous) => Arc::clone(&previous.stats),
                None => Arc::new((input.new_stats)(name)),
            };
            let previous = input.previous.get(name);
            let previous_gate = previous.and_then(|f| f.gate.clone());
            let previous_activity = previous.and_then(|f| f.activity.clone());
            let previous_rate = previous.and_then(|f| f.rate.clone());
            let mut funko = Funko::new(name, instances, stats);
            funko.canary = split;
            // No running instance: the settings its next one will have, its image's.
            let labels = match newest.get(name) {
                Some((_, labels)) => *labels,
                None => image_labels.get(name).copied(),
            };
            let (read, errors) = Settings::from_labels(labels);
            let (triggers, trigger_errors) = faaso::triggers::Trigger::from_labels(labels);
            funko.max_body = read.max_body;
            funko.setting_errors = errors
                .iter()
                .chain(&trigger_errors)
                .map(ToString::to_string)
                .collect();
            funko.triggers = triggers;
            funko.gate = read.max_inflight.map(|cap| {
                let cap = cap as usize;
                let timeout = read
                    .queue_timeout
                    .unwrap_or(crate::routing::gate::DEFAULT_QUEUE_TIMEOUT);
                // The same setting keeps its queue (and the requests waiting in it).
                match previous_gate {
                    Some(gate) if gate.cap == cap && gate.queue_timeout == timeout => gate,
                    _ => Arc::new(crate::routing::gate::Gate::new(cap, timeout)),
                }
            });
            if read.scales() {
                funko.activity = Some(previous_activity.unwrap_or_default());
            }
            funko.rate = read.rate.map(|rate| {
                let burst = read.burst();
                // The same setting keeps its clients' counts.
                match previous_rate {
                    Some(limiter) if limiter.rate == rate && limiter.burst == burst => limiter,
                    _ => Arc::new(crate::access::rate::RateLimiter::new(rate, burst)),
                }
            });
            funko.settings = read;
            (Box::from(name), Arc::new(funko))
        })
        .collect();
    let funkos: HashMap<Box<str>, Arc<Funko<S>>, foldhash::fast::RandomState> = funkos;
    let claims = super::domains::decide(
        funkos.values().filter_map(|f| {
            f.settings
                .domains
                .as_deref()
                .map(|domains| (&*f.name, domains))
        }),
        |domain| {
            input
                .previous
                .claims
                .owners
                .get(domain)
                .or_else(|| input.held_domains.get(domain))
                .map(String::as_str)
        },
    );
    let domains = claims
        .owners
        .iter()
        .filter_map(|(domain, owner)| {
            let funko = funkos.get(owner.as_str())?;
            Some((Box::from(domain.as_str()), Arc::clone(funko)))
        })
        .collect();
    RouteTable {
        funkos,
        domains,
        claims,
    }
}

/// The funko a container belongs to (by name), and the instance it is when it can be routed to.
fn instance_of<'c, S>(
    container: &'c ContainerSummary,
    input: &BuildInput<'_, S>,
    previous_states: &HashMap<&str, &Arc<InstanceState>>,
) -> Option<(&'c str, Option<Instance>)> {
    let container_name = container.names.as_ref()?.first()?;
    let parsed = parse_instance_name(container_name)?;
    let id = container.id.as_deref()?;
    let paused = container.state == Some(ContainerSummaryStateEnum::PAUSED);
    let running = container.state == Some(ContainerSummaryStateEnum::RUNNING);
    if !(running || paused) || input.stopping.contains(id) {
        return Some((parsed.funko, None));
    }
    let Some(ip) = network_ip(container, input.network) else {
        return Some((parsed.funko, None));
    };
    let port = instance_port(container.labels.as_ref());
    let state: Arc<InstanceState> = previous_states
        .get(id)
        .map(|state| Arc::clone(state))
        .unwrap_or_default();
    // A paused container is a known instance, out of routing until it is unpaused.
    state.observe_paused(paused);
    let mut timeouts = input.timeouts;
    // The funko's own upstream timeout (`faaso.limits.timeout`) replaces `read_timeout`.
    if let Some(timeout) = Settings::from_labels(container.labels.as_ref()).0.timeout {
        timeouts.read = timeout;
    }
    let mut instance = Instance::new(
        id.to_string(),
        container_name.trim_start_matches('/').to_string(),
        SocketAddr::new(ip, port),
        docker_health(container.status.as_deref().unwrap_or("")),
        state,
        timeouts,
    );
    instance.active_checks = faaso::conventions::active_checks(container.labels.as_ref());
    instance.canary = faaso::conventions::canary(container.labels.as_ref());
    Some((parsed.funko, Some(instance)))
}

/// The container's address on `network` (never "the first network": it may be on several).
fn network_ip(container: &ContainerSummary, network: &str) -> Option<IpAddr> {
    container
        .network_settings
        .as_ref()?
        .networks
        .as_ref()?
        .get(network)?
        .ip_address
        .as_deref()?
        .parse()
        .ok()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bollard::models::{ContainerSummaryNetworkSettings, EndpointSettings};
    use std::time::Duration;

    pub fn container(
        id: &str,
        name: &str,
        state: ContainerSummaryStateEnum,
        networks: &[(&str, &str)],
        status: &str,
    ) -> ContainerSummary {
        ContainerSummary {
            id: Some(id.to_string()),
            names: Some(vec![format!("/{name}")]),
            state: Some(state),
            status: Some(status.to_string()),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: Some(
                    networks
                        .iter()
                        .map(|(net, ip)| {
                            let endpoint = EndpointSettings {
                                ip_address: Some(ip.to_string()),
                                ..Default::default()
                            };
                            (net.to_string(), endpoint)
                        })
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    fn build_simple(containers: &[ContainerSummary], previous: &RouteTable<()>) -> RouteTable<()> {
        build(
            containers,
            &BuildInput {
                network: "faaso-net",
                image_funkos: &[ImageFunko {
                    name: "imageonly".to_string(),
                    labels: None,
                }],
                stopping: &HashSet::from(["stopping1".to_string()]),
                previous,
                new_stats: &|_| (),
                timeouts: PeerTimeouts::default(),
                held_domains: &Default::default(),
            },
        )
    }

    use ContainerSummaryStateEnum::{EXITED, RUNNING};

    #[test]
    fn a_canary_gets_its_share_and_a_release_without_instances_falls_back() {
        let mut containers = vec![
            container(
                "s1",
                "faaso-split-aaaaaa",
                RUNNING,
                &[("faaso-net", "10.0.0.1")],
                "Up",
            ),
            container(
                "s2",
                "faaso-split-bbbbbb",
                RUNNING,
                &[("faaso-net", "10.0.0.2")],
                "Up",
            ),
            container(
                "c1",
                "faaso-split-cccccc",
                RUNNING,
                &[("faaso-net", "10.0.0.3")],
                "Up",
            ),
        ];
        containers[2].labels = Some(HashMap::from([
            ("faaso.canary".to_string(), "20".to_string()),
            ("faaso.canary.sticky".to_string(), "true".to_string()),
        ]));
        let table = build_simple(&containers, &RouteTable::default());
        let funko = table.get("split").unwrap();
        let split = funko.canary.unwrap();
        assert_eq!((split.percent, split.sticky, split.stable), (20, true, 2));
        assert_eq!(&*funko.instances[2].name, "faaso-split-cccccc");
        // Draws below the share go to the canary (index 2), the rest to the serving two.
        let (release, skip) = funko.split(19).unwrap();
        assert_eq!(release, Release::Canary);
        assert!(skip.contains(0) && skip.contains(1) && !skip.contains(2));
        let (release, skip) = funko.split(20).unwrap();
        assert_eq!(release, Release::Stable);
        assert!(!skip.contains(0) && skip.contains(2));
        // Over many draws the share holds.
        let canary = (0..100u8)
            .filter(|d| funko.split(*d).unwrap().0 == Release::Canary)
            .count();
        assert_eq!(canary, 20);
        // The canary instance is out: its requests go to the serving release.
        funko.instances[2].state.connect_failed();
        assert_eq!(funko.split(5).unwrap().0, Release::Stable);
        // Only canary instances: no split.
        let only = build_simple(&containers[2..], &RouteTable::default());
        assert!(only.get("split").unwrap().canary.is_none());
        // A sticky client always draws the same.
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(sticky_draw(ip), sticky_draw(ip));
        let spread: HashSet<u8> = (0..=255u8)
            .map(|n| sticky_draw(IpAddr::from([10, 0, 0, n])))
            .collect();
        assert!(
            spread.len() > 80,
            "draws spread over 0..100: {}",
            spread.len()
        );
    }

    #[test]
    fn domains_route_to_their_holder_and_a_second_claim_is_refused() {
        let claiming = |name: &str, domains: &str| ImageFunko {
            name: name.to_string(),
            labels: Some(HashMap::from([(
                "faaso.domains".to_string(),
                domains.to_string(),
            )])),
        };
        let input = |images: &[ImageFunko], previous: &RouteTable<()>| -> RouteTable<()> {
            build(
                &[],
                &BuildInput {
                    network: "faaso-net",
                    image_funkos: images,
                    stopping: &HashSet::new(),
                    previous,
                    new_stats: &|_| (),
                    timeouts: PeerTimeouts::default(),
                    held_domains: &Default::default(),
                },
            )
        };
        let first = input(
            &[claiming("zeta", "api.example.com")],
            &RouteTable::default(),
        );
        assert_eq!(&*first.by_domain("api.example.com").unwrap().name, "zeta");
        assert!(first.has_domains());
        // alpha comes later and sorts first, but zeta held the domain.
        let images = [
            claiming("zeta", "api.example.com"),
            claiming("alpha", "api.example.com,www.example.com"),
        ];
        let second = input(&images, &first);
        assert_eq!(&*second.by_domain("api.example.com").unwrap().name, "zeta");
        assert_eq!(&*second.by_domain("www.example.com").unwrap().name, "alpha");
        assert_eq!(second.claims.refused.len(), 1);
        assert_eq!(second.claims.refused[0].funko, "alpha");
        assert!(second.by_domain("other.example.com").is_none());
    }

    #[test]
    fn a_funko_at_zero_has_its_images_settings_and_keeps_its_activity() {
        let labels = |min: &str| {
            Some(HashMap::from([
                ("faaso.scale.min".to_string(), min.to_string()),
                ("faaso.scale.max".to_string(), "3".to_string()),
            ]))
        };
        let input = |images: &[ImageFunko], previous: &RouteTable<()>| -> RouteTable<()> {
            build(
                &[],
                &BuildInput {
                    network: "faaso-net",
                    image_funkos: images,
                    stopping: &HashSet::new(),
                    previous,
                    new_stats: &|_| (),
                    timeouts: PeerTimeouts::default(),
                    held_domains: &Default::default(),
                },
            )
        };
        let images = [
            ImageFunko {
                name: "sleepy".to_string(),
                labels: labels("0"),
            },
            // An older release's tag names the funko too, without settings of its own.
            ImageFunko {
                name: "sleepy".to_string(),
                labels: None,
            },
            ImageFunko {
                name: "plain".to_string(),
                labels: None,
            },
        ];
        let table = input(&images, &RouteTable::default());
        let sleepy = table.get("sleepy").unwrap();
        assert_eq!(sleepy.settings.scale_min, Some(0));
        assert_eq!(sleepy.settings.max(), 3);
        assert!(sleepy.wakes_on_request());
        sleepy.activity.as_ref().unwrap().request();
        let plain = table.get("plain").unwrap();
        assert!(!plain.wakes_on_request());
        assert!(plain.activity.is_none(), "an unscaled funko counts nothing");

        let rebuilt = input(&images, &table);
        let activity = rebuilt.get("sleepy").unwrap().activity.as_ref().unwrap();
        assert_eq!(activity.requests(), 1, "carried over");
    }

    #[test]
    fn a_draining_instance_is_out_until_called_back() {
        let state = Arc::new(InstanceState::default());
        state.drain();
        assert!(!state.is_up() && state.is_draining());
        state.check_passed();
        assert!(!state.is_up(), "a passed check does not bring it back");
        state.undrain();
        assert!(state.is_up() && !state.is_draining());
    }

    #[test]
    fn a_funkos_labels_set_its_timeout_and_body_limit() {
        let mut limited = container(
            "l1",
            "faaso-slow-aaaaaa",
            RUNNING,
            &[("faaso-net", "10.0.0.9")],
            "Up 1 minute",
        );
        limited.labels = Some(
            [
                ("faaso.limits.timeout".to_string(), "1500ms".to_string()),
                ("faaso.limits.max_body".to_string(), "1KiB".to_string()),
                ("faaso.scale.max".to_string(), "lots".to_string()),
            ]
            .into(),
        );
        let plain = container(
            "p1",
            "faaso-plain-bbbbbb",
            RUNNING,
            &[("faaso-net", "10.0.0.8")],
            "Up 1 minute",
        );
        let table = build_simple(&[limited, plain], &RouteTable::default());
        let slow = table.get("slow").unwrap();
        assert_eq!(slow.instances[0].timeouts.read, Duration::from_millis(1500));
        assert_eq!(
            slow.instances[0].peer.options.read_timeout,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(slow.max_body, Some(1024));
        assert_eq!(slow.setting_errors.len(), 1);
        assert!(
            slow.setting_errors[0].starts_with("faaso.scale.max:"),
            "{:?}",
            slow.setting_errors
        );
        let plain = table.get("plain").unwrap();
        assert_eq!(
            plain.instances[0].timeouts.read,
            PeerTimeouts::default().read
        );
        assert_eq!(plain.max_body, None);
        assert!(plain.setting_errors.is_empty());
    }

    #[test]
    fn containers_become_instances_by_convention() {
        let mut labelled = container(
            "c4",
            "faaso-web-aaaaaa",
            RUNNING,
            &[("faaso-net", "10.0.0.4")],
            "Up",
        );
        labelled.labels = Some(HashMap::from([(
            faaso::conventions::PORT_LABEL.to_string(),
            "8080".to_string(),
        )]));
        let containers = vec![
            container(
                "c1",
                "faaso-hello-abc123",
                RUNNING,
                &[("bridge", "172.17.0.2"), ("faaso-net", "10.0.0.2")],
                "Up 1 second",
            ),
            container(
                "c2",
                "faaso-hello",
                RUNNING,
                &[("faaso-net", "10.0.0.3")],
                "Up (healthy)",
            ),
            container("c3", "faaso-stopped-abc123", EXITED, &[], "Exited (0)"),
            labelled,
            container(
                "p",
                "faaso-proxy",
                RUNNING,
                &[("faaso-net", "10.0.0.9")],
                "Up",
            ),
            container("x", "nginx", RUNNING, &[("faaso-net", "10.0.0.10")], "Up"),
            container(
                "o",
                "faaso-other-abc123",
                RUNNING,
                &[("bridge", "172.17.0.5")],
                "Up",
            ),
            container(
                "stopping1",
                "faaso-hello-zzzzzz",
                RUNNING,
                &[("faaso-net", "10.0.0.11")],
                "Up",
            ),
        ];
        let table = build_simple(&containers, &RouteTable::default());
        let hello = table.get("hello").unwrap();
        let addrs: Vec<String> = hello.instances.iter().map(|i| i.addr.to_string()).collect();
        assert_eq!(addrs, ["10.0.0.3:3000", "10.0.0.2:3000"]);
        assert_eq!(hello.instances[0].docker_health, DockerHealth::Healthy);
        assert_eq!(
            table.get("web").unwrap().instances[0].addr.to_string(),
            "10.0.0.4:8080"
        );
        // Known but not routable: stopped, not on the network, or only an image.
        for known_empty in ["stopped", "other", "imageonly"] {
            assert!(
                table.get(known_empty).unwrap().instances.is_empty(),
                "{known_empty}"
            );
        }
        assert!(table.get("proxy").is_none());
        assert!(table.get("nginx").is_none());
        assert_eq!(table.len(), 5);
    }

    #[test]
    fn rebuilds_keep_instance_state() {
        let containers = vec![container(
            "c1",
            "faaso-hello-abc123",
            RUNNING,
            &[("faaso-net", "10.0.0.2")],
            "Up",
        )];
        let first = build_simple(&containers, &RouteTable::default());
        first.get("hello").unwrap().instances[0]
            .state
            .connect_failed();
        let second = build_simple(&containers, &first);
        assert!(!second.get("hello").unwrap().instances[0].state.is_up());
        let fresh = build_simple(&containers, &RouteTable::default());
        assert!(fresh.get("hello").unwrap().instances[0].state.is_up());
    }

    #[test]
    fn health_state_machine() {
        let state = Arc::new(InstanceState::default());
        assert!(state.is_up());
        assert!(!state.check_failed());
        assert!(state.is_up(), "one failure is not enough");
        assert!(state.check_failed());
        assert!(!state.is_up());
        state.check_passed();
        assert!(state.is_up());
        state.connect_failed();
        assert!(!state.is_up());
        {
            let _a = state.start_request();
            let _b = state.start_request();
            assert_eq!(state.in_flight(), 2);
        }
        assert_eq!(state.in_flight(), 0);
    }

    #[test]
    fn docker_health_from_status() {
        assert_eq!(
            docker_health("Up 3 seconds (health: starting)"),
            DockerHealth::Starting
        );
        assert_eq!(
            docker_health("Up 3 minutes (healthy)"),
            DockerHealth::Healthy
        );
        assert_eq!(
            docker_health("Up 3 minutes (unhealthy)"),
            DockerHealth::Unhealthy
        );
        assert_eq!(docker_health("Up 3 minutes"), DockerHealth::None);
    }
}
