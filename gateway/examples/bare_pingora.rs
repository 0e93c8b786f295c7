//! The smallest Pingora proxy: every request to one fixed upstream, no routing, no headers,
//! no metrics, no logs. The benchmark harness runs it beside the gateway to show how much of
//! the gateway's cost is Pingora's own, in two shapes:
//!
//! - `shared`: one proxy service on 2 threads (one runtime per thread), one listening socket.
//! - `per-core`: the gateway's design, one single-thread service per worker, each with its own
//!   `SO_REUSEPORT` socket and connection pool ([`faaso_gateway::server::worker_listen_keys`]).
//!
//! Run: `cargo run --release -p faaso-gateway --example bare_pingora -- <listen> <upstream> [shared|per-core]`

use async_trait::async_trait;
use pingora::listeners::TcpSocketOptions;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Fixed(String);

#[async_trait]
impl ProxyHttp for Fixed {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.0.as_str(),
            false,
            String::new(),
        )))
    }
}

const WORKERS: usize = 2;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!("usage: bare_pingora <listen addr> <upstream addr> [shared|per-core]");
        std::process::exit(2);
    };
    let per_core = match args.next().as_deref() {
        None | Some("shared") => false,
        Some("per-core") => true,
        Some(other) => {
            eprintln!("bare_pingora: unknown shape {other:?}; expected shared or per-core");
            std::process::exit(2);
        }
    };
    let conf = ServerConf {
        threads: WORKERS,
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    if per_core {
        let addr = listen.parse().unwrap_or_else(|err| {
            eprintln!("bare_pingora: listen address {listen:?}: {err}");
            std::process::exit(2);
        });
        for (worker, key) in faaso_gateway::server::worker_listen_keys(addr, WORKERS)
            .into_iter()
            .enumerate()
        {
            let mut proxy = pingora::proxy::http_proxy_service_with_name(
                &server.configuration,
                Fixed(upstream.clone()),
                &format!("worker {worker}"),
            );
            proxy.threads = Some(1);
            let mut options = TcpSocketOptions::default();
            options.so_reuseport = Some(true);
            proxy.add_tcp_with_settings(&key, options);
            server.add_service(proxy);
        }
    } else {
        let mut proxy =
            pingora::proxy::http_proxy_service(&server.configuration, Fixed(upstream.clone()));
        proxy.add_tcp(&listen);
        server.add_service(proxy);
    }
    server.run_forever();
}
