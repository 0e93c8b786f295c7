//! Server time of the web UI's overview with 100 funkos x 3 instances: everything the gateway
//! does for `GET /admin/` after the session check. That is the status of every funko from
//! discovery's last lists of containers and images plus the saved scales (100 files read),
//! five minutes of traffic samples per funko, and the rendered page.
//!
//! Run: `cargo bench -p faaso-gateway --bench ui`

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bollard::models::{
    ContainerSummary, ContainerSummaryNetworkSettings, ContainerSummaryStateEnum, EndpointSettings,
    ImageSummary,
};
use criterion::{Criterion, criterion_group, criterion_main};
use faaso::store::state::{FunkoState, StateDir};
use faaso_gateway::admin::ui::pages::{self, Frame, Pages};
use faaso_gateway::admin::ui::stats::{Counts, KEPT, Recent, SAMPLE_EVERY};

const FUNKOS: usize = 100;
const INSTANCES: usize = 3;

fn image_id(f: usize, release: usize) -> String {
    format!("sha256:{:064x}", f * 10 + release)
}

fn lists() -> (Vec<ContainerSummary>, Vec<ImageSummary>) {
    let mut containers = Vec::new();
    let mut images = Vec::new();
    for f in 0..FUNKOS {
        for i in 0..INSTANCES {
            let n = f * INSTANCES + i;
            containers.push(ContainerSummary {
                id: Some(format!("{n:064x}")),
                names: Some(vec![format!("/faaso-funko{f}-{i:06}")]),
                // One instance in three still runs the release before.
                image_id: Some(image_id(f, usize::from(i == 0))),
                state: Some(ContainerSummaryStateEnum::RUNNING),
                status: Some("Up 2 hours (healthy)".to_string()),
                created: Some(1_790_000_000),
                network_settings: Some(ContainerSummaryNetworkSettings {
                    networks: Some(
                        [(
                            "faaso-net".to_string(),
                            EndpointSettings {
                                ip_address: Some(format!("10.0.{}.{}", n / 256, n % 256)),
                                ..Default::default()
                            },
                        )]
                        .into(),
                    ),
                }),
                ..Default::default()
            });
        }
        for release in 0..2 {
            let mut tags = vec![format!("faaso-funko{f}:2026120{release}-120000")];
            if release == 0 {
                tags.push(format!("faaso-funko{f}:latest"));
            }
            images.push(ImageSummary {
                id: image_id(f, release),
                repo_tags: tags,
                created: 1_790_000_000 - release as i64,
                ..Default::default()
            });
        }
    }
    (containers, images)
}

/// Five minutes of samples for every funko.
fn recent() -> Recent {
    let recent = Recent::default();
    let start = Instant::now();
    let bounds: Vec<f64> = vec![
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    for s in 0..KEPT as u64 {
        let counts: HashMap<String, Counts> = (0..FUNKOS as u64)
            .map(|f| {
                let requests = s * (f + 1) * 50;
                let buckets = bounds
                    .iter()
                    .enumerate()
                    .map(|(b, _)| requests * (b as u64 + 90) / 100)
                    .map(|c| c.min(requests))
                    .collect();
                (
                    format!("funko{f}"),
                    Counts {
                        requests,
                        errors: requests / 100,
                        buckets,
                    },
                )
            })
            .collect();
        recent.record(start + SAMPLE_EVERY * s as u32, bounds.clone(), counts);
    }
    recent
}

fn overview(c: &mut Criterion) {
    let (containers, images) = lists();
    let recent = recent();
    let dir = tempfile::tempdir().expect("a state folder");
    let state = StateDir::new(dir.path());
    for f in 0..FUNKOS {
        state
            .save(
                &format!("funko{f}"),
                FunkoState {
                    scale: INSTANCES as u32,
                },
            )
            .expect("state saved");
    }
    let pages = Pages::new().expect("templates");
    let frame = Frame {
        title: "Funkos",
        nav: "funkos",
        csrf: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    };
    let render = || {
        let statuses =
            faaso::engine::status::statuses(&[], &containers, &images, &state, "faaso-net")
                .unwrap();
        let data = pages::overview(&statuses, &|name| recent.summary(name), true, false);
        pages.render("overview", &frame, data).unwrap()
    };
    let html = render();
    assert_eq!(html.matches("<tr data-funko=").count(), FUNKOS);
    assert_eq!(html.matches("out of date").count(), FUNKOS);
    println!("overview page: {} KiB", html.len() / 1024);
    let mut group = c.benchmark_group("ui");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("overview 100 funkos x 3 instances", |b| {
        b.iter(|| black_box(render()))
    });
    group.finish();
}

criterion_group!(benches, overview);
criterion_main!(benches);
