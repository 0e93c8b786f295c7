//! Routing cost at scale: route lookup + instance pick with 1,000 funkos × 10 instances (the
//! per-request work), and a full routing-table rebuild from that many containers (the work of
//! one discovery sync).
//!
//! Run: `cargo bench -p faaso-gateway --bench routing`

use std::collections::HashSet;
use std::hint::black_box;

use bollard::models::{
    ContainerSummary, ContainerSummaryNetworkSettings, ContainerSummaryStateEnum, EndpointSettings,
};
use criterion::{Criterion, criterion_group, criterion_main};
use faaso_gateway::routing::balancer::{Tried, pick};
use faaso_gateway::routing::router::{Route, route};
use faaso_gateway::routing::table::{BuildInput, PeerTimeouts, RouteTable, build};

const FUNKOS: usize = 1_000;
const INSTANCES: usize = 10;

fn containers() -> Vec<ContainerSummary> {
    let mut out = Vec::with_capacity(FUNKOS * INSTANCES);
    for f in 0..FUNKOS {
        for i in 0..INSTANCES {
            let n = f * INSTANCES + i;
            let ip = format!("10.{}.{}.{}", n / 65536, (n / 256) % 256, n % 256);
            out.push(ContainerSummary {
                id: Some(format!("{n:064x}")),
                names: Some(vec![format!("/faaso-funko{f}-{i:06}")]),
                state: Some(ContainerSummaryStateEnum::RUNNING),
                status: Some("Up 2 hours".to_string()),
                network_settings: Some(ContainerSummaryNetworkSettings {
                    networks: Some(
                        [(
                            "faaso-net".to_string(),
                            EndpointSettings {
                                ip_address: Some(ip),
                                ..Default::default()
                            },
                        )]
                        .into(),
                    ),
                }),
                ..Default::default()
            });
        }
    }
    out
}

fn table(containers: &[ContainerSummary], previous: &RouteTable<()>) -> RouteTable<()> {
    build(
        containers,
        &BuildInput {
            network: "faaso-net",
            image_funkos: &[],
            stopping: &HashSet::new(),
            previous,
            new_stats: &|_| (),
            timeouts: PeerTimeouts::default(),
            held_domains: &Default::default(),
        },
    )
}

fn benches(c: &mut Criterion) {
    let containers = containers();
    let table = table(&containers, &RouteTable::default());
    assert_eq!(table.len(), FUNKOS);
    let paths: Vec<String> = (0..FUNKOS)
        .map(|f| format!("/funko/funko{f}/api/items?page=2"))
        .collect();
    let mut next = 0;
    c.bench_function("route + lookup + pick (1,000 funkos x 10 instances)", |b| {
        b.iter(|| {
            next = (next + 7) % FUNKOS;
            let Route::Funko(funko) = route(black_box(&paths[next])) else {
                unreachable!("a funko path");
            };
            let entry = table.get(funko.name).expect("known funko");
            black_box(pick(&entry.instances, Tried::default()))
        })
    });
    c.bench_function("full rebuild from 10,000 containers", |b| {
        b.iter(|| black_box(self::table(black_box(&containers), &table)))
    });
}

criterion_group!(routing, benches);
criterion_main!(routing);
